import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';

let h: Harness;
const bodies: string[] = [];

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  // Nothing secret may appear in anything a client or the log saw in this file.
  const seen = [...bodies, ...h.logger.lines].join('\n');
  expect(seen).not.toContain(AZURE_KEY);
  expect(seen).not.toContain(PROXY_KEY);
  expect(seen).not.toContain(h.simUrl);
  await h.close();
});

async function raw(path: string, init: RequestInit): Promise<Response & { text(): Promise<string> }> {
  const res = await fetch(`${h.url}${path}`, init);
  const text = await res.text();
  bodies.push(text);
  return Object.assign(res, { text: async () => text });
}

describe('chat completions through the openai SDK', () => {
  it('returns a whole completion with usage and a request id', async () => {
    const { data, response } = await h.client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello, how are you?' }] })
      .withResponse();
    bodies.push(JSON.stringify(data));
    expect(data.choices[0].message.content).toBe('Simulated reply to: Hello, how are you?');
    expect(data.usage?.total_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const call = h.sim.calls.at(-1)!;
    expect(call.headers['api-key']).toBe(AZURE_KEY);
    expect(call.headers.authorization).toBeUndefined();
    expect(call.apiVersion).toBe('2025-04-01-preview');
  });

  it('streams chunks with usage in the last one and drops Azure\'s empty prompt-filter chunk', async () => {
    const stream = await h.client.chat.completions.create({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'count to three' }],
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    bodies.push(JSON.stringify(chunks));
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
    const release = h.sim.holdStreams();
    try {
      const stream = await h.client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'stream please' }] });
      const it = stream[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value.choices[0].delta.role).toBe('assistant');
      const call = h.sim.calls.at(-1)!;
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
    h.sim.streamIntervalMs = 20;
    try {
      const controller = new AbortController();
      const stream = await h.client.chat.completions.create(
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
      const call = h.sim.calls.at(-1)!;
      await eventually(() => call.aborted, 2000, 'the simulator to see the stream cancelled');
      expect(call.finished).toBe(false);
    } finally {
      h.sim.streamIntervalMs = 0;
    }
  });

  it('forwards the client bytes unchanged and never the client credentials', async () => {
    const body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"exact bytes"}],"temperature":0.25}';
    const res = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    const call = h.sim.calls.at(-1)!;
    expect(call.body.toString()).toBe(body);
    expect(JSON.stringify(call.headers)).not.toContain(PROXY_KEY);
  });
});

describe('errors the openai SDK raises as its typed errors', () => {
  it('a wrong proxy key is an AuthenticationError (401)', async () => {
    const bad = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'not-a-key', maxRetries: 0 });
    const err = await bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.code).toBe('invalid_api_key');
    expect(err.message).not.toContain('not-a-key');
  });

  it('a missing key, or an Authorization header with only "Bearer", is a 401 that says how to send one', async () => {
    for (const headers of [{}, { authorization: 'Bearer' }, { authorization: '' }] as Record<string, string>[]) {
      const res = await raw('/v1/chat/completions', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).toBe(401);
      expect(JSON.parse(await res.text()).error.message).toMatch(/Authorization: Bearer/);
    }
  });

  it('the Azure-style api-key header is accepted too', async () => {
    const res = await raw('/v1/models', { headers: { 'api-key': PROXY_KEY } });
    expect(res.status).toBe(200);
  });

  it('an unknown model is a NotFoundError (404, model_not_found)', async () => {
    const err = await h.client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('model_not_found');
    expect(err.message).toContain('gpt-9');
  });

  it('a request without a model is a BadRequestError naming the parameter', async () => {
    const err = await h.client.chat.completions.create({ messages: [{ role: 'user', content: 'x' }] } as never).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('model');
  });

  it('malformed JSON is a 400 that says to send valid JSON, and nothing reaches Azure', async () => {
    const before = h.sim.calls.length;
    const res = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: '{"model": "gpt-4o-mini",' });
    expect(res.status).toBe(400);
    const body = JSON.parse(await res.text());
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: null });
    expect(body.error.message).toMatch(/valid JSON/);
    expect(h.sim.calls.length).toBe(before);
  });

  it('a form-encoded body (curl -d without a content type) is a 400 that names the right type', async () => {
    const res = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'model=gpt-4o-mini' });
    expect(res.status).toBe(400);
    expect(JSON.parse(await res.text()).error.message).toContain('application/json');
  });

  it('a content-filter block is a BadRequestError with code content_filter and no Azure detail', async () => {
    h.sim.setBehaviour('chat-a', { mode: 'block' });
    h.sim.setBehaviour('chat-b', { mode: 'block' });
    try {
      const err = await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'something blocked' }] }).catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.code).toBe('content_filter');
      expect(err.message).toContain('violence');
      expect(err.message).not.toMatch(/https?:|ResponsibleAIPolicyViolation|innererror/);
      expect(err.error).not.toHaveProperty('innererror');
    } finally {
      h.sim.reset();
    }
  });

  it('an unknown path is an OpenAI-shaped 404 and a wrong method a 405', async () => {
    const notFound = await raw('/v1/chat/complete', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` } });
    expect(notFound.status).toBe(404);
    expect(JSON.parse(await notFound.text()).error.message).toContain('/v1/chat/complete');
    expect(notFound.headers.get('x-request-id')).toBeTruthy();
    const wrongMethod = await raw('/v1/chat/completions', { method: 'GET', headers: { authorization: `Bearer ${PROXY_KEY}` } });
    expect(wrongMethod.status).toBe(405);
  });
});

describe('models and health', () => {
  it('lists and retrieves the configured models in OpenAI\'s shape', async () => {
    const list = await h.client.models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual(['gpt-35-turbo-instruct', 'gpt-4o-mini', 'text-embedding-3-small', 'tts-1', 'whisper-1']);
    expect((await h.client.models.retrieve('gpt-4o-mini')).object).toBe('model');
    await expect(h.client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('health answers without a key', async () => {
    const res = await raw('/health', {});
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.text())).toMatchObject({ status: 'ok', problems: [] });
  });
});
