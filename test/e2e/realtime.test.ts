import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { RealtimeSimulator } from '../../src/simulator/realtime';
import { RealtimeHub } from '../../src/realtime/hub';
import { LocalServer } from '../../src/local/server';
import { routeTable } from '../../src/routes';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';
import { Azurite, startAzurite } from '../support/azurite';
import { TableClient } from '@azure/data-tables';
import { TableSessionStore } from '../../src/realtime/session-store';
import { GatewayChild, startGatewayChild } from '../support/gateway-process';
import { selfSignedCert } from '../support/tls';
import { WebPubSubStandIn } from '../support/web-pubsub';

const MODEL = 'gpt-4o-mini-realtime-preview';
const DATED = 'gpt-4o-realtime-dated';
let sim: AzureOpenAISimulator;
let rt: RealtimeSimulator;
let azurite: Azurite;
let pubsub: WebPubSubStandIn;
let a: Harness;
let b: Harness;

/** Settings every gateway instance of this file shares (Table Storage holds the sessions' leases). */
const settings = () => ({
  PROXY_API_KEY: PROXY_KEY,
  AZURE_OPENAI_ENDPOINT: sim.url,
  AZURE_OPENAI_API_KEY: AZURE_KEY,
  MODEL_DEPLOYMENTS: JSON.stringify({ [MODEL]: ['rt-a'], [DATED]: [{ deployment: 'rt-p', apiVersion: '2025-04-01-preview' }], 'gpt-4o-mini': ['chat-a'] }),
  WEBPUBSUB_CONNECTION_STRING: pubsub.connectionString(),
  // In capitals, which the service lower-cases in the events it sends (see test/support/web-pubsub.ts).
  WEBPUBSUB_HUB: 'Realtime',
  BALANCER_STORAGE_CONNECTION: azurite.connectionString,
  // One test makes Azure refuse sessions; the next should not find the deployment cooling down.
  UPSTREAM_FAILURE_COOLDOWN_MS: '1',
});

beforeAll(async () => {
  sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
  rt = installSimulatorOperations(sim);
  await sim.start();
  azurite = await startAzurite();
  pubsub = new WebPubSubStandIn('Realtime');
  await pubsub.start();
  // The service's retry delays, shortened: retries still happen, with the same ids, just sooner.
  pubsub.retryDelaysMs = [200, 600, 1000];
  a = await startHarness({ sharedSimulator: sim, env: settings });
  b = await startHarness({ sharedSimulator: sim, env: settings });
  pubsub.handlers = [`${a.url}/realtime/events`, `${b.url}/realtime/events`];
});

afterEach(() => {
  pubsub.handlers = [`${a.url}/realtime/events`, `${b.url}/realtime/events`];
  pubsub.alternate = false;
  pubsub.duplicateEvents = false;
  pubsub.route = undefined;
  pubsub.reachableDelayMs = 20;
  pubsub.withholdConnected = false;
  rt.options.deltasPerResponse = 3;
  rt.options.refuseWith = undefined;
  rt.options.stallAfterDeltas = undefined;
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await pubsub?.close();
  await azurite?.stop();
  await sim?.close();
});

const hubOf = (h: Harness) => h.gateway.realtime as RealtimeHub;

async function post(path: string, body: unknown, h: Harness = a): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const newSession = (h: Harness = a, model = MODEL) => post('/v1/realtime/sessions', { model }, h);

interface Client {
  ws: WebSocket;
  received: string[];
  closed: Promise<number>;
}

/** A plain WebSocket client collecting every server event it receives. */
async function connect(url: string, protocols?: string[]): Promise<Client> {
  const ws = new WebSocket(url, protocols);
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
const clientConnections = () => [...pubsub.connections.values()].filter((c) => !c.json);
const instanceConnections = () => [...pubsub.connections.values()].filter((c) => c.json);

/** A conversation of `appends` + 4 events from the client and `appends` + 30 back; checks order and content at both ends. */
async function converse(appends = 200): Promise<void> {
  rt.options.deltasPerResponse = appends + 20;
  const { body } = await newSession();
  const before = rt.sessions.length;
  const client = await connect(body.url as string);
  await eventually(() => client.received.length >= 1, 5000, 'session.created');
  expect(rt.sessions.length).toBe(before + 1);
  const sent: string[] = [
    JSON.stringify({ type: 'session.update', event_id: 'c0', session: { type: 'realtime', instructions: 'Be brief.', audio: { output: { voice: 'alloy' } } } }),
    ...Array.from({ length: appends }, (_, i) => JSON.stringify({ type: 'input_audio_buffer.append', event_id: `c${i + 1}`, audio: Buffer.alloc(64, i).toString('base64') })),
    JSON.stringify({ type: 'input_audio_buffer.commit', event_id: 'c-commit' }),
    JSON.stringify({ type: 'conversation.item.create', event_id: 'c-item', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] } }),
    JSON.stringify({ type: 'response.create', event_id: 'c-respond' }),
  ];
  for (const e of sent) client.ws.send(e);
  const upstream = lastSession();
  await eventually(() => client.received.some((e) => JSON.parse(e).type === 'response.done'), 20_000, 'response.done');
  expect(upstream.received).toEqual(sent);
  expect(client.received).toEqual(upstream.sent);
  expect(types(client.received).filter((t) => t === 'response.output_audio.delta')).toHaveLength(appends + 20);
  client.ws.close();
  await eventually(() => upstream.closed, 5000, 'the Azure socket to close');
}

