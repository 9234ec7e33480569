import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { realtimeHubOf } from '../../src/handlers/realtime';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { RealtimeSimulator } from '../../src/simulator/realtime';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';
import { WebPubSubStandIn } from '../support/web-pubsub';

const MODEL = 'gpt-4o-mini-realtime-preview';
let sim: AzureOpenAISimulator;
let rt: RealtimeSimulator;
let pubsub: WebPubSubStandIn;
let a: Harness;
let b: Harness;

beforeAll(async () => {
  sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
  rt = installSimulatorOperations(sim);
  await sim.start();
  pubsub = new WebPubSubStandIn('realtime');
  await pubsub.start();
  const env = () => ({
    MODEL_DEPLOYMENTS: JSON.stringify({ [MODEL]: ['rt-a'], 'gpt-4o-mini': ['chat-a'] }),
    WEBPUBSUB_CONNECTION_STRING: pubsub.connectionString,
    WEBPUBSUB_HUB: 'realtime',
    // One test makes Azure refuse sessions; the next should not find the deployment cooling down.
    UPSTREAM_FAILURE_COOLDOWN_MS: '1',
  });
  a = await startHarness({ sharedSimulator: sim, env });
  b = await startHarness({ sharedSimulator: sim, env });
  pubsub.handlers = [`${a.url}/realtime/events`, `${b.url}/realtime/events`];
});

afterEach(() => {
  pubsub.alternate = false;
  pubsub.duplicateEvents = false;
  rt.options.deltasPerResponse = 3;
  rt.options.refuseWith = undefined;
});

afterAll(async () => {
  await a.close();
  await b.close();
  await pubsub.close();
  await sim.close();
});

async function newSession(h: Harness = a, model = MODEL): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model }) });
  return { status: res.status, body: await res.json() };
}

/** A plain WebSocket client collecting every server event it receives. */
async function connect(url: string): Promise<{ ws: WebSocket; received: string[]; closed: Promise<number> }> {
  const ws = new WebSocket(url);
  const received: string[] = [];
  ws.on('message', (d) => received.push(String(d)));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, received, closed };
}

const types = (events: string[]) => events.map((e) => JSON.parse(e).type as string);
const lastSession = () => rt.sessions.at(-1)!;

/** A conversation of over 200 events each way; checks order and content at both ends. */
async function converse(): Promise<void> {
  rt.options.deltasPerResponse = 220;
  const { body } = await newSession();
  const before = rt.sessions.length;
  const client = await connect(body.url as string);
  await eventually(() => client.received.length >= 1, 5000, 'session.created');
  expect(rt.sessions.length).toBe(before + 1);
  const sent: string[] = [
    JSON.stringify({ type: 'session.update', event_id: 'c0', session: { voice: 'alloy', modalities: ['audio', 'text'] } }),
    ...Array.from({ length: 200 }, (_, i) => JSON.stringify({ type: 'input_audio_buffer.append', event_id: `c${i + 1}`, audio: Buffer.alloc(64, i).toString('base64') })),
    JSON.stringify({ type: 'input_audio_buffer.commit', event_id: 'c201' }),
    JSON.stringify({ type: 'conversation.item.create', event_id: 'c202', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] } }),
    JSON.stringify({ type: 'response.create', event_id: 'c203' }),
  ];
  for (const e of sent) client.ws.send(e);
  const upstream = lastSession();
  await eventually(() => client.received.some((e) => JSON.parse(e).type === 'response.done'), 20_000, 'response.done');
  expect(upstream.received).toEqual(sent);
  expect(client.received).toEqual(upstream.sent);
  expect(types(client.received).filter((t) => t === 'response.audio.delta')).toHaveLength(220);
  client.ws.close();
  await eventually(() => upstream.closed, 5000, 'the Azure socket to close');
}

