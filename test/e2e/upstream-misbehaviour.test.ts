import http from 'node:http';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AZURE_KEY, PROXY_KEY } from '../support/harness';
import { UndiciUpstream, UpstreamCall, UpstreamClient } from '../../src/azure-openai/client';
import { OwnUpstream, startOwnUpstream } from '../support/own-upstream';
import { harnessForFile } from '../support/suite';

/** What the test's own upstream does for each deployment name; a name it does not know is Azure's DeploymentNotFound. */
const answers = new Map<string, (res: http.ServerResponse, body: Buffer, operation: string) => void | Promise<void>>();
let upstream: OwnUpstream;

/** What Azure answers for a path it does not serve (an operation a resource or api-version lacks). */
const resourceNotFound = (res: http.ServerResponse) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"404","message":"Resource not found"}}');
const chatAnswer = (res: http.ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'served' } }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
const completionAnswer = (res: http.ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'gpt-35-turbo-instruct', choices: [{ index: 0, finish_reason: 'stop', text: 'served', logprobs: null }] }));

beforeAll(async () => {
  upstream = await startOwnUpstream((req, res, body) => {
    const [, deployment = '', operation = ''] = /^\/openai\/deployments\/([^/]+)\/([^?]+)/.exec(req.url ?? '') ?? [];
    const answer = answers.get(decodeURIComponent(deployment));
    if (answer) return answer(res, body, operation);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}');
  });
  answers.set('chat-only', (res, _body, operation) => (operation === 'chat/completions' ? chatAnswer(res) : resourceNotFound(res)));
  answers.set('both', (res, _body, operation) => (operation === 'chat/completions' ? chatAnswer(res) : completionAnswer(res)));
});
afterAll(async () => upstream.close());

/**
 * The gateway's own upstream client, with every origin pointed at the test's
 * server, as DNS would point a resource's name at it: so a deployment can
 * carry a real-looking resource host while its calls cross real sockets.
 */
class PointedAtTestServer implements UpstreamClient {
  private readonly inner = new UndiciUpstream();

  send(call: UpstreamCall) {
    return this.inner.send({ ...call, origin: upstream.url });
  }

  close() {
    this.inner.close();
  }
}

const RESOURCE = 'https://res-scrub.openai.azure.com';

const suite = harnessForFile({
  deps: { upstream: new PointedAtTestServer() },
  env: () => ({
    AZURE_OPENAI_ENDPOINT: upstream.url,
    MODEL_DEPLOYMENTS: JSON.stringify({ 'huge-event': ['huge-event'], mixed: ['chat-only', 'both'], 'half-missing': ['not-there', 'both'], gzipped: ['gzipped'], scrubbed: [{ deployment: 'scrubbed', endpoint: RESOURCE, apiKey: AZURE_KEY }] }),
  }),
});
const auth = { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' };
const chat = (model: string, extra: Record<string, unknown> = {}) =>
  fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }) });