describe('starting a realtime session', () => {
  it('POST /v1/realtime/sessions returns OpenAI\'s session object: the client secret connects, in the URL or as a Bearer header', async () => {
    const { status, body } = await newSession();
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: expect.stringMatching(/^sess_/), object: 'realtime.session', model: MODEL, client_secret: { value: expect.any(String) } });
    const now = Date.now() / 1000;
    expect(body.expires_at as number).toBeGreaterThan(now + 200);
    expect(body.expires_at as number).toBeLessThan(now + 400);
    expect((body.client_secret as { expires_at: number }).expires_at).toBe(body.expires_at);
    expect(body.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/client\/hubs\/Realtime\?access_token=/);
    // The secret alone connects: the address without the token, the token as OpenAIRealtimeWS sends its key.
    const bare = new URL(body.url as string);
    bare.search = '';
    const ws = new WebSocket(bare, { headers: { authorization: `Bearer ${(body.client_secret as { value: string }).value}` } });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(String(d)));
      ws.once('error', reject);
    });
    expect(JSON.parse(first).type).toBe('session.created');
    ws.close();
  });

  it('POST /v1/realtime/client_secrets returns GA\'s { value, expires_at, session } and honours expires_after', async () => {
    const { status, body } = await post('/v1/realtime/client_secrets', { expires_after: { anchor: 'created_at', seconds: 1200 }, session: { type: 'realtime', model: MODEL } });
    expect(status).toBe(200);
    expect(body).toMatchObject({ value: expect.any(String), session: { type: 'realtime', object: 'realtime.session', id: expect.stringMatching(/^sess_/), model: MODEL } });
    const now = Date.now() / 1000;
    expect(body.expires_at as number).toBeGreaterThan(now + 1100);
    expect(body.expires_at as number).toBeLessThan(now + 1300);
    const client = await connect(body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    client.ws.close();
    const bad = await post('/v1/realtime/client_secrets', { expires_after: { seconds: 5 }, session: { model: MODEL } });
    expect(bad.status).toBe(400);
    expect((bad.body.error as { param: string }).param).toBe('expires_after.seconds');
  });

  it('applies the session settings given at creation before anything of the client\'s, in either form of the endpoint', async () => {
    const cases = [
      { path: '/v1/realtime/sessions', body: { model: DATED, voice: 'verse', instructions: 'Speak like a pirate', client_secret: { expires_after: { anchor: 'created_at', seconds: 120 } } }, expected: { voice: 'verse', instructions: 'Speak like a pirate' } },
      { path: '/v1/realtime/client_secrets', body: { session: { type: 'realtime', model: MODEL, instructions: 'Speak like a pirate', audio: { output: { voice: 'marin' } } } }, expected: { instructions: 'Speak like a pirate', audio: { output: { voice: 'marin' } } } },
    ];
    for (const c of cases) {
      const { status, body } = await post(c.path, c.body);
      expect(status, c.path).toBe(200);
      // The response repeats the settings, as OpenAI's does.
      expect(c.path.endsWith('sessions') ? body : body.session).toMatchObject(c.expected);
      const client = await connect((body.url as string));
      await eventually(() => client.received.some((e) => JSON.parse(e).type === 'session.updated'), 5000, `${c.path}: session.updated`);
      const upstream = lastSession();
      const first = JSON.parse(upstream.received[0]);
      expect(first).toMatchObject({ type: 'session.update', session: c.expected });
      // Nothing that configures the token, or names the model, goes to Azure as a session setting.
      expect(first.session).not.toHaveProperty('client_secret');
      expect(first.session).not.toHaveProperty('model');
      const sent = JSON.stringify({ type: 'response.create', event_id: 'evt_after_settings' });
      client.ws.send(sent);
      await eventually(() => upstream.received.length >= 2, 5000, 'the client\'s event');
      expect(upstream.received[1]).toBe(sent);
      client.ws.close();
    }
    // Settings Azure refuses (GA takes no top-level speed) reach the client as Azure's error, and the operator's log.
    const refused = await post('/v1/realtime/client_secrets', { session: { type: 'realtime', model: MODEL, instructions: 'Be brief.', speed: 1.2 } });
    expect(refused.status).toBe(200);
    const client = await connect(refused.body.url as string);
    await eventually(() => client.received.some((e) => JSON.parse(e).type === 'error'), 5000, 'Azure\'s error for the settings');
    expect(JSON.parse(client.received.find((e) => JSON.parse(e).type === 'error')!).error).toMatchObject({ code: 'unknown_parameter', param: 'session.speed' });
    const warned = () => [...a.logger.entries(), ...b.logger.entries()].find((e) => e.msg === 'realtime: Azure refused the settings the session was created with');
    await eventually(() => warned() !== undefined, 2000, 'the warning');
    expect(warned()).toMatchObject({ model: MODEL, code: 'unknown_parameter', param: 'session.speed' });
    client.ws.close();
    // The beta endpoint's client_secret.expires_after is honoured: 120 s, as whole minutes go, is two.
    const timed = await post('/v1/realtime/sessions', { model: DATED, client_secret: { expires_after: { anchor: 'created_at', seconds: 120 } } });
    expect(timed.body.expires_at as number).toBeLessThan(Date.now() / 1000 + 130);
    // Settings in the protocol the model's deployments do not speak are refused, saying what to do instead.
    const betaToGa = await post('/v1/realtime/sessions', { model: MODEL, voice: 'verse' });
    expect(betaToGa.status).toBe(400);
    expect(betaToGa.body.error).toMatchObject({ code: 'unsupported_parameter', param: 'voice', message: expect.stringContaining('client_secrets') });
    const gaToBeta = await post('/v1/realtime/client_secrets', { session: { type: 'realtime', model: DATED, audio: { output: { voice: 'marin' } } } });
    expect(gaToBeta.status).toBe(400);
    expect(gaToBeta.body.error).toMatchObject({ code: 'unsupported_parameter', param: 'session.audio' });
    // More than a table row holds is refused, saying where the rest can go.
    const huge = await post('/v1/realtime/sessions', { model: DATED, instructions: 'x'.repeat(250_000) });
    expect(huge.status).toBe(400);
    expect(huge.body.error).toMatchObject({ code: 'settings_too_large', message: expect.stringContaining('session.update') });
  });

  it('a session refused for the client\'s mistake takes nothing from the key\'s limits', async () => {
    const limited = await startHarness({ sharedSimulator: sim, env: () => ({ ...settings(), PROXY_KEYS: JSON.stringify([{ name: 'voice-team', key: 'voice-team-key', rpm: 1 }]) }) });
    try {
      const create = (body: unknown) => fetch(`${limited.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer voice-team-key', 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect((await create({ model: 'gpt-4o-mini' })).status).toBe(400);
      expect((await create({ model: MODEL, voice: 'verse' })).status).toBe(400);
      // The one request a minute is still there for a session that can start.
      expect((await create({ model: MODEL })).status).toBe(200);
      expect((await create({ model: MODEL })).status).toBe(429);
    } finally {
      await limited.close();
    }
  });

  it('settings of a session are kept for every connect with its token, and dropped once it has expired', async () => {
    const store = new TableSessionStore(TableClient.fromConnectionString(azurite.connectionString, 'settingsonly', { allowInsecureConnection: true }));
    await store.putSettings('sess_taken', '{"voice":"verse"}', Date.now() + 60_000);
    // Every connect with the token gets them (a client may connect again with it), until they lapse.
    expect(await store.settingsOf('sess_taken')).toBe('{"voice":"verse"}');
    expect(await store.settingsOf('sess_taken')).toBe('{"voice":"verse"}');
    expect(await store.settingsOf('sess_never')).toBe('');
    await store.putSettings('sess_lapsed', '{"voice":"verse"}', Date.now() - 1);
    await store.putSettings('sess_live', '{"voice":"alloy"}', Date.now() + 60_000);
    await store.dropLapsedSettings(Date.now(), 8);
    expect(await store.settingsOf('sess_lapsed')).toBe('');
    expect(await store.settingsOf('sess_live')).toBe('{"voice":"alloy"}');
  });

  it('refuses a bad key, an unknown model and a non-realtime model before any socket exists', async () => {
    const sockets = rt.sessions.length;
    const connects = pubsub.events.filter((e) => e.type === 'azure.webpubsub.sys.connect').length;
    const bad = await fetch(`${a.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer nope', 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL }) });
    expect(bad.status).toBe(401);
    expect((await newSession(a, 'gpt-9-realtime')).status).toBe(404);
    const chat = await newSession(a, 'gpt-4o-mini');
    expect(chat.status).toBe(400);
    expect((chat.body.error as { message: string }).message).toContain('not a realtime model');
    expect(rt.sessions.length).toBe(sockets);
    expect(pubsub.events.filter((e) => e.type === 'azure.webpubsub.sys.connect').length).toBe(connects);
  });
});

describe('Web PubSub as it really behaves', () => {
  it('session.created reaches the client every time, however late the connection becomes reachable and wherever connected lands', async () => {
    for (const delay of [0, 60, 200]) {
      for (const connectedTo of ['same', 'other'] as const) {
        pubsub.reachableDelayMs = delay;
        pubsub.route = (event) => (event === 'connect' ? pubsub.handlers[0] : event === 'connected' && connectedTo === 'other' ? pubsub.handlers[1] : undefined);
        const clients = await Promise.all(Array.from({ length: 3 }, async () => connect((await newSession()).body.url as string)));
        for (const c of clients) {
          await eventually(() => c.received.length >= 1, 5000, `session.created (delay ${delay} ms, connected to the ${connectedTo} instance)`);
          expect(JSON.parse(c.received[0]).type).toBe('session.created');
          c.ws.close();
        }
      }
    }
  });

  it('relays 200+ events each way in order and unchanged, with events alternating between instances', async () => {
    pubsub.alternate = true;
    pubsub.reachableDelayMs = 50;
    const before = a.logger.lines.length + b.logger.lines.length;
    const start = pubsub.events.length;
    await converse();
    const handlers = new Set(pubsub.events.slice(start).filter((e) => e.type === 'azure.webpubsub.user.message').map((e) => e.handler));
    expect(handlers.size).toBe(2);
    // Sessions are logged, not each event.
    const lines = [...a.logger.entries(), ...b.logger.entries()];
    expect(lines.filter((e) => e.msg === 'request' && e.route === 'realtimeEvents')).toEqual([]);
    expect(a.logger.lines.length + b.logger.lines.length - before).toBeLessThan(20);
  });

  it('is not broken by events delivered twice with the same id', async () => {
    pubsub.duplicateEvents = true;
    pubsub.alternate = true;
    await converse(40);
  });

  it('selects the `realtime` subprotocol for a client that offers it, as OpenAIRealtimeWebSocket does', async () => {
    const { body } = await newSession();
    const token = (body.client_secret as { value: string }).value;
    const ws = new globalThis.WebSocket(body.url as string, ['realtime', `openai-insecure-api-key.${token}`]);
    const first = await new Promise<string>((resolve, reject) => {
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error('the handshake failed'));
    });
    expect(ws.protocol).toBe('realtime');
    expect(JSON.parse(first).type).toBe('session.created');
    ws.close();
  });

  it('holds one Web PubSub connection per instance, however many sessions it owns', async () => {
    pubsub.alternate = true;
    const clients = await Promise.all(Array.from({ length: 8 }, async (_, i) => connect((await newSession(i % 2 ? a : b)).body.url as string)));
    for (const c of clients) await eventually(() => c.received.length >= 1, 5000, 'session.created');
    expect(clientConnections().length).toBeGreaterThanOrEqual(8);
    expect(instanceConnections().length).toBeLessThanOrEqual(2);
    expect(new Set(instanceConnections().map((c) => c.userId)).size).toBe(instanceConnections().length);
    for (const c of clients) c.ws.close();
  });

  it('uses Azure\'s GA socket by default and the preview one for a deployment that names a dated apiVersion; the original design\'s client works', async () => {
    const ga = await connect((await newSession()).body.url as string);
    await eventually(() => ga.received.length >= 1, 5000, 'session.created');
    expect(lastSession().form).toBe('ga');
    ga.ws.close();
    const { body } = await newSession(a, DATED);
    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      // As in the seed: a WebSocket, a session.update on open, JSON events in onmessage.
      const ws = new globalThis.WebSocket(body.url as string);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'session.update', session: { model: DATED, voice: 'alloy' } }));
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
    expect(lastSession().form).toBe('preview');
  });
});