describe('starting a realtime session', () => {
  it('returns an id, a Web PubSub client URL with a short-lived token, and when it expires', async () => {
    const { status, body } = await newSession();
    expect(status).toBe(200);
    expect(body.id).toMatch(/^sess_/);
    expect(body.url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:\\d+/client/hubs/realtime\\?access_token=`));
    const now = Date.now() / 1000;
    expect(body.expires_at as number).toBeGreaterThan(now + 200);
    expect(body.expires_at as number).toBeLessThan(now + 400);
  });

  it('refuses a bad key, an unknown model and a non-realtime model before any socket exists', async () => {
    const sockets = rt.sessions.length;
    const bad = await fetch(`${a.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer nope', 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL }) });
    expect(bad.status).toBe(401);
    expect((await newSession(a, 'gpt-9-realtime')).status).toBe(404);
    const chat = await newSession(a, 'gpt-4o-mini');
    expect(chat.status).toBe(400);
    expect((chat.body.error as { message: string }).message).toContain('not a realtime model');
    expect(rt.sessions.length).toBe(sockets);
    expect(pubsub.connections.size).toBe(0);
  });
});

describe('a conversation through Web PubSub', () => {
  it('relays 200+ events each way, in order and unchanged, logging the session rather than each event', async () => {
    const before = a.logger.lines.length;
    await converse();
    await eventually(() => a.logger.entries().slice(before).some((e) => e.msg === 'realtime session ended'), 3000, 'the session end to be logged');
    const lines = a.logger.entries().slice(before);
    expect(lines.filter((e) => e.msg === 'request' && e.route === 'realtimeEvents')).toEqual([]);
    expect(lines.filter((e) => e.msg === 'realtime session started')).toHaveLength(1);
  });

  it('still completes when Web PubSub alternates a session\'s events between two instances', async () => {
    pubsub.alternate = true;
    const start = pubsub.events.length;
    await converse();
    const handlers = new Set(pubsub.events.slice(start).filter((e) => e.type === 'azure.webpubsub.user.message').map((e) => e.handler));
    expect(handlers.size).toBe(2);
  });

  it('is not broken by events delivered twice', async () => {
    pubsub.duplicateEvents = true;
    pubsub.alternate = true;
    await converse();
  });

  it('the original design\'s browser-style client works with the returned url', async () => {
    const { body } = await newSession();
    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      // As in the seed: a WebSocket, a session.update on open, JSON events in onmessage.
      const ws = new globalThis.WebSocket(body.url as string);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'session.update', session: { model: MODEL, voice: 'alloy' } }));
      ws.onmessage = (event) => {
        const data = JSON.parse(String(event.data));
        seen.push(data.type);
        if (data.type === 'session.updated') {
          ws.close();
          resolve();
        }
      };
      ws.onerror = () => reject(new Error('socket error'));
    });
    expect(seen).toEqual(['session.created', 'session.updated']);
  });
});

describe('the event handler protocol', () => {
  it('answers the abuse-protection handshake for its own service only', async () => {
    expect(await pubsub.validate(`${a.url}/realtime/events`)).toEqual({ status: 200, allowed: new URL(pubsub.endpoint).host });
    expect((await pubsub.validate(`${a.url}/realtime/events`, 'evil.example.com')).status).toBe(400);
  });

  it('refuses forged and unsigned events, and they change nothing', async () => {
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    const upstream = lastSession();
    const id = [...pubsub.connections.values()].find((c) => !c.json)!.id;
    const handler = `${a.url}/realtime/events`;
    const message = JSON.stringify({ type: 'response.create' });
    const forged = await pubsub.post(handler, 'azure.webpubsub.user.message', 'message', { id }, message, 'text/plain', 'x1', `sha256=${'0'.repeat(64)}`);
    const unsigned = await pubsub.post(handler, 'azure.webpubsub.user.message', 'message', { id }, message, 'text/plain', 'x2', '');
    const forgedClose = await pubsub.post(handler, 'azure.webpubsub.sys.disconnected', 'disconnected', { id }, '{}', 'application/json', 'x3', 'sha256=abc');
    expect([forged.status, unsigned.status, forgedClose.status]).toEqual([401, 401, 401]);
    await new Promise((r) => setTimeout(r, 200));
    expect(upstream.received).toEqual([]);
    expect(upstream.closed).toBe(false);
    client.ws.close();
  });
});

