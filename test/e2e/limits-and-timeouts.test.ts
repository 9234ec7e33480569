import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Readable } from 'node:stream';
import { PROXY_KEY, eventually, startHarness } from '../support/harness';
import { harnessForFile } from '../support/suite';

const IDLE_MS = 300;
const MiB = 1024 * 1024;
const suite = harnessForFile({
  env: () => ({
    UPSTREAM_IDLE_TIMEOUT_MS: String(IDLE_MS),
    UPSTREAM_MAX_RETRY_AFTER_MS: '1500',
    MAX_INFLIGHT_BODY_BYTES: String(24 * MiB),
    // Within the budget, as a configuration must be (a larger one is reported).
    MAX_AUDIO_FILE_BYTES: String(20 * MiB),
    MAX_IMAGE_UPLOAD_BYTES: String(20 * MiB),
    MODEL_DEPLOYMENTS: JSON.stringify({
      'stall-json': ['stall-json-a', 'stall-json-b'],
      'stall-sse': ['stall-sse-a', 'stall-sse-b'],
      'stall-late': ['stall-late'],
      'stall-late-raw': ['stall-late-raw'],
      'stall-big': ['stall-big'],
      'slow-reader': ['slow-reader'],
      'far-retry': ['far-retry'],
      'v1-model': [{ deployment: 'v1-deployment', apiVersion: 'v1' }],
    }),
  }),
});
const auth = { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' };
const hello = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra });
const requestLines = () => suite.h.logger.entries().filter((e) => e.msg === 'request');

async function deploymentState(name: string): Promise<{ state: string; reason?: string; recent: { failed: Record<string, number> } }> {
  const res = await fetch(`${suite.h.url}/health/deployments`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
  return (await res.json()).data.find((d: { deployment: string }) => d.deployment === name);
}

describe('an upstream that stalls after its headers (UPSTREAM_IDLE_TIMEOUT_MS)', () => {
  it('a JSON answer that stops halfway fails over to the next deployment, and the stalled one counts a timeout', async () => {
    suite.h.sim.setBehaviour('stall-json-a', { mode: 'stall' });
    const started = performance.now();
    const { data, response } = await suite.h.client.chat.completions.create(hello('stall-json'), { signal: AbortSignal.timeout(5000) }).withResponse();
    expect(data.choices[0].message.content).toContain('hello there');
    expect(performance.now() - started).toBeGreaterThanOrEqual(IDLE_MS - 20);
    const line = requestLines().find((l) => l.requestId === response.headers.get('x-request-id'))!;
    expect(line.tries).toMatchObject([{ deployment: 'stall-json-a', outcome: 'timeout', status: 200 }, { deployment: 'stall-json-b', outcome: 'ok' }]);
    expect(await deploymentState('stall-json-a')).toMatchObject({ state: 'cooling', reason: 'timeout', recent: { failed: { timeout: 1 } } });
  });

  it('a stream that stalls before the client saw a byte fails over, and the client gets one whole stream', async () => {
    // One event (Azure's prompt-filter chunk, which the gateway drops) and then nothing.
    suite.h.sim.setBehaviour('stall-sse-a', { mode: 'stall', afterEvents: 1 });
    const stream = await suite.h.client.chat.completions.create({ ...hello('stall-sse'), stream: true }, { signal: AbortSignal.timeout(5000) });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Simulated reply to: hello there');
    expect(suite.h.sim.callsTo('stall-sse-a')).toHaveLength(1);
    expect(suite.h.sim.callsTo('stall-sse-b')).toHaveLength(1);
  });

  it('a stream that stalls midway ends with an error event the SDK raises, after the chunks already sent', async () => {
    suite.h.sim.setBehaviour('stall-late', { mode: 'stall', afterEvents: 3 });
    const stream = await suite.h.client.chat.completions.create({ ...hello('stall-late'), stream: true }, { signal: AbortSignal.timeout(5000) });
    let text = '';
    const err = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })().catch((e) => e);
    expect(text.length).toBeGreaterThan(0);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.code).toBe('upstream_timeout');
    expect(err.message).toMatch(/stopped sending/);
    await new Promise((r) => setTimeout(r, 20));
    expect(requestLines().at(-1)).toMatchObject({ model: 'stall-late', status: 200, error: 'upstream_timeout' });
    // Too late to fail over, but the next requests are kept off it for a while, as after a failed try.
    // Counted once, as what it turned out to be: a timeout, not a success and a timeout.
    const state = await deploymentState('stall-late');
    expect(state).toMatchObject({ state: 'cooling', reason: 'timeout' });
    expect(state.recent).toEqual({ window_minutes: 5, succeeded: 0, failed: { timeout: 1 } });
  });

  it('the raw stream ends after the error event: every event parses and the last is OpenAI\'s error shape', async () => {
    suite.h.sim.setBehaviour('stall-late-raw', { mode: 'stall', afterEvents: 3 });
    const res = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...hello('stall-late-raw'), stream: true }), signal: AbortSignal.timeout(5000) });
    const events = (await res.text()).split('\n\n').filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, '')));
    expect(events.length).toBeGreaterThan(1);
    expect(events.at(-1)).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'upstream_timeout' } });
  });

  it('a large JSON answer that stalls after its first bytes reached the client is cut off, not left hanging', async () => {
    suite.h.sim.setBehaviour('stall-big', { mode: 'stall' });
    const res = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify(hello('stall-big', { max_tokens: 60_000 })), signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    const err = await res.text().catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.cause ?? err)).not.toMatch(/timeout|aborted due to timeout/i);
  });

  it('a client that reads nothing for longer than the idle timeout still gets the whole stream', async () => {
    const words = 30_000;
    const req = http.request(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth });
    req.end(JSON.stringify({ ...hello('slow-reader'), stream: true, max_tokens: words }));
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    res.pause();
    const call = suite.h.sim.callsTo('slow-reader')[0];
    await new Promise((r) => setTimeout(r, 3 * IDLE_MS));
    // The upstream was held back by the client for longer than the idle timeout: the case this test is about.
    expect(call.sent).toBeLessThan(words);
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.resume();
    await new Promise((r) => res.once('end', r));
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(text).not.toContain('"error"');
  });
});

