import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { AZURE_KEY, PROXY_KEY, eventually } from '../support/harness';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile();
const raw = (path: string, init: RequestInit = {}) => suite.raw(path, init);

describe('chat completions through the openai SDK', () => {
  it('returns a whole completion with usage and a request id', async () => {
    const { data, response } = await suite.h.client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello, how are you?' }] })
      .withResponse();
    suite.saw(JSON.stringify(data));
    expect(data.choices[0].message.content).toBe('Simulated reply to: Hello, how are you?');
    expect(data.usage?.total_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const call = suite.h.sim.calls.at(-1)!;
    expect(call.headers['api-key']).toBe(AZURE_KEY);
    expect(call.headers.authorization).toBeUndefined();
    expect(call.apiVersion).toBe('2025-04-01-preview');
  });

  it('streams chunks with usage in the last one and drops Azure\'s empty prompt-filter chunk', async () => {
    const stream = await suite.h.client.chat.completions.create({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'count to three' }],
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    suite.saw(JSON.stringify(chunks));
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage?.completion_tokens).toBe(6);
    // Every chunk before the usage one has a choice a strict client can index.
    for (const c of chunks.slice(0, -1)) expect(c.choices[0]).toBeDefined();
    expect(chunks.some((c) => 'prompt_filter_results' in c)).toBe(false);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe('Simulated reply to: count to three');
  });

  it('delivers the first chunk before the simulator has sent the last one', async () => {
    const release = suite.h.sim.holdStreams();
    try {
      const stream = await suite.h.client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'stream please' }] });
      const it = stream[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value.choices[0].delta.role).toBe('assistant');
      const call = suite.h.sim.calls.at(-1)!;
      expect(call.finished).toBe(false);
      release();
      let rest = 0;
      for (let n = await it.next(); !n.done; n = await it.next()) rest++;
      expect(rest).toBeGreaterThan(2);
    } finally {
      release();
    }
  });

  it('cancels the upstream stream when the client aborts mid-stream', async () => {
    suite.h.sim.streamIntervalMs = 20;
    try {
      const controller = new AbortController();
      const stream = await suite.h.client.chat.completions.create(
        { model: 'gpt-4o-mini', stream: true, max_tokens: 500, messages: [{ role: 'user', content: 'a long one' }] },
        { signal: controller.signal },
      );
      let seen = 0;
      // The SDK ends the iteration quietly on abort; what matters is what the upstream saw.
      await (async () => {
        for await (const _ of stream) {
          if (++seen === 3) controller.abort();
        }
      })().catch(() => {});
      expect(seen).toBeLessThan(100);
      const call = suite.h.sim.calls.at(-1)!;
      await eventually(() => call.aborted, 2000, 'the simulator to see the stream cancelled');
      expect(call.finished).toBe(false);
    } finally {
      suite.h.sim.streamIntervalMs = 0;
    }
  });

  it('forwards the client bytes unchanged and never the client credentials', async () => {
    const body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"exact bytes"}],"temperature":0.25}';
    const res = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    const call = suite.h.sim.calls.at(-1)!;
    expect(call.body.toString()).toBe(body);
    expect(JSON.stringify(call.headers)).not.toContain(PROXY_KEY);
  });
});

