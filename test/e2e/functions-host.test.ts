import http from 'node:http';
import path from 'node:path';
import { readFileSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../../src/routes';
import { timerTable } from '../../src/timers';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { CapturedApp, Registration, loadAppLikeTheWorker } from '../support/functions-core';
import { AZURE_KEY, PROXY_KEY, eventually } from '../support/harness';

const root = path.resolve(__dirname, '../..');
let app: CapturedApp;
let sim: AzureOpenAISimulator;
let httpUri: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
  await sim.start();
  Object.assign(process.env, {
    PROXY_API_KEY: PROXY_KEY,
    AZURE_OPENAI_ENDPOINT: sim.url,
    AZURE_OPENAI_API_KEY: AZURE_KEY,
    MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini': ['chat-a'], 'text-embedding-3-small': ['embed'] }),
    // Short, for the answer that stalls below; every other answer here flows without a pause that long.
    UPSTREAM_IDLE_TIMEOUT_MS: '1500',
  });
  app = loadAppLikeTheWorker(root);
  // What the worker asks at start: with HTTP streaming on, the library opens its HTTP proxy.
  const capabilities = await app.programmingModel.getCapabilities({});
  httpUri = capabilities.HttpUri;
});

afterAll(async () => {
  app?.restore();
  process.env = savedEnv;
  await sim.close();
});

