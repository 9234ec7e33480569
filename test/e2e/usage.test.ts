import OpenAI from 'openai';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { useSharedUpstream } from '../support/shared-upstream';
import { Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';
import { WebPubSubStandIn } from '../support/web-pubsub';

const upstream = useSharedUpstream();
const running = upstream.running;
beforeAll(() => {
  installSimulatorOperations(upstream.sim); // the Responses API
});

const ADMIN_KEY = 'ops-admin-key-7f6e5d4c3b2a';
const TEAM_KEY = 'team-key-0a9b8c7d6e5f';
const KEYS = [{ name: 'ops', key: ADMIN_KEY, admin: true }, { name: 'team-a', key: TEAM_KEY }];
const MODELS = {
  'gpt-4o-mini': ['chat-a', 'chat-b'],
  'text-embedding-3-small': ['embed'],
  'gpt-35-turbo-instruct': ['instruct'],
  legacy: [{ deployment: 'chat-old', apiVersion: '2024-06-01' }],
  'gpt-4o': [{ deployment: 'resp', apiVersion: 'v1' }],
  'gpt-4o-mini-realtime-preview': ['rt-a'],
};

/** Everything a client saw and every log line: no key value may be in it. */
const seen: string[] = [];
afterAll(() => {
  const all = seen.join('\n');
  for (const key of [ADMIN_KEY, TEAM_KEY, PROXY_KEY]) expect(all).not.toContain(key);
});

let tables = 0;
async function instances(count: number, extra: Record<string, string> = {}): Promise<Harness[]> {
  const env = { MODEL_DEPLOYMENTS: JSON.stringify(MODELS), PROXY_KEYS: JSON.stringify(KEYS), BALANCER_STORAGE_CONNECTION: upstream.azurite.connectionString, BALANCER_TABLE: `usage${++tables}`, LIMITS_SYNC_MS: '100', ...extra };
  const list: Harness[] = [];
  for (let i = 0; i < count; i++) {
    const h = await startHarness({ sharedSimulator: upstream.sim, env: () => env });
    const close = h.close.bind(h);
    list.push(Object.assign(h, { close: async () => { seen.push(...h.logger.lines); await close(); } }));
  }
  running.push(...list);
  return list;
}

const sdk = (h: Harness, key = TEAM_KEY) => new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 });

interface Row { key: string | null; model: string; requests: number; input_tokens: number; output_tokens: number }

