import http from 'node:http';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { PROXY_KEY } from '../support/harness';
import { harnessForFile } from '../support/suite';

const IDLE_MS = 300;
const suite = harnessForFile({
  env: () => ({
    UPSTREAM_IDLE_TIMEOUT_MS: String(IDLE_MS),
    UPSTREAM_MAX_RETRY_AFTER_MS: '1500',
    MODEL_DEPLOYMENTS: JSON.stringify({
      'stall-json': ['stall-json-a', 'stall-json-b'],
      'stall-sse': ['stall-sse-a', 'stall-sse-b'],
      'stall-late': ['stall-late'],
      'stall-big': ['stall-big'],
      'slow-reader': ['slow-reader'],
      'far-retry': ['far-retry'],
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
  });

  it('the raw stream ends after the error event: every event parses and the last is OpenAI\'s error shape', async () => {
    suite.h.sim.setBehaviour('stall-late', { mode: 'stall', afterEvents: 3 });
    const res = await fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...hello('stall-late'), stream: true }), signal: AbortSignal.timeout(5000) });
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
