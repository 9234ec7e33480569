import net from 'node:net';
import { gzipSync } from 'node:zlib';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { PROXY_KEY, eventually, startHarness } from '../support/harness';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile();
const raw = (path: string, init: RequestInit = {}) => suite.raw(path, init);

/** Everything the gateway writes back for `request`, read off the socket until it closes. */
function rawExchange(request: string): Promise<string> {
  const { hostname, port } = new URL(suite.h.url);
  return new Promise((resolve, reject) => {
    let out = '';
    const socket = net.connect(Number(port), hostname, () => socket.write(request));
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (out += c));
    socket.on('error', reject);
    socket.on('close', () => resolve(out));
  });
}

describe('errors the openai SDK raises as its typed errors', () => {
  it('a wrong proxy key is an AuthenticationError (401)', async () => {
    const bad = new OpenAI({ baseURL: `${suite.h.url}/v1`, apiKey: 'not-a-key', maxRetries: 0 });
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
    const err = await suite.h.client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('model_not_found');
    expect(err.message).toContain('gpt-9');
  });

  it('a request without a model is a BadRequestError naming the parameter', async () => {
    const err = await suite.h.client.chat.completions.create({ messages: [{ role: 'user', content: 'x' }] } as never).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('model');
  });

  it('malformed JSON is a 400 that says to send valid JSON, and nothing reaches Azure', async () => {
    const before = suite.h.sim.calls.length;
    const res = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: '{"model": "gpt-4o-mini",' });
    expect(res.status).toBe(400);
    const body = JSON.parse(await res.text());
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: null });
    expect(body.error.message).toMatch(/valid JSON/);
    expect(suite.h.sim.calls.length).toBe(before);
  });

  it('a compressed body is a 400 that names its Content-Encoding, not a complaint about its JSON or its form', async () => {
    const before = suite.h.sim.calls.length;
    const json = gzipSync(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }));
    const form = gzipSync('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n');
    for (const [path, type, body] of [['/v1/chat/completions', 'application/json', json], ['/v1/audio/transcriptions', 'multipart/form-data; boundary=b', form]] as const) {
      const res = await raw(path, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': type, 'content-encoding': 'gzip' }, body });
      expect(res.status, path).toBe(400);
      expect(JSON.parse(await res.text()).error).toMatchObject({
        code: 'unsupported_content_encoding',
        message: 'Content-Encoding "gzip" is not accepted: send the request body uncompressed (no Content-Encoding header).',
      });
    }
    expect(suite.h.sim.calls.length).toBe(before);
    // "identity" is no encoding at all.
    const plain = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json', 'content-encoding': 'identity' }, body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' });
    expect(plain.status).toBe(200);
  });

  it('a form-encoded body (curl -d without a content type) is a 400 that names the right type', async () => {
    const res = await raw('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'model=gpt-4o-mini' });
    expect(res.status).toBe(400);
    expect(JSON.parse(await res.text()).error.message).toContain('application/json');
  });

  it('a content-filter block is a BadRequestError with code content_filter and no Azure detail', async () => {
    suite.h.sim.setBehaviour('chat-a', { mode: 'block' });
    suite.h.sim.setBehaviour('chat-b', { mode: 'block' });
    try {
      const err = await suite.h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'something blocked' }] }).catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.code).toBe('content_filter');
      expect(err.message).toContain('violence');
      expect(err.message).not.toMatch(/https?:|ResponsibleAIPolicyViolation|innererror/);
      expect(err.error).not.toHaveProperty('innererror');
    } finally {
      suite.h.sim.reset();
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

  it('HEAD on the routes monitors probe: GET\'s status and headers and, on the wire, no body; elsewhere 405 without a call to Azure', async () => {
    for (const path of ['/health', '/v1/models']) {
      const get = await raw(path, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
      const bytes = await rawExchange(`HEAD ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PROXY_KEY}\r\nConnection: close\r\n\r\n`);
      const [head, rest] = [bytes.slice(0, bytes.indexOf('\r\n\r\n')), bytes.slice(bytes.indexOf('\r\n\r\n') + 4)];
      expect(head, path).toMatch(/^HTTP\/1\.1 200 /);
      expect(head).toContain(`content-type: ${get.headers.get('content-type')}`);
      expect(head).toMatch(/x-request-id: \S+/);
      // Fetch hides a body sent after a HEAD; the socket shows it.
      expect(rest).toBe('');
    }
    const before = suite.h.sim.calls.length;
    const stored = await raw('/v1/responses/resp_1', { method: 'HEAD', headers: { authorization: `Bearer ${PROXY_KEY}` } });
    expect(stored.status).toBe(405);
    expect(suite.h.sim.calls.length).toBe(before);
  });

  it('an OpenAI operation the gateway does not serve is a 404 that says so, not advice to change the method', async () => {
    for (const path of ['/v1/responses/input_tokens', '/v1/responses/compact', '/openai/v1/responses/input_tokens']) {
      const res = await raw(path, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini","input":"hi"}' });
      expect(res.status, path).toBe(404);
      const error = JSON.parse(await res.text()).error;
      expect(error).toMatchObject({ code: 'unknown_url', type: 'invalid_request_error' });
      expect(error.message).toBe(`POST ${path} is an OpenAI operation this gateway does not serve.`);
    }
    // The rest of OpenAI's API, OpenAI-style or Azure-style: the client's base URL is fine, the operation is not here.
    for (const [method, path] of [['POST', '/v1/moderations'], ['GET', '/v1/files/file-abc'], ['POST', '/v1/conversations'], ['POST', '/v1/images/variations'], ['GET', '/v1/chat/completions/chatcmpl-1'], ['POST', '/openai/v1/batches']]) {
      const res = await raw(path, { method, headers: { authorization: `Bearer ${PROXY_KEY}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) }, ...(method === 'POST' ? { body: '{}' } : {}) });
      expect(res.status, path).toBe(404);
      expect(JSON.parse(await res.text()).error.message).toBe(`${method} ${path} is an OpenAI operation this gateway does not serve.`);
    }
    // A path that is no operation of OpenAI's still gets the advice about the base URL, and a served path's other methods a 405.
    const typo = await raw('/v1/chat/completion', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` } });
    expect(JSON.parse(await typo.text()).error.message).toContain('the base URL should end in /v1');
    expect((await raw('/v1/chat/completions', { method: 'GET', headers: { authorization: `Bearer ${PROXY_KEY}` } })).status).toBe(405);
    expect((await raw('/v1/moderationsx', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` } })).status).toBe(404);
  });

  it('a model left out by a configuration problem is a 404 that sends the operator to /health', async () => {
    const broken = await startHarness({ env: () => ({ MODEL_DEPLOYMENTS: '{"rr":["rr-1",]}' }) });
    try {
      const err = await broken.client.chat.completions.create({ model: 'rr', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.NotFoundError);
      expect(err.message).toContain('its operator should check GET /health');
    } finally {
      await broken.close();
    }
    // With a sound configuration, an unknown model's 404 says nothing of it.
    const err = await suite.h.client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(err.message).not.toContain('/health');
  });

  it('a 404 or 405 keeps the client\'s x-request-id and has its log line, as every request does', async () => {
    for (const [path, method, status, code] of [['/v1/nope', 'GET', 404, 'unknown_url'], ['/v1/nope', 'PUT', 404, 'unknown_url'], ['/nope', 'GET', 404, 'unknown_url'], ['/v1/chat/completions', 'GET', 405, 'method_not_allowed']] as const) {
      const requestId = `probe-${status}-${Date.now()}`;
      const res = await raw(path, { method, headers: { authorization: `Bearer ${PROXY_KEY}`, 'x-request-id': requestId } });
      expect(res.status).toBe(status);
      expect(res.headers.get('x-request-id')).toBe(requestId);
      await eventually(() => suite.h.logger.entries().some((l) => l.requestId === requestId), 1000, `the log line of ${requestId}`);
      expect(suite.h.logger.entries().find((l) => l.requestId === requestId)).toMatchObject({ msg: 'request', method, status, error: code });
    }
  });
});