describe('deployments that answer too late (UPSTREAM_DEADLINE_MS)', () => {
  it('stops failing over at the deadline, the last try cut short, and answers 504 in OpenAI\'s shape then', async () => {
    const late = await startHarness({
      env: () => ({ UPSTREAM_HEADERS_TIMEOUT_MS: '1000', UPSTREAM_DEADLINE_MS: '1200', MODEL_DEPLOYMENTS: JSON.stringify({ late: ['late-a', 'late-b', 'late-c'] }) }),
    });
    try {
      for (const d of ['late-a', 'late-b', 'late-c']) late.sim.setBehaviour(d, { mode: 'hang' });
      const started = performance.now();
      const res = await fetch(`${late.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify(hello('late')) });
      const took = performance.now() - started;
      expect(res.status).toBe(504);
      expect((await res.json()).error).toMatchObject({ code: 'upstream_timeout', type: 'server_error' });
      // Two tries of 1 s would have taken 2 s: the second waited only what the deadline left.
      expect(took).toBeGreaterThanOrEqual(1150);
      expect(took).toBeLessThan(1800);
      const requestId = res.headers.get('x-request-id');
      await eventually(() => late.logger.entries().some((l) => l.requestId === requestId), 1000, 'the request\'s log line');
      const tries = late.logger.entries().find((l) => l.requestId === requestId)!.tries as { deployment: string; outcome: string }[];
      // The first timed out on its own and cools down; the second was cut short by the deadline, which says nothing of it.
      expect(tries).toMatchObject([
        { deployment: expect.stringMatching(/^late-/), outcome: 'timeout' },
        { deployment: expect.stringMatching(/^late-/), outcome: 'abandoned' },
      ]);
      const states = (await (await fetch(`${late.url}/health/deployments`, { headers: { authorization: `Bearer ${PROXY_KEY}` } })).json()).data as { deployment: string; state: string }[];
      expect(states.find((d) => d.deployment === tries[0].deployment)!.state).toBe('cooling');
      expect(states.find((d) => d.deployment === tries[1].deployment)!.state).not.toBe('cooling');
    } finally {
      await late.close();
    }
  });
});

describe('a retry-after years away (UPSTREAM_MAX_RETRY_AFTER_MS)', () => {
  it('cools the deployment for the cap at most: the client is told so, and the deployment serves again after it', async () => {
    suite.h.sim.setBehaviour('far-retry', { mode: 'throttle', retryAfterSeconds: 5 * 365 * 24 * 3600, times: 1 });
    const throttled = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify(hello('far-retry')) });
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get('retry-after'))).toBeLessThanOrEqual(2);
    const state = await deploymentState('far-retry');
    expect(state.state).toBe('cooling');
    expect(Date.parse((state as unknown as { cooling_until: string }).cooling_until) - Date.now()).toBeLessThanOrEqual(1500);
    await new Promise((r) => setTimeout(r, 1600));
    const served = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify(hello('far-retry')) });
    expect(served.status).toBe(200);
  });
});

/** A request written by hand on its own socket: the head and as much of the body as the test wants. */
function rawRequest(head: string, body: Buffer | string = '') {
  const socket = net.connect(Number(new URL(suite.h.url).port), '127.0.0.1');
  socket.write(head + '\r\n');
  if (body.length > 0) socket.write(body);
  let out = '';
  socket.on('data', (c) => (out += c));
  socket.on('error', () => {});
  const answered = new Promise<string>((resolve) => {
    const check = () => {
      const end = out.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /content-length: (\d+)/i.exec(out.slice(0, end))?.[1];
      if (length !== undefined ? out.length >= end + 4 + Number(length) : out.endsWith('\r\n0\r\n\r\n')) resolve(out);
    };
    socket.on('data', check);
    socket.on('close', () => resolve(out));
  });
  return { socket, answered, soFar: () => out };
}

const chatHead = (length: number | 'chunked') =>
  `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PROXY_KEY}\r\nContent-Type: application/json\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n`;

/** The JSON body of a raw answer, its chunked framing taken off. */
function bodyOf(answer: string): unknown {
  const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
  let rest = answer.slice(head.length + 4);
  if (!/transfer-encoding: chunked/i.test(head)) return JSON.parse(rest);
  let text = '';
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!size) return JSON.parse(text);
    text += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

/** A valid chat body of exactly `bytes` bytes, its prompt one long word (the reply is cut to three words before it). */
function chatBodyOf(bytes: number): Buffer {
  const head = '{"model":"slow-reader","max_tokens":3,"messages":[{"role":"user","content":"';
  const tail = '"}]}';
  return Buffer.from(head + 'a'.repeat(bytes - head.length - tail.length) + tail);
}

describe('request bodies held in memory (MAX_INFLIGHT_BODY_BYTES)', () => {
  it('past the budget, a request gets 503 with Retry-After before its body is read; the admitted ones are served, and the budget comes back', async () => {
    const size = 6 * MiB;
    const body = chatBodyOf(size);
    const held = Array.from({ length: 6 }, () => rawRequest(chatHead(size), body.subarray(0, 1024)));
    onTestFinished(() => held.forEach((r) => r.socket.destroy()));
    await new Promise((r) => setTimeout(r, 500));
    const refused = held.filter((r) => r.soFar().startsWith('HTTP/1.1 503'));
    const waiting = held.filter((r) => r.soFar() === '');
    // 24 MiB holds four 6 MiB bodies; the others are turned away at once.
    expect(refused).toHaveLength(2);
    expect(waiting).toHaveLength(4);
    for (const r of refused) {
      const text = await r.answered;
      expect(text).toMatch(/retry-after: 1\r\n/i);
      expect(bodyOf(text)).toMatchObject({ error: { code: 'server_busy' } });
    }
    // A body sent in chunks is counted as it comes: with the budget full, its first chunk is refused.
    const chunked = rawRequest(chatHead('chunked'), '400\r\n' + 'a'.repeat(1024) + '\r\n');
    expect(await chunked.answered).toMatch(/^HTTP\/1\.1 503/);
    for (const r of waiting) r.socket.write(body.subarray(1024));
    for (const r of waiting) expect(await r.answered).toMatch(/^HTTP\/1\.1 200/);
    const after = rawRequest(chatHead(size), body);
    expect(await after.answered).toMatch(/^HTTP\/1\.1 200/);
    for (const r of [chunked, after]) r.socket.destroy();
    expect(suite.h.gateway.bodies.inUse).toBe(0);
  });

  it('a budget smaller than a body the limits allow is reported, and such a body is a 413, never a 503 to retry forever', async () => {
    const small = await startHarness({ env: () => ({ MAX_INFLIGHT_BODY_BYTES: '5000' }) });
    try {
      const health = await (await fetch(`${small.url}/health`)).json();
      expect(health).toMatchObject({ status: 'misconfigured', problems: [{ setting: 'MAX_INFLIGHT_BODY_BYTES', message: expect.stringContaining('MAX_IMAGE_UPLOAD_BYTES') }] });
      const body = JSON.stringify(hello('gpt-4o-mini', { metadata: { note: 'x'.repeat(8000) } }));
      const declared = await fetch(`${small.url}/v1/chat/completions`, { method: 'POST', headers: auth, body });
      expect(declared.status).toBe(413);
      expect((await declared.json()).error).toMatchObject({ code: 'request_too_large', message: expect.stringContaining('5000 bytes') });
      // Sent in chunks, it is refused as it passes the budget, the same way.
      const chunked = await fetch(`${small.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: Readable.toWeb(Readable.from([Buffer.from(body)])) as ReadableStream, duplex: 'half' } as RequestInit);
      expect(chunked.status).toBe(413);
      expect(small.gateway.bodies.inUse).toBe(0);
    } finally {
      await small.close();
    }
  });

  it('a declared Content-Length over the limit is a 413 at once, before any of the body is sent', async () => {
    const r = rawRequest(chatHead(100 * MiB));
    const text = await Promise.race([r.answered, new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 2 s'), 2000))]);
    r.socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 413/);
    expect(bodyOf(text)).toMatchObject({ error: { code: 'request_too_large' } });
  });

  it('an upload the client abandons midway is logged as the client\'s 499, not a 500', async () => {
    const boundary = 'b0undary';
    const r = rawRequest(`POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PROXY_KEY}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${MiB}\r\n`,
      `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n${'x'.repeat(64 * 1024)}`);
    await new Promise((res) => setTimeout(res, 200));
    r.socket.destroy();
    const lines = () => suite.h.logger.entries().filter((l) => l.route === 'audioTranscriptions');
    await eventually(() => lines().length > 0, 5000, 'the upload\'s log line');
    expect(lines().at(-1)).toMatchObject({ msg: 'request', status: 499, error: 'client_closed' });
    expect(suite.h.logger.entries().filter((l) => l.msg === 'unhandled error')).toEqual([]);
  });
});