describe('the Functions host contract', () => {
  it('package.json main names the built entry points, and they exist', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.main).toBe('dist/src/{index.js,functions/*.js}');
    expect(app.files.map((f) => path.relative(root, f))).toContain(path.join('dist', 'src', 'index.js'));
    for (const f of app.files) expect(existsSync(f)).toBe(true);
  });

  it('registers every route of the route table as an anonymous HTTP function with its methods and route', () => {
    expect(app.registrations.map((r) => r.metadata.name).sort()).toEqual([...routeTable, ...timerTable].map((r) => r.name).sort());
    for (const route of routeTable) {
      const reg = app.registrations.find((r) => r.metadata.name === route.name)!;
      const bindings = Object.values(reg.metadata.bindings);
      const trigger = bindings.find((b) => b.type === 'httpTrigger')!;
      expect(trigger).toMatchObject({ direction: 'in', authLevel: 'anonymous', route: route.route, methods: [...route.methods] });
      expect(bindings.find((b) => b.type === 'http')).toMatchObject({ direction: 'out' });
    }
  });

  it('registers every timer as a timer-triggered function with its schedule, and runs it through the programming model', async () => {
    for (const timer of timerTable) {
      const reg = app.registrations.find((r) => r.metadata.name === timer.name)!;
      const bindings = Object.values(reg.metadata.bindings);
      expect(bindings).toEqual([expect.objectContaining({ type: 'timerTrigger', direction: 'in', schedule: timer.schedule })]);
    }
    // Without Web PubSub configured, the realtime sweep has nothing to do and ends cleanly.
    const reg = app.registrations.find((r) => r.metadata.name === 'realtimeSweep')!;
    const triggerName = Object.keys(reg.metadata.bindings)[0];
    const model = app.programmingModel.getInvocationModel({
      invocationId: 'timer-1', metadata: reg.metadata,
      request: { invocationId: 'timer-1', inputData: [{ name: triggerName, data: { json: JSON.stringify({ Schedule: { AdjustForDST: true }, ScheduleStatus: null, IsPastDue: false }) } }], triggerMetadata: {} },
      log: () => {}, state: undefined,
    });
    const { context, inputs } = await model.getArguments();
    await expect(model.invokeFunction(context, inputs, reg.callback)).resolves.toBeUndefined();
  });

  it('turns HTTP streaming on (the library opens its streaming proxy for the host)', () => {
    expect(httpUri).toMatch(/^http:\/\/localhost:\d+\/$/);
  });

  it('host.json sets the empty route prefix, so paths match OpenAI\'s', () => {
    const host = JSON.parse(readFileSync(path.join(root, 'host.json'), 'utf8'));
    expect(host.version).toBe('2.0');
    expect(host.extensions.http.routePrefix).toBe('');
  });

  it('serves a streamed chat completion through the real programming model, chunk by chunk', async () => {
    const reg = app.registrations.find((r) => r.metadata.name === 'chatCompletions')!;
    const release = sim.holdStreams();
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'via functions' }] });
    const { response, invocation } = invoke(reg, '/v1/chat/completions', body, { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' });
    const res = await response;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    const first = await new Promise<string>((resolve) => res.once('data', (c: Buffer) => resolve(c.toString())));
    expect(first).toContain('"role":"assistant"');
    expect(first).not.toContain('prompt_filter_results');
    release();
    let rest = '';
    for await (const c of res) rest += c;
    expect(rest.trim().endsWith('data: [DONE]')).toBe(true);
    await invocation;
  });

  it('answers a path no function takes, or a method its route does not, in OpenAI\'s shape through the catch-all, which sorts last', async () => {
    // The host tries routes in the order of their functions' names (Azure/azure-functions-host#9876).
    const names = app.registrations.filter((r) => Object.values(r.metadata.bindings).some((b) => b.type === 'httpTrigger')).map((r) => r.metadata.name);
    expect([...names].sort().at(-1)).toBe('zzUnmatchedV1');
    const reg = app.registrations.find((r) => r.metadata.name === 'zzUnmatchedV1')!;
    for (const [urlPath, method, status, code, allow] of [['/v1/chat/complete', 'POST', 404, 'unknown_url', undefined], ['/v1/chat/completions', 'GET', 405, 'method_not_allowed', 'POST'], ['/v1/responses/resp_1', 'PUT', 405, 'method_not_allowed', 'GET, DELETE'], ['/v1/realtime', 'GET', 404, 'unknown_url', undefined]] as const) {
      const { response, invocation } = invoke(reg, urlPath, '', { authorization: `Bearer ${PROXY_KEY}` }, method);
      const res = await response;
      let text = '';
      for await (const c of res) text += c;
      await invocation;
      expect(res.statusCode, `${method} ${urlPath}`).toBe(status);
      expect(JSON.parse(text).error).toMatchObject({ code, message: expect.any(String), type: 'invalid_request_error' });
      expect(res.headers.allow).toBe(allow);
      // OpenAI's realtime socket address is not where sessions start here: the answer says where they do.
      if (urlPath === '/v1/realtime') expect(JSON.parse(text).error.message).toContain('POST /v1/realtime/client_secrets');
    }
  });

  it('answers a wrong key with OpenAI\'s 401 through the host path', async () => {
    const reg = app.registrations.find((r) => r.metadata.name === 'listModels')!;
    const { response, invocation } = invoke(reg, '/v1/models', '', { authorization: 'Bearer wrong' }, 'GET');
    const res = await response;
    let text = '';
    for await (const c of res) text += c;
    await invocation;
    expect(res.statusCode).toBe(401);
    expect(JSON.parse(text).error.code).toBe('invalid_api_key');
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('serves routes with parameters from the route values the host sends: an Azure-style path and a model by id', async () => {
    const azure = app.registrations.find((r) => r.metadata.name === 'azurePaths')!;
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'by deployment path' }] });
    const { response, invocation } = invoke(azure, '/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21', body, { 'api-key': PROXY_KEY, 'content-type': 'application/json' }, 'POST', { operation: 'deployments/gpt-4o-mini/chat/completions' });
    const res = await response;
    let text = '';
    for await (const c of res) text += c;
    await invocation;
    expect(res.statusCode, text).toBe(200);
    expect(JSON.parse(text).choices[0].message.content).toContain('by deployment path');

    const model = app.registrations.find((r) => r.metadata.name === 'retrieveModel')!;
    const got = invoke(model, '/v1/models/gpt-4o-mini', '', { authorization: `Bearer ${PROXY_KEY}` }, 'GET', { model: 'gpt-4o-mini' });
    const answer = await got.response;
    let json = '';
    for await (const c of answer) json += c;
    await got.invocation;
    expect(answer.statusCode, json).toBe(200);
    expect(JSON.parse(json)).toMatchObject({ id: 'gpt-4o-mini', object: 'model' });
  });

  it('cancels the upstream call when the client leaves mid-stream, as the local host does', async () => {
    sim.streamIntervalMs = 10;
    try {
      const reg = app.registrations.find((r) => r.metadata.name === 'chatCompletions')!;
      const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, max_tokens: 5000, messages: [{ role: 'user', content: 'a long answer' }] });
      const { response, invocation } = invoke(reg, '/v1/chat/completions', body, { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' });
      const settled = invocation.then(() => 'succeeded', () => 'failed');
      const res = await response;
      await new Promise((r) => res.once('data', r));
      const call = sim.calls.at(-1)!;
      // The host closes its request to the worker when its client goes (YARP cancels the forwarded request).
      res.destroy();
      await eventually(() => call.aborted, 2000, 'the upstream stream to be cancelled');
      expect(call.sent).toBeLessThan(5000);
      // A hang-up is not the invocation's failure: it ends quietly, and the request's log line says the client left.
      expect(await settled).toBe('succeeded');
    } finally {
      sim.streamIntervalMs = 0;
    }
  });

  it('holds Azure\'s answer back while the client reads slowly, rather than reading it all into memory', async () => {
    const reg = app.registrations.find((r) => r.metadata.name === 'chatCompletions')!;
    // About 30 MB of events: far more than the sockets between Azure and the client hold.
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, max_tokens: 200_000, messages: [{ role: 'user', content: 'a very long answer' }] });
    const { response, invocation } = invoke(reg, '/v1/chat/completions', body, { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' });
    const settled = invocation.catch(() => {});
    const res = await response;
    await new Promise((r) => res.once('data', r));
    res.pause();
    const call = sim.calls.at(-1)!;
    // Once the buffers between are full, Azure is not read from while the client reads nothing.
    let sent = -1;
    await eventually(async () => {
      const before = call.sent;
      await new Promise((r) => setTimeout(r, 300));
      sent = call.sent;
      return sent === before;
    }, 10_000, 'the upstream to be held back');
    expect(call.finished).toBe(false);
    expect(sent).toBeLessThan(200_000);
    res.destroy();
    await eventually(() => call.aborted, 2000, 'the upstream stream to be cancelled');
    await settled;
  });

  it('breaks the client\'s response when Azure breaks off a long answer midway, rather than leaving it waiting for the rest', async () => {
    const reg = app.registrations.find((r) => r.metadata.name === 'embeddings')!;
    // Half of a JSON answer too large to hold whole, then nothing: the gateway's idle timeout gives up on it.
    sim.setBehaviour('embed', { mode: 'stall', times: 1 });
    const body = JSON.stringify({ model: 'text-embedding-3-small', input: Array.from({ length: 24 }, (_, i) => `sentence number ${i}`) });
    const { response, invocation } = invoke(reg, '/v1/embeddings', body, { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' });
    const failed = invocation.then(() => false, () => true);
    const res = await response;
    expect(res.statusCode).toBe(200);
    const declared = Number(res.headers['content-length']);
    let received = 0;
    const outcome = await new Promise<string>((resolve) => {
      res.on('data', (c: Buffer) => (received += c.length));
      res.once('end', () => resolve('ended'));
      res.once('error', () => resolve('broken'));
      res.once('close', () => resolve(res.complete ? 'ended' : 'broken'));
    });
    expect(outcome).toBe('broken');
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(declared);
    // The worker reports the invocation failed, as it did.
    expect(await failed).toBe(true);
  });

  it('registers a shutdown hook (appTerminate) that lets go of realtime sessions only: a streaming answer still finishes', async () => {
    const terminate = app.hooks.filter((h) => h.name === 'appTerminate');
    expect(terminate).toHaveLength(1);
    const reg = app.registrations.find((r) => r.metadata.name === 'chatCompletions')!;
    const release = sim.holdStreams();
    const { response, invocation } = invoke(reg, '/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'until the end' }] }), { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' });
    const res = await response;
    let text = await new Promise<string>((resolve) => res.once('data', (c: Buffer) => resolve(c.toString())));
    await terminate[0].callback({ hookData: {}, appHookData: {} });
    release();
    for await (const c of res) text += c;
    await invocation;
    // Every word of the answer came, and the stream's proper end.
    expect([...text.matchAll(/"delta":\{[^}]*"content":"([^"]*)"/g)].map((m) => m[1]).join('')).toBe('Simulated reply to: until the end');
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
  });
});