describe('either side closing closes the other', () => {
  it('client gone: the Azure socket is closed within seconds', async () => {
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    const upstream = lastSession();
    client.ws.close();
    await eventually(() => upstream.closed, 3000, 'the Azure socket to close');
  });

  it('Azure gone: the client gets an OpenAI-shaped error event and is disconnected', async () => {
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    client.ws.send(JSON.stringify({ type: 'test.close' }));
    await client.closed;
    const last = JSON.parse(client.received.at(-1)!);
    expect(last).toMatchObject({ type: 'error', error: { type: 'server_error', code: 'upstream_closed' } });
  });

  it('Azure refusing the session: the client gets an error event and is disconnected', async () => {
    rt.options.refuseWith = 503;
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await client.closed;
    expect(client.received.map((e) => JSON.parse(e))).toEqual([expect.objectContaining({ type: 'error', error: expect.objectContaining({ type: 'server_error' }) })]);
  });

  it('leaves no socket or map entry behind after 100 sessions', async () => {
    pubsub.alternate = true;
    const azureBefore = rt.sessions.length;
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timersBefore = timers();
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 10 }, async () => {
        const { body } = await newSession(batch % 2 ? a : b);
        const client = await connect(body.url as string);
        await eventually(() => client.received.length >= 1, 5000, 'session.created');
        client.ws.send(JSON.stringify({ type: 'response.create' }));
        await eventually(() => client.received.some((e) => e.includes('response.done')), 5000, 'response.done');
        client.ws.close();
        await client.closed;
      }));
    }
    expect(rt.sessions.length - azureBefore).toBe(100);
    await eventually(() => rt.sessions.every((s) => s.closed), 5000, 'every Azure socket to close');
    await eventually(() => realtimeHubOf(a.gateway).openSessions + realtimeHubOf(b.gateway).openSessions === 0, 5000, 'the owners to forget their sessions');
    await eventually(() => pubsub.connections.size === 0, 5000, 'every Web PubSub connection, the gateway\'s own included, to close');
    // Per-session timers (the cut-off for an Azure socket that will not close) are gone with their sessions.
    await eventually(() => timers() - timersBefore < 10, 5000, 'session timers to be cleared');
  }, 60_000);
});

describe('the local host\'s direct socket', () => {
  it('relays ws://…/v1/realtime?model=… with the key as a header or as the browser subprotocol', async () => {
    const url = `${a.url.replace('http', 'ws')}/v1/realtime?model=${MODEL}`;
    for (const options of [{ headers: { authorization: `Bearer ${PROXY_KEY}` } }, { protocols: ['realtime', `openai-insecure-api-key.${PROXY_KEY}`] }]) {
      const ws = 'protocols' in options ? new WebSocket(url, options.protocols) : new WebSocket(url, options);
      const received: string[] = [];
      ws.on('message', (d) => received.push(String(d)));
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ type: 'response.create' }));
      await eventually(() => received.some((e) => e.includes('response.done')), 5000, 'response.done');
      expect(types(received)[0]).toBe('session.created');
      const upstream = lastSession();
      ws.close();
      await eventually(() => upstream.closed, 3000, 'the Azure socket to close');
    }
    expect(a.server.realtime.sessions.size).toBe(0);
  });

  it('refuses a bad key or model with an OpenAI-shaped HTTP error, before opening Azure\'s socket', async () => {
    const sockets = rt.sessions.length;
    for (const [path, headers, status] of [[`/v1/realtime?model=${MODEL}`, { authorization: 'Bearer nope' }, 401], ['/v1/realtime?model=gpt-4o-mini', { authorization: `Bearer ${PROXY_KEY}` }, 400]] as const) {
      const ws = new WebSocket(`${a.url.replace('http', 'ws')}${path}`, { headers });
      const res = await new Promise<{ statusCode?: number }>((resolve) => ws.once('unexpected-response', (_req, r) => resolve(r)));
      expect(res.statusCode).toBe(status);
    }
    expect(rt.sessions.length).toBe(sockets);
  });
});