describe('the event handler protocol', () => {
  it('answers the abuse-protection handshake for its own service only', async () => {
    expect(await pubsub.validate(`${a.url}/realtime/events`)).toEqual({ status: 200, allowed: new URL(pubsub.endpoint).host });
    expect((await pubsub.validate(`${a.url}/realtime/events`, 'evil.example.com')).status).toBe(400);
  });

  it('takes an event if any of its signatures matches, and refuses forged or unsigned ones, which change nothing', async () => {
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    const upstream = lastSession();
    const c = clientConnections().at(-1)!;
    const handler = `${a.url}/realtime/events`;
    const message = JSON.stringify({ type: 'response.create' });
    const forged = await pubsub.post(handler, 'message', c, message, 'text/plain', 'x1', `sha256=${'0'.repeat(64)}`);
    const unsigned = await pubsub.post(handler, 'message', c, message, 'text/plain', 'x2', '');
    const forgedClose = await pubsub.post(handler, 'disconnected', c, '{}', 'application/json', 'x3', 'sha256=abc');
    expect([forged.status, unsigned.status, forgedClose.status]).toEqual([401, 401, 401]);
    await new Promise((r) => setTimeout(r, 200));
    expect(upstream.received).toEqual([]);
    expect(upstream.closed).toBe(false);
    // A wrong signature beside the right one (in capitals, as .NET writes hex) is fine.
    const right = pubsub.signature(c.id).split(',')[0].replace(/=(.*)$/, (_m, hex: string) => `=${hex.toUpperCase()}`);
    const mixed = await pubsub.post(handler, 'message', c, message, 'text/plain', 'x4', `sha256=${'1'.repeat(64)},${right}`);
    expect(mixed.status).toBe(204);
    await eventually(() => upstream.received.length === 1, 3000, 'the event signed with the secondary key');
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

  it('client gone unheard (its disconnected event lost): the owner finds out by asking the service, and closes the Azure socket', async () => {
    // Renewals every 200 ms, so the check that comes every 15 of them comes every 3 s.
    const c = await startHarness({ sharedSimulator: sim, env: () => ({ ...settings(), REALTIME_LEASE_MS: '600' }) });
    try {
      pubsub.handlers = [`${c.url}/realtime/events`];
      // The service gives up on a disconnected event its handler never answered, and only logs it.
      pubsub.route = (event) => (event === 'disconnected' ? 'http://127.0.0.1:9/realtime/events' : undefined);
      const { body } = await newSession(c);
      const client = await connect(body.url as string);
      await eventually(() => client.received.length >= 1, 5000, 'session.created');
      const upstream = lastSession();
      client.ws.close();
      await client.closed;
      await new Promise((r) => setTimeout(r, 1000));
      expect(upstream.closed).toBe(false);
      await eventually(() => upstream.closed, 6000, 'the Azure socket to close');
    } finally {
      await c.close();
    }
  });

  it('an instance whose connection to Web PubSub hung while opening gives up on it in seconds, and opens it again for the next client', async () => {
    const c = await startHarness({ sharedSimulator: sim, env: settings });
    const retries = pubsub.retryDelaysMs;
    try {
      pubsub.handlers = [`${c.url}/realtime/events`];
      // One connect event, not one per retry, each waiting out its own open.
      pubsub.retryDelaysMs = [];
      pubsub.withholdConnected = true;
      const first = await newSession(c);
      const refused = await connect(first.body.url as string).then((client) => client.closed, () => 'refused');
      expect(refused).toBe('refused');
      pubsub.withholdConnected = false;
      const { body } = await newSession(c);
      const client = await connect(body.url as string);
      await eventually(() => client.received.some((e) => e.includes('"session.created"')), 10_000, 'session.created on the next try');
      client.ws.close();
    } finally {
      pubsub.retryDelaysMs = retries;
      await c.close();
    }
  });

  it('Azure gone: the client gets an OpenAI-shaped error event and is disconnected', async () => {
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    client.ws.send(JSON.stringify({ type: 'test.close' }));
    await client.closed;
    expect(JSON.parse(client.received.at(-1)!)).toMatchObject({ type: 'error', error: { type: 'server_error', code: 'upstream_closed' } });
  });

  it('Azure refusing the session: the client gets an error event (however late it becomes reachable) and is disconnected', async () => {
    rt.options.refuseWith = 503;
    pubsub.reachableDelayMs = 150;
    const { body } = await newSession();
    const client = await connect(body.url as string);
    await client.closed;
    expect(client.received.map((e) => JSON.parse(e))).toEqual([expect.objectContaining({ type: 'error', error: expect.objectContaining({ type: 'server_error', code: 'upstream_unavailable' }) })]);
  });

  it('leaves no socket, session record or timer behind after 100 sessions', async () => {
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
    await eventually(() => hubOf(a).openSessions + hubOf(b).openSessions === 0, 5000, 'the owners to forget their sessions');
    await eventually(() => clientConnections().length === 0, 5000, 'every client connection to close');
    expect(instanceConnections().length).toBeLessThanOrEqual(2);
    await eventually(async () => (await sessionRecords()) === 0, 5000, 'every session record to be removed');
    await eventually(() => timers() - timersBefore < 10, 5000, 'session timers to be cleared');
  }, 60_000);
});

/** Session records and their items left in the table (settings kept for a token until it expires are not a session's). */
async function sessionRecords(): Promise<number> {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'gatewaybalancer', { allowInsecureConnection: true });
  let n = 0;
  for await (const e of table.listEntities()) if (/^rt(session|items)-/.test(String(e.partitionKey))) n++;
  return n;
}

describe('losing the instance that owns a session', () => {
  let owner: GatewayChild | undefined;
  afterEach(async () => owner?.kill());

  /** A session owned by a gateway in a process of its own, with a conversation and a response in flight. */
  async function sessionOnAChild(): Promise<{ client: Client; inFlight: string }> {
    owner = await startGatewayChild(settings());
    pubsub.route = (event) => (event === 'connect' ? `${owner!.url}/realtime/events` : undefined);
    pubsub.handlers = [`${owner.url}/realtime/events`];
    const client = await connect((await newSession()).body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    client.ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', instructions: 'Remember names.' } }));
    client.ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'My name is Ada.' }] } }));
    client.ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => types(client.received).includes('response.done'), 5000, 'the first answer');
    rt.options.stallAfterDeltas = 2;
    client.ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => types(client.received).filter((t) => t === 'response.output_audio.delta').length >= 5, 5000, 'a second answer under way');
    const inFlight = JSON.parse(client.received.findLast((e) => e.includes('"response.created"'))!).response.id as string;
    // Long enough for the owner to have recorded it (it writes at once, not at the next renewal).
    await new Promise((r) => setTimeout(r, 300));
    rt.options.stallAfterDeltas = undefined;
    return { client, inFlight };
  }

  it('another instance resumes it: the next response.create is answered with the conversation replayed, the cut response ends incomplete', async () => {
    const { client, inFlight } = await sessionOnAChild();
    const azureBefore = rt.sessions.length;
    await owner!.kill();
    const lostAt = Date.now();
    // The platform's load balancer now sends Web PubSub's posts to the instances that are left.
    pubsub.route = undefined;
    pubsub.handlers = [`${a.url}/realtime/events`, `${b.url}/realtime/events`];
    pubsub.alternate = true;
    const seen = client.received.length;
    client.ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => types(client.received.slice(seen)).includes('response.done') && client.received.slice(seen).filter((e) => e.includes('"response.done"')).length >= 2, 15_000, 'an answer after the loss');
    const after = client.received.slice(seen).map((e) => JSON.parse(e));
    // First the cut response, ended for the client; then the new answer, which heard the conversation from before.
    expect(after[0]).toMatchObject({ type: 'response.done', response: { id: inFlight, status: 'incomplete' } });
    const transcript = after.find((e) => e.type === 'response.output_audio_transcript.done').transcript as string;
    expect(transcript).toContain('My name is Ada.');
    // Azure's new session.created and its answers to the replay stay with the gateway.
    expect(after.filter((e) => e.type === 'session.created' || e.type === 'session.updated')).toEqual([]);
    expect(after.filter((e) => e.type === 'conversation.item.added' && e.item.role === 'user')).toEqual([]);
    const resumed = rt.sessions.slice(azureBefore);
    expect(resumed).toHaveLength(1);
    expect(resumed[0].received.map((e) => JSON.parse(e).type)).toEqual(['session.update', 'conversation.item.create', 'conversation.item.create', 'response.create']);
    expect(Date.now() - lostAt).toBeLessThan(10_000);
    client.ws.close();
  }, 30_000);

  it('when no deployment can take it, the silent client gets an error event and is closed within 10 s', async () => {
    const { client } = await sessionOnAChild();
    rt.options.refuseWith = 503;
    await owner!.kill();
    const lostAt = Date.now();
    pubsub.route = undefined;
    pubsub.handlers = [`${a.url}/realtime/events`, `${b.url}/realtime/events`];
    await client.closed;
    expect(Date.now() - lostAt).toBeLessThan(10_000);
    expect(JSON.parse(client.received.at(-1)!)).toMatchObject({ type: 'error', error: { code: 'upstream_unavailable' } });
  }, 30_000);
});