let invocationCount = 0;

/**
 * Plays the host's part of one invocation: the RPC invocation request to the
 * worker, and the HTTP request it forwards to the worker's streaming proxy.
 */
function invoke(reg: Registration, urlPath: string, body: string, headers: Record<string, string>, method = 'POST', routeValues: Record<string, string> = {}) {
  const invocationId = `inv-${++invocationCount}`;
  const triggerName = Object.entries(reg.metadata.bindings).find(([, b]) => b.type === 'httpTrigger')![0];
  const model = app.programmingModel.getInvocationModel({
    invocationId,
    metadata: reg.metadata,
    request: {
      invocationId,
      inputData: [{ name: triggerName, data: { http: {} } }],
      // The host sends the headers, and each route value by its template's name (Azure/azure-functions-host#9840).
      triggerMetadata: { Headers: { json: JSON.stringify(headers) }, ...Object.fromEntries(Object.entries(routeValues).map(([name, value]) => [name, { string: value }])) },
    },
    log: () => {},
    state: undefined,
  });
  const invocation = (async () => {
    const { context, inputs } = await model.getArguments();
    const result = await model.invokeFunction(context, inputs, reg.callback);
    await model.getResponse(context, result);
  })();
  const target = new URL(httpUri);
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: target.port, path: urlPath, method,
      headers: { ...headers, 'x-ms-invocation-id': invocationId, 'x-forwarded-host': 'gateway.example', 'x-forwarded-proto': 'https' },
    }, resolve);
    req.on('error', reject);
    req.end(body);
  });
  return { response, invocation };
}
