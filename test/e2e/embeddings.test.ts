import { describe, expect, it } from 'vitest';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile();

describe('embeddings', () => {
  it('embeds a string and an array, honouring dimensions, in float and base64 encodings', async () => {
    const one = await suite.h.client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(one.data[0].embedding).toHaveLength(1536);
    const many = await suite.h.client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b', 'c'], dimensions: 64, encoding_format: 'float' });
    expect(many.data.map((d) => d.embedding.length)).toEqual([64, 64, 64]);
    const b64 = await suite.h.client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello', dimensions: 8, encoding_format: 'base64' });
    const e = b64.data[0].embedding as unknown;
    const length = typeof e === 'string' ? Buffer.from(e, 'base64').length / 4 : (e as number[]).length;
    expect(length).toBe(8);
    expect(JSON.parse(suite.h.sim.calls.at(-1)!.body.toString()).encoding_format).toBe('base64');
    expect(many.usage.total_tokens).toBe(3);
  });
});