describe('an instance shutting down', () => {
  it('hands its sessions over at once: the next answer comes well within the lease, with the conversation kept', async () => {
    const c = await startHarness({ sharedSimulator: sim, env: settings });
    pubsub.handlers = [`${c.url}/realtime/events`];
    const client = await connect((await newSession(c)).body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    client.ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'My name is Grace.' }] } }));
    client.ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => types(client.received).includes('response.done'), 5000, 'the first answer');
    await c.close();
    const closedAt = Date.now();
    pubsub.handlers = [`${a.url}/realtime/events`, `${b.url}/realtime/events`];
    const seen = client.received.length;
    client.ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => types(client.received.slice(seen)).includes('response.done'), 5000, 'an answer from another instance');
    // The default lease is 6 s: far less means the hand-over, not the lease, moved the session.
    expect(Date.now() - closedAt).toBeLessThan(3000);
    const transcript = client.received.slice(seen).map((e) => JSON.parse(e)).find((e) => e.type === 'response.output_audio_transcript.done').transcript;
    expect(transcript).toContain('My name is Grace.');
    client.ws.close();
  });
});

describe('an instance shutting down without shared storage', () => {
  it('tells each client its session has ended and closes it, since no other instance can take it over', async () => {
    // No BALANCER_STORAGE_CONNECTION: the sessions' records live in this process alone.
    const solo = await startHarness({ sharedSimulator: sim, env: () => ({ ...settings(), BALANCER_STORAGE_CONNECTION: '' }) });
    pubsub.handlers = [`${solo.url}/realtime/events`];
    const client = await connect((await newSession(solo)).body.url as string);
    await eventually(() => client.received.length >= 1, 5000, 'session.created');
    const upstream = lastSession();
    await solo.close();
    expect(await Promise.race([client.closed, new Promise((r) => setTimeout(() => r('still open'), 5000))])).not.toBe('still open');
    expect(JSON.parse(client.received.at(-1)!)).toMatchObject({ type: 'error', error: { code: 'gateway_stopping' } });
    expect(solo.logger.entries().filter((e) => e.msg === 'realtime session ended').at(-1)).toMatchObject({ reason: 'gateway stopping' });
    await eventually(() => upstream.closed, 3000, 'the Azure socket to close');
  });
});