async function report(h: Harness, date?: string): Promise<{ status: number; body: { date: string; source: string; data: Row[]; error?: { code: string } } }> {
  const res = await fetch(`${h.url}/v1/usage${date === undefined ? '' : `?date=${date}`}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  const text = await res.text();
  seen.push(text);
  return { status: res.status, body: JSON.parse(text) };
}

const row = (rows: Row[], key: string | null, model: string) => rows.find((r) => r.key === key && r.model === model);

/**
 * The report once every request so far has finished on the gateway: a stream
 * is counted when its response ends there, which the client may see a moment
 * before the gateway does.
 */
async function reportWhenDone(h: Harness, requests: number): Promise<Row[]> {
  let rows: Row[] = [];
  await eventually(async () => {
    rows = (await report(h)).body.data;
    return rows.reduce((n, r) => n + r.requests, 0) >= requests;
  }, 3000, `${requests} requests counted`);
  return rows;
}

/** Reads the raw server-sent events of a chat stream: the text of each data line. */
async function rawStream(h: Harness, body: Record<string, unknown>): Promise<string[]> {
  const res = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TEAM_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  seen.push(text);
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
}

describe('streamed usage', () => {
  it('is counted when the client did not ask for it, and no usage reaches that client', async () => {
    const [h] = await instances(1);
    const chunks = await rawStream(h, { model: 'gpt-4o-mini', stream: true, max_tokens: 9, messages: [{ role: 'user', content: 'count me' }] });
    // Azure was asked for usage...
    const sent = JSON.parse(upstream.sim.calls.at(-1)!.body.toString());
    expect(sent.stream_options).toEqual({ include_usage: true });
    // ...and the client, which did not ask, sees no usage at all: not the chunk, not a null field.
    expect(chunks.at(-1)).toBe('[DONE]');
    for (const c of chunks.slice(0, -1)) expect(Object.keys(JSON.parse(c))).not.toContain('usage');
    const text = chunks.slice(0, -1).map((c) => JSON.parse(c).choices[0]?.delta?.content ?? '').join('');
    expect(text.split(' ')).toHaveLength(9);
    const rows = await reportWhenDone(h, 1);
    expect(row(rows, 'team-a', 'gpt-4o-mini')).toMatchObject({ requests: 1, output_tokens: 9 });
    expect(row(rows, 'team-a', 'gpt-4o-mini')!.input_tokens).toBeGreaterThan(0);
    const line = h.logger.entries().find((e) => e.msg === 'request' && e.route === 'chatCompletions')!;
    expect(line.usage).toMatchObject({ completion_tokens: 9 });
    // The same on the v1 form, whose body names the deployment as its model.
    const v1 = await rawStream(h, { model: 'gpt-4o', stream: true, max_tokens: 3, messages: [{ role: 'user', content: 'v1 too' }] });
    expect(JSON.parse(upstream.sim.calls.at(-1)!.body.toString())).toMatchObject({ model: 'resp', stream_options: { include_usage: true } });
    expect(v1.join('\n')).not.toContain('usage');
    expect(row(await reportWhenDone(h, 2), 'team-a', 'gpt-4o')).toMatchObject({ requests: 1, output_tokens: 3 });
  });

  it('reaches a client that asked for it exactly once, as its last chunk', async () => {
    const [h] = await instances(1);
    const stream = await sdk(h).chat.completions.create({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, max_tokens: 5, messages: [{ role: 'user', content: 'and me' }] });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    seen.push(JSON.stringify(chunks));
    const withUsage = chunks.filter((c) => c.usage);
    expect(withUsage).toHaveLength(1);
    expect(chunks.at(-1)).toBe(withUsage[0]);
    expect(withUsage[0].usage!.completion_tokens).toBe(5);
    expect(JSON.parse(upstream.sim.calls.at(-1)!.body.toString()).stream_options).toEqual({ include_usage: true });
    expect(row(await reportWhenDone(h, 1), 'team-a', 'gpt-4o-mini')).toMatchObject({ requests: 1, output_tokens: 5, input_tokens: withUsage[0].usage!.prompt_tokens });
  });

  it('is estimated for a stream cut short: a quarter of the request\'s bytes, and a token per event that passed', async () => {
    const [h] = await instances(1);
    for (const d of ['chat-a', 'chat-b']) upstream.sim.setBehaviour(d, { mode: 'reset', afterEvents: 5 });
    const request = { model: 'gpt-4o-mini', stream: true, max_tokens: 50, messages: [{ role: 'user', content: 'this one breaks' }] };
    const chunks = await rawStream(h, request);
    // Azure's prompt-filter chunk (dropped), the role chunk and three words passed before the break.
    expect(chunks.filter((c) => c.includes('"delta"'))).toHaveLength(4);
    expect(row(await reportWhenDone(h, 1), 'team-a', 'gpt-4o-mini')).toEqual({ object: 'usage', key: 'team-a', model: 'gpt-4o-mini', requests: 1, input_tokens: Math.ceil(JSON.stringify(request).length / 4), output_tokens: 4 });
  });

  it('is not asked for on an api-version that refuses stream_options; those streams are estimated', async () => {
    const [h] = await instances(1);
    const chunks = await rawStream(h, { model: 'legacy', stream: true, max_tokens: 6, messages: [{ role: 'user', content: 'old' }] });
    expect(upstream.sim.calls.at(-1)).toMatchObject({ deployment: 'chat-old', status: 200 });
    expect(JSON.parse(upstream.sim.calls.at(-1)!.body.toString()).stream_options).toBeUndefined();
    expect(chunks.at(-1)).toBe('[DONE]');
    // The role chunk, six words, the finish chunk and [DONE].
    expect(row(await reportWhenDone(h, 1), 'team-a', 'legacy')).toMatchObject({ requests: 1, output_tokens: 9 });
  });
});

describe('whole answers', () => {
  it('chat, completions, embeddings and the Responses API are counted from Azure\'s usage', async () => {
    const [h] = await instances(1);
    const client = sdk(h);
    const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 3, messages: [{ role: 'user', content: 'a whole one' }] });
    const completion = await client.completions.create({ model: 'gpt-35-turbo-instruct', max_tokens: 4, prompt: 'once upon a time' });
    const embedding = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['one two three', 'four'] });
    const response = await client.responses.create({ model: 'gpt-4o', input: 'tell me a thing' });
    const streamed = await client.responses.create({ model: 'gpt-4o', input: 'and stream it', stream: true });
    let completed: OpenAI.Responses.Response | undefined;
    for await (const e of streamed) if (e.type === 'response.completed') completed = e.response;
    seen.push(JSON.stringify([chat, completion, embedding, response, completed]));
    const rows = await reportWhenDone(h, 5);
    expect(row(rows, 'team-a', 'gpt-4o-mini')).toMatchObject({ requests: 1, input_tokens: chat.usage!.prompt_tokens, output_tokens: chat.usage!.completion_tokens });
    expect(row(rows, 'team-a', 'gpt-35-turbo-instruct')).toMatchObject({ requests: 1, input_tokens: completion.usage!.prompt_tokens, output_tokens: 4 });
    expect(row(rows, 'team-a', 'text-embedding-3-small')).toMatchObject({ requests: 1, input_tokens: embedding.usage.prompt_tokens, output_tokens: 0 });
    expect(row(rows, 'team-a', 'gpt-4o')).toMatchObject({
      requests: 2,
      input_tokens: response.usage!.input_tokens + completed!.usage!.input_tokens,
      output_tokens: response.usage!.output_tokens + completed!.usage!.output_tokens,
    });
  });
});

describe('realtime sessions', () => {
  /** Opens a socket, asks for one response, and closes once response.done has come. */
  async function oneResponse(url: string, headers: Record<string, string> = {}): Promise<void> {
    const ws = new WebSocket(url, { headers });
    const received: string[] = [];
    ws.on('message', (d) => received.push(String(d)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await eventually(() => received.some((e) => e.includes('"session.created"')), 5000, 'session.created');
    ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => received.some((e) => e.includes('"response.done"')), 5000, 'response.done');
    seen.push(...received);
    ws.close();
  }

  it('count a session as a request and each response.done\'s tokens, on the direct socket', async () => {
    const [h] = await instances(1);
    await oneResponse(`${h.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-mini-realtime-preview`, { authorization: `Bearer ${TEAM_KEY}` });
    // The simulator reports 30 input and 12 output tokens per response.
    await eventually(async () => row((await report(h)).body.data, 'team-a', 'gpt-4o-mini-realtime-preview')?.output_tokens === 12, 3000, 'the response counted');
    expect(row((await report(h)).body.data, 'team-a', 'gpt-4o-mini-realtime-preview')).toMatchObject({ requests: 1, input_tokens: 30, output_tokens: 12 });
  });

  it('and over Web PubSub, whichever instance owns the session', async () => {
    const pubsub = new WebPubSubStandIn('realtime');
    await pubsub.start();
    try {
      const [a, b] = await instances(2, { WEBPUBSUB_CONNECTION_STRING: pubsub.connectionString(), WEBPUBSUB_HUB: 'realtime' });
      // The session starts on a; Web PubSub posts its events to b, which owns it.
      pubsub.handlers = [`${b.url}/realtime/events`];
      const start = await fetch(`${a.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: `Bearer ${TEAM_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini-realtime-preview' }) });
      expect(start.status).toBe(200);
      await oneResponse((await start.json()).url);
      await eventually(async () => row((await report(a)).body.data, 'team-a', 'gpt-4o-mini-realtime-preview')?.output_tokens === 12, 5000, 'b\'s count in the report');
      expect(row((await report(a)).body.data, 'team-a', 'gpt-4o-mini-realtime-preview')).toMatchObject({ requests: 1, input_tokens: 30, output_tokens: 12 });
    } finally {
      await pubsub.close();
    }
  });
});

describe('GET /v1/usage', () => {
  it('sums every instance, per key name and model, for a UTC day', async () => {
    const [a, b] = await instances(2);
    for (const h of [a, b]) {
      await sdk(h).chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 2, messages: [{ role: 'user', content: 'from either' }] });
      await sdk(h, PROXY_KEY).chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 3, messages: [{ role: 'user', content: 'unnamed' }] });
    }
    // b shares its counts within LIMITS_SYNC_MS of serving; a's are written when the report is asked of it.
    await eventually(async () => {
      const rows = (await report(a)).body.data;
      return row(rows, 'team-a', 'gpt-4o-mini')?.requests === 2 && row(rows, null, 'gpt-4o-mini')?.requests === 2;
    }, 5000, 'both instances counted');
    const { body } = await report(a);
    expect(body.source).toBe('shared');
    expect(body.date).toBe(new Date().toISOString().slice(0, 10));
    expect(body.data).toEqual([
      { object: 'usage', key: null, model: 'gpt-4o-mini', requests: 2, input_tokens: expect.any(Number), output_tokens: 6 },
      { object: 'usage', key: 'team-a', model: 'gpt-4o-mini', requests: 2, input_tokens: expect.any(Number), output_tokens: 4 },
    ]);
    const same = await report(b, body.date);
    expect(same.body.data).toEqual(body.data);
    expect((await report(a, '2020-01-01')).body.data).toEqual([]);
  });

  it('is for admin keys only (403), and a bad date is a 400', async () => {
    const [h] = await instances(1);
    const err = await sdk(h).get('/usage').catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err.error).toMatchObject({ code: 'insufficient_permissions', type: 'invalid_request_error' });
    const unnamed = await fetch(`${h.url}/v1/usage`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
    expect(unnamed.status).toBe(403);
    seen.push(await unnamed.text());
    for (const bad of ['yesterday', '2026-13-01', '2026-02-30', '20260101']) {
      const res = await report(h, bad);
      expect(res.status).toBe(400);
      expect(res.body.error?.code).toBe('invalid_date');
    }
  });
});
