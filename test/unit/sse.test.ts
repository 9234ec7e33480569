import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AzureEventFilter } from '../../src/bodies/sse';
import { chatChunks } from '../../src/simulator/chat';
import { Usage } from '../../src/bodies/usage';

async function filtered(pieces: Buffer[]): Promise<{ text: string; usage?: Usage }> {
  let usage: Usage | undefined;
  const filter = new AzureEventFilter((u) => (usage = u));
  Readable.from(pieces).pipe(filter);
  let text = '';
  for await (const c of filter) text += c;
  return { text, usage };
}

describe('the Azure event filter', () => {
  const events = chatChunks({ stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }, 'gpt-4o-2024-08-06');
  const whole = Buffer.from(events.join(''));
  const expected = events.slice(1).join('');

  it('drops the empty prompt-filter chunk and passes every other event byte for byte, usage chunk included', async () => {
    const { text, usage } = await filtered([whole]);
    expect(text).toBe(expected);
    expect(usage).toEqual({ prompt_tokens: 8, completion_tokens: 4, total_tokens: 12 });
  });

  it('gives the same output however the upstream splits its bytes', async () => {
    for (let cut = 1; cut < whole.length; cut += 7) {
      const { text } = await filtered([whole.subarray(0, cut), whole.subarray(cut)]);
      expect(text).toBe(expected);
    }
    const bytes = [...whole].map((b) => Buffer.from([b]));
    expect((await filtered(bytes)).text).toBe(expected);
  });

  it('understands CRLF event separators', async () => {
    const crlf = Buffer.from(events.map((e) => e.replace(/\n\n$/, '\r\n\r\n')).join(''));
    const { text } = await filtered([crlf]);
    expect(text).not.toContain('prompt_filter_results');
    expect(text).toContain('[DONE]');
  });

  it('passes a trailing partial event through at the end rather than losing it', async () => {
    const { text } = await filtered([Buffer.from('data: {"choices":[{"index":0}]}\n\ndata: [DO')]);
    expect(text).toBe('data: {"choices":[{"index":0}]}\n\ndata: [DO');
  });
});
