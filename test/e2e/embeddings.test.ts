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

  it('gives the simulator\'s vectors length 1, as OpenAI\'s have, and texts sharing words vectors alike, so a local search ranks sensibly', async () => {
    const texts = ['The cat sat on the mat.', 'A cat was sitting on a mat.', 'Quarterly revenue grew by four percent.'];
    const { data } = await suite.h.client.embeddings.create({ model: 'text-embedding-3-small', input: texts });
    const [cat, kitten, revenue] = data.map((d) => d.embedding);
    const dot = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * b[i], 0);
    expect(dot(cat, cat)).toBeCloseTo(1, 4);
    expect(dot(cat, kitten)).toBeGreaterThan(0.25);
    expect(Math.abs(dot(cat, revenue))).toBeLessThan(0.1);
  });
});
