import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AzureEventFilter } from '../../src/bodies/sse';
import { chatChunks } from '../../src/simulator/chat';
import { Usage } from '../../src/bodies/usage';

async function filtered(pieces: Buffer[]): Promise<{ text: string; usage?: Usage }> {
  let usage: Usage | undefined;
  const filter = new AzureEventFilter({ onUsage: (u) => (usage = u) });
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

  it('for a client that did not ask for usage, reads it and removes it (the chunk and every "usage":null), however the bytes are split', async () => {
    const asked = chatChunks({ stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi there' }] }, 'gpt-4o-2024-08-06');
    const notAsked = chatChunks({ stream: true, messages: [{ role: 'user', content: 'hi there' }] }, 'gpt-4o-2024-08-06');
    const bytes = Buffer.from(asked.join(''));
    // Ids and timestamps differ between the two runs; compare the events' shapes.
    const shape = (text: string) => text.replace(/"(id|created)":("[^"]*"|\d+)/g, '"$1":_');
    const expectedShape = shape(notAsked.slice(1).join(''));
    for (let cut = 1; cut < bytes.length; cut += 13) {
      let usage: Usage | undefined;
      let events = 0;
      const filter = new AzureEventFilter({ onUsage: (u) => (usage = u), onEvent: () => events++, clientWantsUsage: false });
      Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)]).pipe(filter);
      let text = '';
      for await (const c of filter) text += c;
      expect(shape(text), `cut at ${cut}`).toBe(expectedShape);
      expect(text).not.toContain('usage');
      expect(usage).toEqual({ prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 });
      expect(events).toBe(notAsked.length - 1);
    }
  });

  it('removes a "usage":null wherever the chunk writes it, last or not, whatever the separator', async () => {
    const events = [
      'data: {"choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}\n\n',
      'data: {"choices":[{"index":0,"delta":{"content":"b"}}],"usage":null,"model":"m"}\r\n\r\n',
    ];
    const filter = new AzureEventFilter({ clientWantsUsage: false });
    Readable.from([Buffer.from(events.join(''))]).pipe(filter);
    let text = '';
    for await (const c of filter) text += c;
    expect(text).toBe([
      'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
      'data: {"choices":[{"index":0,"delta":{"content":"b"}}],"model":"m"}\r\n\r\n',
    ].join(''));
  });

  it('passes text in any script through byte for byte, however its characters are split, and still finds the usage', async () => {
    const say = (content: string) => `data: {"choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}}}],"usage":null}\n\n`;
    const usage = 'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n';
    const words = ['héllo wörld', ' 日本語の文', ' 🎉🙂 ', 'Ω≈ç√∫ "quoted" \\ [] {}'];
    const bytes = Buffer.from(words.map(say).join('') + usage + 'data: [DONE]\n\n');
    const expected = Buffer.from(words.map((w) => say(w).replace(',"usage":null', '')).join('') + 'data: [DONE]\n\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      let counted: Usage | undefined;
      const filter = new AzureEventFilter({ onUsage: (u) => (counted = u), clientWantsUsage: false });
      Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)]).pipe(filter);
      const out: Buffer[] = [];
      for await (const c of filter) out.push(c as Buffer);
      expect(Buffer.concat(out).equals(expected), `cut at ${cut}`).toBe(true);
      expect(counted).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    }
  });

  it('passes a trailing partial event through at the end rather than losing it', async () => {
    const { text } = await filtered([Buffer.from('data: {"choices":[{"index":0}]}\n\ndata: [DO')]);
    expect(text).toBe('data: {"choices":[{"index":0}]}\n\ndata: [DO');
  });
});

describe('the Azure event filter on hostile input', () => {
  it('scans an event without a blank line in linear time, holding at most its cap', async () => {
    const piece = Buffer.alloc(64 * 1024, 'a');
    const filter = new AzureEventFilter({}, 1024 * 1024);
    const started = performance.now();
    let out = 0;
    filter.on('data', (c: Buffer) => (out += c.length));
    const pieces = 48 * 16;
    for (let i = 0; i < pieces; i++) filter.write(piece);
    filter.end(Buffer.from('\n\ndata: {"choices":[{"index":0}]}\n\n'));
    await new Promise((r) => filter.once('end', r));
    expect(out).toBe(pieces * piece.length + 35);
    // 48 MB: the quadratic scan took tens of seconds here.
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('scans many events arriving in one large chunk in linear time', async () => {
    const event = Buffer.from(`data: {"choices":[{"index":0,"delta":{"content":"${'y'.repeat(100)}"}}]}\n\n`);
    const count = Math.floor((8 * 1024 * 1024) / event.length);
    const chunk = Buffer.concat(Array.from({ length: count }, () => event));
    const filter = new AzureEventFilter();
    let out = 0;
    filter.on('data', (c: Buffer) => (out += c.length));
    const started = performance.now();
    filter.end(chunk);
    await new Promise((r) => filter.once('end', r));
    expect(out).toBe(chunk.length);
    // Searching the rest of the chunk for a CRLF separator at every event took seconds here.
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('passes an event larger than its cap through whole, then filters the next ones again', async () => {
    const big = `data: {"choices":[{"delta":{"content":"${'x'.repeat(5000)}"}}]}\n\n`;
    const empty = 'data: {"choices":[],"prompt_filter_results":[]}\n\n';
    const after = 'data: {"choices":[{"index":0}]}\n\n';
    const whole = Buffer.from(big + empty + after);
    for (const cut of [1, 7, 100, 4999, whole.length - big.length + 1]) {
      let usage: Usage | undefined;
      const filter = new AzureEventFilter({ onUsage: (u) => (usage = u) }, 1000);
      Readable.from([whole.subarray(0, cut), whole.subarray(cut)]).pipe(filter);
      let text = '';
      for await (const c of filter) text += c;
      expect(text, `cut at ${cut}`).toBe(big + after);
      expect(usage).toBeUndefined();
    }
  });

  it('ends with the gateway\'s last event after whole events only, a half-received one dropped', async () => {
    const filter = new AzureEventFilter();
    filter.write(Buffer.from('data: {"choices":[{"index":0}]}\n\ndata: {"choi'));
    filter.endWithEvent('data: {"error":{"message":"stalled"}}\n\n');
    let text = '';
    for await (const c of filter) text += c;
    expect(text).toBe('data: {"choices":[{"index":0}]}\n\ndata: {"error":{"message":"stalled"}}\n\n');
  });
});