describe('what is echoed and logged of a client\'s value', () => {
  it('a 10 MiB model name is quoted in a few hundred characters in the 404 and in the log line', async () => {
    const model = 'm'.repeat(10 * MiB);
    const res = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify(hello(model)) });
    expect(res.status).toBe(404);
    const text = await res.text();
    expect(text.length).toBeLessThan(1000);
    expect(JSON.parse(text).error).toMatchObject({ code: 'model_not_found', message: expect.stringContaining(`${10 * MiB} characters`) });
    await new Promise((r) => setTimeout(r, 20));
    const line = suite.h.logger.lines.find((l) => l.includes('"status":404') && l.includes('mmmm'))!;
    expect(line.length).toBeLessThan(2000);
  });
});

describe('a body nested without end', () => {
  it('100,000 levels of nesting for a v1 deployment (whose body the gateway rewrites) is a 400, and nothing reaches Azure', async () => {
    const depth = 100_000;
    const body = `{"model":"v1-model","messages":[{"role":"user","content":"hi"}],"metadata":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    const res = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: 'json_too_deep', type: 'invalid_request_error' });
    expect(suite.h.sim.callsTo('v1-deployment')).toHaveLength(0);
    const fine = await suite.h.client.chat.completions.create({ model: 'v1-model', messages: [{ role: 'user', content: 'hello there' }], metadata: { a: 'b' } });
    expect(fine.choices[0].message.content).toContain('hello there');
    expect(JSON.parse(suite.h.sim.callsTo('v1-deployment')[0].body.toString('utf8'))).toMatchObject({ model: 'v1-deployment', metadata: { a: 'b' } });
  });
});