describe('a stream whose event never ends', () => {
  it('a 32 MB event without a blank line streams through in linear time while /health stays quick', async () => {
    const piece = Buffer.alloc(64 * 1024, 'a');
    const pieces = 512;
    const head = 'data: {"choices":[{"index":0,"delta":{"content":"';
    const tail = '"}}]}\n\ndata: [DONE]\n\n';
    answers.set('huge-event', async (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(head);
      for (let i = 0; i < pieces; i++) {
        if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
      }
      res.end(tail);
    });
    const started = performance.now();
    const res = await chat('huge-event', { stream: true });
    expect(res.status).toBe(200);
    let slowestHealth = 0;
    let streaming = true;
    const probes = (async () => {
      while (streaming) {
        const at = performance.now();
        await (await fetch(`${suite.h.url}/health`)).arrayBuffer();
        slowestHealth = Math.max(slowestHealth, performance.now() - at);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const text = Buffer.from(await res.arrayBuffer()).toString('latin1');
    streaming = false;
    await probes;
    expect(text.length).toBe(head.length + pieces * piece.length + tail.length);
    expect(text.endsWith(tail)).toBe(true);
    // The quadratic scan took minutes for this and held the event loop throughout.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(slowestHealth).toBeLessThan(1000);
  });
});

async function deployments(): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${suite.h.url}/health/deployments`, { headers: auth });
  return (await res.json()).data;
}

describe('a cooldown belongs to what failed', () => {
  it('a 404 for one operation cools that operation on that deployment, and the deployment keeps serving the others', async () => {
    const requestsTo = (deployment: string, operation: string) => upstream.requests.filter((r) => r.path.startsWith(`/openai/deployments/${deployment}/${operation}?`)).length;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${suite.h.url}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'mixed', prompt: 'hi' }) });
      expect(res.status).toBe(200);
      expect((await res.json()).choices[0].text).toBe('served');
    }
    expect(requestsTo('chat-only', 'completions')).toBe(1);
    for (let i = 0; i < 4; i++) expect((await chat('mixed')).status).toBe(200);
    // The round-robin still gives chat-only its turns at chat.
    expect(requestsTo('chat-only', 'chat/completions')).toBe(2);
    const chatOnly = (await deployments()).find((d) => d.deployment === 'chat-only')!;
    expect(chatOnly).toMatchObject({ model: 'mixed', state: 'healthy', unavailable_operations: [{ operation: 'completions', reason: 'unsupported' }] });
  });

  it('a deployment Azure says does not exist is shown on /health/deployments as a configuration problem, and the request is served by another', async () => {
    const res = await chat('half-missing');
    expect(res.status).toBe(200);
    const res2 = await chat('half-missing');
    expect(res2.status).toBe(200);
    const missing = (await deployments()).find((d) => d.deployment === 'not-there')!;
    expect(missing).toMatchObject({ model: 'half-missing', state: 'misconfigured', reason: 'missing', recent: { failed: { missing: 1 } } });
    expect(missing.problem).toMatch(/does not exist.*MODEL_DEPLOYMENTS/);
  });
});

describe('an answer compressed although the gateway did not ask for it', () => {
  it('asks Azure for plain bytes, and decodes a gzip answer anyway: JSON, a stream, and an error all reach the client readable', async () => {
    const events = ['data: {"choices":[],"prompt_filter_results":[]}\n\n', 'data: {"choices":[{"index":0,"delta":{"content":"zipped"}}]}\n\n', 'data: [DONE]\n\n'];
    answers.set('gzipped', (res, body) => {
      const wanted = JSON.parse(body.toString('utf8'));
      if (wanted.messages[0].content === 'refuse me') {
        res.writeHead(400, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        return void res.end(zlib.gzipSync('{"error":{"code":"invalid_value","message":"The temperature is out of range.","param":"temperature","type":"invalid_request_error"}}'));
      }
      if (wanted.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
        const gzip = zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH });
        gzip.pipe(res);
        for (const e of events) gzip.write(e);
        return void gzip.end();
      }
      const text = zlib.gzipSync(JSON.stringify({ id: 'chatcmpl-z', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'zipped' } }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': text.length }).end(text);
    });
    const whole = await suite.h.client.chat.completions.create({ model: 'gzipped', messages: [{ role: 'user', content: 'hi' }] });
    expect(whole.choices[0].message.content).toBe('zipped');
    const stream = await suite.h.client.chat.completions.create({ model: 'gzipped', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('zipped');
    const err = await suite.h.client.chat.completions.create({ model: 'gzipped', messages: [{ role: 'user', content: 'refuse me' }] }).catch((e) => e);
    expect(err.status).toBe(400);
    expect(err.message).toContain('temperature is out of range');
    // What curl without --compressed would show: plain JSON, labelled as such.
    const raw = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'accept-encoding': 'identity' }, body: JSON.stringify({ model: 'gzipped', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(raw.headers.get('content-encoding')).toBeNull();
    expect(JSON.parse(await raw.text()).usage.total_tokens).toBe(4);
    for (const r of upstream.requests.filter((q) => q.path.includes('/gzipped/'))) expect(r.headers['accept-encoding']).toBe('identity');
  });
});

describe('what Azure says about itself is scrubbed', () => {
  it('the resource host, in any case, is taken out of the message, param, type and code of an error the client gets', async () => {
    answers.set('scrubbed', (res) => {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: {
        message: 'Deployment on RES-SCRUB.OpenAI.Azure.com rejected it; see Res-Scrub quota.',
        param: 'res-scrub.OPENAI.azure.com/messages',
        type: 'Res-Scrub_error',
        code: 'RES-SCRUB-quota',
      } }));
    });
    const res = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'scrubbed', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(400);
    const text = await res.text();
    suite.saw(text);
    expect(text).not.toMatch(/res-scrub/i);
    expect(JSON.parse(text).error).toEqual({ message: 'Deployment on [resource] rejected it; see [resource] quota.', param: '[resource]/messages', type: '[resource]_error', code: '[resource]-quota' });
  });
});