describe('the openai SDK\'s realtime client', () => {
  let tlsPubsub: WebPubSubStandIn;
  let c: Harness;
  const tls = selfSignedCert();

  beforeAll(async () => {
    tlsPubsub = new WebPubSubStandIn('Realtime', { tls });
    await tlsPubsub.start();
    c = await startHarness({ sharedSimulator: sim, env: () => ({ ...settings(), WEBPUBSUB_CONNECTION_STRING: tlsPubsub.connectionString() }), deps: { serviceTls: { ca: tls.cert } } });
    tlsPubsub.handlers = [`${c.url}/realtime/events`];
  });
  afterAll(async () => {
    await c?.close();
    await tlsPubsub?.close();
  });

  it('OpenAIRealtimeWS connects with what POST /v1/realtime/sessions returns and completes a response', async () => {
    const { body } = await newSession(c);
    const session = body as { url: string; client_secret: { value: string } };
    const client = new OpenAI({ apiKey: session.client_secret.value, baseURL: 'https://gateway.example/v1' });
    const rtc = new OpenAIRealtimeWS({ model: MODEL, buildRealtimeURL: () => new URL(session.url), options: { ca: tls.cert } }, client);
    const events: string[] = [];
    rtc.on('event', (e) => events.push(e.type));
    const errors: unknown[] = [];
    rtc.on('error', (e) => errors.push(e));
    await new Promise((r) => rtc.socket.once('open', r));
    rtc.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi from the SDK' }] } });
    rtc.send({ type: 'response.create' });
    const done = await new Promise<{ response: { status?: string } }>((resolve) => rtc.on('response.done', resolve));
    expect(done.response.status).toBe('completed');
    expect(events[0]).toBe('session.created');
    expect(errors).toEqual([]);
    rtc.close();
  });
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
      const lines = a.logger.entries().length;
      ws.close();
      await eventually(() => upstream.closed, 3000, 'the Azure socket to close');
      // Each session logs its start and its end, as one over Web PubSub does.
      await eventually(() => a.logger.entries().slice(lines).some((e) => e.msg === 'realtime session ended'), 3000, 'the session\'s end line');
      const ended = a.logger.entries().slice(lines).find((e) => e.msg === 'realtime session ended')!;
      expect(ended).toMatchObject({ model: MODEL, reason: 'client closed', requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      // The session's lines share its id, so its start and end can be put together.
      expect(a.logger.entries().filter((e) => e.msg === 'realtime session started').at(-1)).toMatchObject({ requestId: ended.requestId });
    }
    expect(a.logger.entries().filter((e) => e.msg === 'realtime session started').slice(-2)).toEqual([
      expect.objectContaining({ model: MODEL, deployment: expect.any(String), tried: 1 }), expect.objectContaining({ model: MODEL, deployment: expect.any(String), tried: 1 }),
    ]);
    expect(a.server.realtime.sessions.size).toBe(0);
  });

  it('stopping the local host tells a client its session has ended, closes it as going away, and logs why', async () => {
    const server = new LocalServer(a.gateway, routeTable);
    const url = await server.listen(0);
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/realtime?model=${MODEL}`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
    const received: string[] = [];
    ws.on('message', (d) => received.push(String(d)));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await eventually(() => received.length >= 1, 5000, 'session.created');
    const lines = a.logger.entries().length;
    await server.close();
    expect(await closed).toBe(1001);
    expect(JSON.parse(received.at(-1)!)).toMatchObject({ type: 'error', error: { code: 'gateway_stopping' } });
    expect(a.logger.entries().slice(lines).find((e) => e.msg === 'realtime session ended')).toMatchObject({ reason: 'gateway stopping' });
  });

  it('a browser that offers the key\'s subprotocol without `realtime` is told to offer it, before Azure\'s socket is opened', async () => {
    const sockets = rt.sessions.length;
    const ws = new WebSocket(`${a.url.replace('http', 'ws')}/v1/realtime?model=${MODEL}`, [`openai-insecure-api-key.${PROXY_KEY}`]);
    const res = await new Promise<{ statusCode?: number; body: string }>((resolve) => ws.once('unexpected-response', (_req, r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c));
      r.on('end', () => resolve({ statusCode: r.statusCode, body }));
    }));
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body).error.message).toContain("'realtime'");
    expect(rt.sessions.length).toBe(sockets);
  });

  it('refuses a bad key or model with an OpenAI-shaped HTTP error, before opening Azure\'s socket', async () => {
    const sockets = rt.sessions.length;
    for (const [path, headers, status] of [[`/v1/realtime?model=${MODEL}`, { authorization: 'Bearer nope' }, 401], ['/v1/realtime?model=gpt-4o-mini', { authorization: `Bearer ${PROXY_KEY}` }, 400]] as const) {
      const ws = new WebSocket(`${a.url.replace('http', 'ws')}${path}`, { headers });
      const res = await new Promise<{ statusCode?: number }>((resolve) => ws.once('unexpected-response', (_req, r) => resolve(r)));
      expect(res.statusCode).toBe(status);
      // Logged, as a refused HTTP request is.
      expect(a.logger.entries().filter((e) => e.msg === 'realtime session refused').at(-1)).toMatchObject({ status, error: expect.any(String) });
    }
    expect(rt.sessions.length).toBe(sockets);
  });

  it('100 bad or abandoned handshakes leave no Azure socket open', async () => {
    const before = rt.sessions.length;
    const { port } = new URL(a.url);
    const head = (key: string) => `GET /v1/realtime?model=${MODEL} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${PROXY_KEY}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;
    await Promise.all(Array.from({ length: 100 }, (_, i) => new Promise<void>((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => {
        // Half send a key that is no key; half a good handshake, gone the moment it is sent.
        socket.write(head(i % 2 ? 'not-a-key' : Buffer.alloc(16, i).toString('base64')));
        if (i % 2 === 0) socket.destroy();
      });
      socket.on('data', () => socket.destroy());
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    })));
    await new Promise((r) => setTimeout(r, 300));
    await eventually(() => rt.sessions.slice(before).every((s) => s.closed), 5000, 'every Azure socket opened to close');
    expect(rt.sessions.length - before).toBeLessThanOrEqual(50);
    expect(a.server.realtime.sessions.size).toBe(0);
  });

  it('a client that stops reading while Azure floods keeps the gateway\'s memory bounded and /health fast, and is dropped with an error event', async () => {
    const server = new LocalServer(a.gateway, routeTable, { realtime: { behindLimitMs: 2000 } });
    const url = await server.listen(0);
    try {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/realtime?model=${MODEL}`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
      const received: string[] = [];
      ws.on('message', (d) => received.push(String(d).slice(0, 200)));
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      await new Promise((r) => ws.once('open', r));
      await eventually(() => received.length >= 1, 5000, 'session.created');
      const before = process.memoryUsage().rss;
      ws.pause();
      // Far more than the gateway may hold: 200 MB of audio, offered as fast as the socket takes it.
      ws.send(JSON.stringify({ type: 'test.flood', bytes: 200 * 1024 * 1024 }));
      const health: number[] = [];
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const t = performance.now();
        await new Promise<void>((resolve, reject) => {
          http.get(`${url}/health`, (res) => res.resume().once('end', resolve).once('error', reject)).once('error', reject);
        });
        health.push(performance.now() - t);
      }
      const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
      // The bound: 1 MiB queued in the relay and 1 MiB in the client's socket, plus one event each
      // way; the rest of the allowance is this process's own noise (simulator and client share it).
      expect(grown).toBeLessThan(48);
      health.sort((x, y) => x - y);
      expect(health[4]).toBeLessThan(50);
      expect(health[9]).toBeLessThan(500);
      await eventually(() => server.realtime.sessions.size === 0, 10_000, 'the slow client to be dropped');
      // It reads again: what was queued for it ends with the error event, then the socket closes.
      ws.resume();
      await closed;
      expect(received.some((e) => e.includes('client_too_slow'))).toBe(true);
      await eventually(() => lastSession().closed, 3000, 'the Azure socket to close');
    } finally {
      await server.close();
    }
  }, 30_000);
});
