import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';
import { OwnUpstream, startOwnUpstream } from '../support/own-upstream';

let h: Harness;
const auth = { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' };

beforeAll(async () => {
  h = await startHarness({
    env: () => ({
      MAX_REQUEST_BODY_BYTES: '65536',
      // Each case starts with healthy deployments: failures here cool a deployment down for 1 ms only.
      UPSTREAM_FAILURE_COOLDOWN_MS: '1',
      // A stalled answer is given up on after a second, so the flapping case below stays short.
      UPSTREAM_IDLE_TIMEOUT_MS: '1000',
      MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini': ['chat-a', 'chat-b'], 'weird/../model?x=%2F': ['chat-a'], solo: ['solo'], flapping: ['flap-a', 'flap-b'] }),
    }),
  });
});
afterAll(async () => h.close());
beforeEach(() => h.sim.reset());

const chat = (body: unknown, headers: Record<string, string> = auth) =>
  fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
const hello = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] };

function expectOpenAIError(body: unknown): void {
  expect(body).toEqual({ error: { message: expect.any(String), type: expect.any(String), param: expect.toSatisfy((p) => p === null || typeof p === 'string'), code: expect.toSatisfy((c) => c === null || typeof c === 'string') } });
}

describe('what Azure throws at the gateway', () => {
  it('a reset mid-stream ends the client\'s stream with an error it can see, and the next request succeeds', async () => {
    h.sim.setBehaviour('chat-a', { mode: 'reset', afterEvents: 4, times: 1 });
    h.sim.setBehaviour('chat-b', { mode: 'reset', afterEvents: 4, times: 1 });
    const stream = await h.client.chat.completions.create({ ...hello, stream: true, max_tokens: 50 } as OpenAI.ChatCompletionCreateParamsStreaming);
    let chunks = 0;
    const err = await (async () => {
      for await (const _ of stream) chunks++;
    })().catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(chunks).toBeGreaterThan(0);
    h.sim.reset();
    const next = await h.client.chat.completions.create(hello as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(next.choices[0].message.content).toContain('hello');
  });

  it('the client leaving mid-stream cancels the upstream request within a second', async () => {
    h.sim.streamIntervalMs = 10;
    try {
      const res = await new Promise<http.IncomingMessage>((resolve) => {
        const req = http.request(`${h.url}/v1/chat/completions`, { method: 'POST', headers: auth }, resolve);
        req.end(JSON.stringify({ ...hello, stream: true, max_tokens: 5000 }));
      });
      await new Promise((r) => res.once('data', r));
      const call = h.sim.calls.at(-1)!;
      const leftAt = Date.now();
      res.destroy();
      await eventually(() => call.aborted, 1000, 'the upstream stream to be cancelled');
      expect(Date.now() - leftAt).toBeLessThan(1000);
      expect(call.sent).toBeLessThan(5000);
      // Logged as the client's leaving, not as a failure of Azure's.
      const requestId = res.headers['x-request-id'];
      await eventually(() => h.logger.entries().some((l) => l.requestId === requestId), 1000, 'the request\'s log line');
      expect(h.logger.entries().find((l) => l.requestId === requestId)).toMatchObject({ status: 200, streamError: 'client closed' });
    } finally {
      h.sim.streamIntervalMs = 0;
    }
  });

  it('error statuses with bodies that are not Azure\'s JSON still reach the client as OpenAI errors of the same class', async () => {
    const cases = [
      { status: 400, body: '<html><body>Bad Request from the front door</body></html>', contentType: 'text/html', expect: 400 },
      { status: 422, body: '{"error": {"message": "cut', contentType: 'application/json', expect: 422 },
      { status: 502, body: '<html>Bad Gateway</html>', contentType: 'text/html', expect: 502 },
      { status: 500, body: '', contentType: 'application/json', expect: 502 },
    ];
    for (const c of cases) {
      h.sim.reset();
      for (const d of ['chat-a', 'chat-b']) h.sim.setBehaviour(d, { mode: 'fail', status: c.status, body: c.body, contentType: c.contentType });
      const res = await chat(hello);
      expect(res.status, JSON.stringify(c)).toBe(c.expect);
      expect(res.headers.get('content-type')).toBe('application/json');
      const text = await res.text();
      expectOpenAIError(JSON.parse(text));
      expect(text).not.toMatch(/html|front door/i);
    }
  });

  it('a client that reads nothing for a while does not make the gateway buffer the stream', async () => {
    const words = 100_000;
    const req = http.request(`${h.url}/v1/chat/completions`, { method: 'POST', headers: auth });
    req.end(JSON.stringify({ ...hello, stream: true, max_tokens: words }));
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    res.pause();
    const call = h.sim.calls.at(-1)!;
    // Let the pipes fill, then check the simulator is held back rather than drained into the gateway.
    await new Promise((r) => setTimeout(r, 700));
    const stalledAt = call.sent;
    await new Promise((r) => setTimeout(r, 300));
    expect(call.sent).toBe(stalledAt);
    // What did get written sits in loopback socket buffers (a few MB); the rest waits upstream.
    expect(stalledAt).toBeLessThan(words / 2);
    let received = 0;
    res.on('data', (c: Buffer) => (received += c.length));
    res.resume();
    await new Promise((r) => res.once('end', r));
    // The prompt-filter, role and finish chunks, the usage chunk the gateway asks for (to count tokens), and [DONE].
    expect(call.sent).toBe(words + 5);
    expect(received).toBeGreaterThan(words * 100);
  });

  it('500 concurrent requests while a deployment flips between 429 and healthy: none lost, each a success or a correct 429', async () => {
    let throttled = false;
    const flip = setInterval(() => {
      throttled = !throttled;
      h.sim.setBehaviour('chat-a', throttled ? { mode: 'throttle', retryAfterMs: 50 } : { mode: 'ok' });
    }, 20);
    try {
      const results = await Promise.all(Array.from({ length: 500 }, async () => {
        const res = await chat(hello);
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
      }));
      expect(results).toHaveLength(500);
      for (const r of results) {
        if (r.status === 200) expect(r.body.choices[0].message.content).toContain('hello');
        else {
          expect(r.status).toBe(429);
          expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
          expectOpenAIError(r.body);
        }
      }
      expect(results.filter((r) => r.status === 200).length).toBeGreaterThan(250);
    } finally {
      clearInterval(flip);
      // Let the last 50 ms cooldown pass before the next test.
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});

describe('one deployment of two flapping between healthy, throttled and stalled', () => {
  async function recentFailures(): Promise<Record<string, Record<string, number>>> {
    const res = await fetch(`${h.url}/health/deployments`, { headers: auth });
    const data: { deployment: string; recent: { failed: Record<string, number> } }[] = (await res.json()).data;
    return Object.fromEntries(data.filter((d) => d.deployment.startsWith('flap-')).map((d) => [d.deployment, d.recent.failed]));
  }
  const delta = (after: Record<string, number>, before: Record<string, number>) =>
    Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0));

  it('500 concurrent requests, some of whose clients hang up: none lost, none given another\'s answer, and no hang-up counted against a deployment', async () => {
    const modes = [{ mode: 'ok' }, { mode: 'throttle', retryAfterMs: 50 }, { mode: 'stall', afterEvents: 1 }] as const;
    let turn = 0;
    const flap = setInterval(() => h.sim.setBehaviour('flap-a', modes[turn++ % modes.length]), 15);
    const before = await recentFailures();
    try {
      const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
        const prompt = `request number ${i} of the flapping case`;
        const stream = i % 2 === 1;
        // Every tenth client gives up after a few milliseconds, wherever its request then is.
        const signal = i % 10 === 0 ? AbortSignal.timeout(2 + (i % 40)) : undefined;
        try {
          const res = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: auth, signal, body: JSON.stringify({ model: 'flapping', stream, messages: [{ role: 'user', content: prompt }] }) });
          const text = await res.text();
          const answer = stream
            ? text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? '').join('')
            : JSON.parse(text).choices?.[0]?.message?.content;
          return { i, prompt, aborted: false, status: res.status, answer, ended: !stream || text.endsWith('data: [DONE]\n\n') };
        } catch (err) {
          if (signal === undefined) throw err;
          return { i, prompt, aborted: true };
        }
      }));
      const kept = results.filter((r) => !r.aborted);
      expect(kept.length).toBeGreaterThanOrEqual(450);
      // flap-b never fails, so every request a client waited for is served, whole, with its own answer.
      for (const r of kept) {
        expect(r.status, `request ${r.i}`).toBe(200);
        expect(r.answer, `request ${r.i}`).toBe(`Simulated reply to: ${r.prompt}`);
        expect(r.ended, `request ${r.i}`).toBe(true);
      }
      // Each kind of trouble happened, so the case exercised what it claims to.
      const aCalls = h.sim.callsTo('flap-a');
      expect(aCalls.some((c) => c.status === 429)).toBe(true);
      expect(aCalls.some((c) => c.status === 200 && c.aborted)).toBe(true);
      expect(results.some((r) => r.aborted)).toBe(true);
    } finally {
      clearInterval(flap);
      h.sim.setBehaviour('flap-a', { mode: 'ok' });
    }
    await new Promise((r) => setTimeout(r, 100));
    const after = await recentFailures();
    // Only the flapping deployment failed, and only as it flapped: never 'connect' from a client hanging up.
    expect(delta(after['flap-b'], before['flap-b'] ?? {})).toEqual({});
    expect(Object.keys(delta(after['flap-a'], before['flap-a'] ?? {})).every((k) => k === '429' || k === 'timeout')).toBe(true);
    const closed = h.logger.entries().filter((l) => l.msg === 'request' && l.model === 'flapping' && l.status !== 200);
    for (const line of closed) expect(line).toMatchObject({ status: 499, error: 'client_closed' });
  });
});

describe('an answer that breaks off partway', () => {
  it('a JSON answer without a length (chunked) cut before its end fails over, and the client never notices', async () => {
    h.sim.setBehaviour('chat-a', { mode: 'reset' });
    for (let i = 0; i < 4; i++) {
      const answer = await h.client.chat.completions.create(hello as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(answer.choices[0].message.content).toContain('hello');
    }
    const cut = h.sim.callsTo('chat-a').filter((c) => c.status === 200);
    expect(cut.length).toBeGreaterThanOrEqual(1);
    const lines = h.logger.entries().filter((l) => l.msg === 'request' && l.model === 'gpt-4o-mini').slice(-4);
    expect(lines.some((l) => JSON.stringify(l.tries).includes('"deployment":"chat-a","outcome":"connect"'))).toBe(true);
  });

  describe('after the client had the first of it', () => {
    let cooling: Harness;
    let breaking: OwnUpstream;
    let steady: OwnUpstream;
    const big = 'x'.repeat(300 * 1024);
    beforeAll(async () => {
      // A chunked answer larger than the gateway reads before answering: it streams on, then the connection drops.
      breaking = await startOwnUpstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`{"id":"chatcmpl-big","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"${big}`);
        setTimeout(() => res.destroy(), 20);
      });
      steady = await startOwnUpstream((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'chatcmpl-ok', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'steady' } }] })));
      cooling = await startHarness({
        env: () => ({
          UPSTREAM_FAILURE_COOLDOWN_MS: '60000',
          MODEL_DEPLOYMENTS: JSON.stringify({ big: [{ deployment: 'breaks', endpoint: breaking.url, apiKey: 'k' }, { deployment: 'holds', endpoint: steady.url, apiKey: 'k' }], 'gpt-4o-mini': ['chat-a', 'chat-b'] }),
        }),
      });
    });
    afterAll(async () => {
      await cooling.close();
      await breaking.close();
      await steady.close();
    });

    it('a large JSON answer cut midway cuts the client off, and the deployment is skipped for its cooldown', async () => {
      const chatBig = () => fetch(`${cooling.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...hello, model: 'big' }) }).then((r) => r.text());
      const outcomes = await Promise.all([chatBig().catch((e: Error) => e), chatBig().catch((e: Error) => e)]);
      // One of the two went to the deployment that breaks: its client saw the answer cut off, not a clean end.
      expect(outcomes.filter((o) => o instanceof Error)).toHaveLength(1);
      expect(breaking.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
      for (let i = 0; i < 4; i++) expect(JSON.parse(await chatBig()).choices[0].message.content).toBe('steady');
      expect(breaking.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
      const health = await (await fetch(`${cooling.url}/health/deployments`, { headers: auth })).json();
      expect(health.data.find((d: { deployment: string }) => d.deployment === 'breaks')).toMatchObject({ state: 'cooling' });
    });

    it('a stream cut midway ends with an error the client sees, and the deployment is skipped for its cooldown', async () => {
      cooling.sim.setBehaviour('chat-a', { mode: 'reset', afterEvents: 4, times: 1 });
      cooling.sim.setBehaviour('chat-b', { mode: 'reset', afterEvents: 4, times: 1 });
      const stream = await cooling.client.chat.completions.create({ ...hello, stream: true, max_tokens: 50 } as OpenAI.ChatCompletionCreateParamsStreaming);
      const err = await (async () => {
        for await (const _ of stream);
      })().catch((e) => e);
      expect(err).toBeInstanceOf(Error);
      const broke = cooling.sim.calls.at(-1)!.deployment;
      cooling.sim.reset();
      for (let i = 0; i < 4; i++) await cooling.client.chat.completions.create(hello as OpenAI.ChatCompletionCreateParamsNonStreaming);
      expect(cooling.sim.calls.slice(-4).map((c) => c.deployment)).not.toContain(broke);
    });
  });
});

describe('a client that leaves never counts against a deployment', () => {
  async function soloState(): Promise<{ state: string; recent: { succeeded: number; failed: Record<string, number> } }> {
    const res = await fetch(`${h.url}/health/deployments`, { headers: auth });
    return (await res.json()).data.find((d: { deployment: string }) => d.deployment === 'solo');
  }

  it('hanging up while the gateway reads a small JSON answer, or waits for a stream\'s first event, is the client\'s 499, and the deployment stays healthy', async () => {
    const before = await soloState();
    const closedLines = () => h.logger.entries().filter((l) => l.msg === 'request' && l.model === 'solo' && l.status === 499 && l.error === 'client_closed').length;
    for (const stream of [false, true]) {
      const closed = closedLines();
      h.sim.setBehaviour('solo', { mode: 'stall', afterEvents: 1, forMs: 400, times: 1 });
      const err = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...hello, model: 'solo', stream }), signal: AbortSignal.timeout(150) }).then((r) => r.text()).catch((e) => e);
      expect(err.name, `stream: ${stream}`).toBe('TimeoutError');
      const call = h.sim.callsTo('solo').at(-1)!;
      await eventually(() => call.aborted, 2000, 'the upstream call to be cancelled');
      await eventually(() => closedLines() === closed + 1, 2000, 'the 499 log line');
      // Its story names the deployment it was waiting on, as abandoned, not failed.
      const line = h.logger.entries().filter((l) => l.msg === 'request' && l.model === 'solo' && l.status === 499).at(-1)!;
      expect(line).toMatchObject({ tried: 1, tries: [{ deployment: 'solo', outcome: 'abandoned' }] });
    }
    const after = await soloState();
    expect(after.state).toBe('healthy');
    expect(after.recent.failed).toEqual(before.recent.failed);
    expect((await chat({ ...hello, model: 'solo' })).status).toBe(200);
  });
});

describe('bad input is answered before anything reaches Azure', () => {
  it('a body over the configured limit is a 413', async () => {
    const res = await chat({ ...hello, messages: [{ role: 'user', content: 'x'.repeat(70_000) }] });
    expect(res.status).toBe(413);
    expectOpenAIError(await res.json());
    expect(h.sim.calls).toHaveLength(0);
  });

  it('headers over the limit are a 431 in OpenAI\'s shape', async () => {
    const raw = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(h.url).port), '127.0.0.1', () => {
        socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PROXY_KEY}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      });
      let out = '';
      socket.on('data', (c) => (out += c));
      socket.on('close', () => resolve(out));
      socket.on('error', () => resolve(out));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 431/);
    expectOpenAIError(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)));
    expect(h.sim.calls).toHaveLength(0);
  });

  it('a model name with path characters never changes the upstream URL', async () => {
    for (const model of ['../chat-a', 'chat-a/../../x', 'gpt-4o-mini%2F..', 'gpt-4o-mini?api-version=1', 'gpt-4o-mini#x']) {
      const res = await chat({ ...hello, model });
      expect(res.status, model).toBe(404);
      expect((await res.json()).error.code).toBe('model_not_found');
    }
    expect(h.sim.calls).toHaveLength(0);
    const res = await chat({ ...hello, model: 'weird/../model?x=%2F' });
    expect(res.status).toBe(200);
    expect(h.sim.calls.map((c) => [c.deployment, c.operation, c.apiVersion])).toEqual([['chat-a', 'chat/completions', '2025-04-01-preview']]);
  });

  it('an empty Authorization header, or one with only "Bearer", is a 401 and nothing reaches Azure', async () => {
    for (const authorization of ['', 'Bearer', 'Bearer ']) {
      const res = await chat(hello, { authorization, 'content-type': 'application/json' });
      expect(res.status).toBe(401);
      expectOpenAIError(await res.json());
    }
    expect(h.sim.calls).toHaveLength(0);
  });

  it('malformed JSON and a wrong content type are 400s, and nothing reaches Azure', async () => {
    expect((await chat('{"model":')).status).toBe(400);
    expect((await chat(hello, { ...auth, 'content-type': 'text/plain' })).status).toBe(400);
    expect(h.sim.calls).toHaveLength(0);
  });
});

describe('Azure refusing the gateway\'s own configuration', () => {
  it('a wrong AZURE_OPENAI_API_KEY: clients told not to retry, /health naming the setting', async () => {
    const wrongKey = await startHarness({ env: () => ({ AZURE_OPENAI_API_KEY: 'not-the-resource-key' }) });
    try {
      // Said before any request: the readiness check lists the resource's models with the gateway's key.
      await wrongKey.gateway.readiness.check();
      const before = await (await fetch(`${wrongKey.url}/health`)).json();
      expect(before).toMatchObject({ status: 'misconfigured', problems: [{ setting: 'AZURE_OPENAI_API_KEY', message: expect.stringContaining('refused it (401) when the gateway checked the resource') }] });
      const sdk = new OpenAI({ baseURL: `${wrongKey.url}/v1`, apiKey: PROXY_KEY, maxRetries: 2 });
      const err = await sdk.chat.completions.create(hello).catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.status).toBe(502);
      expect(err.code).toBe('upstream_misconfigured');
      // x-should-retry: false, so the SDK's two retries were not spent: one line, one try per deployment.
      expect(wrongKey.logger.entries().filter((e) => e.msg === 'request' && e.route === 'chatCompletions')).toHaveLength(1);
      // Enough refusals for requests to report the key on their own (three a deployment).
      for (let i = 0; i < 2; i++) expect((await sdk.chat.completions.create(hello).catch((e) => e)).code).toBe('upstream_misconfigured');
      const health = await fetch(`${wrongKey.url}/health`);
      expect(health.status).toBe(503);
      const body = await health.json();
      expect(body.status).toBe('misconfigured');
      // Requests found it too: still said once.
      expect(body.problems.filter((p: { setting: string }) => p.setting === 'AZURE_OPENAI_API_KEY')).toHaveLength(1);
      expect(JSON.stringify(body)).not.toMatch(/chat-a|chat-b|not-the-resource-key/);
    } finally {
      await wrongKey.close();
    }
  });

  it('deployments Azure does not have: the same for clients, and /health points at MODEL_DEPLOYMENTS', async () => {
    const h = await startHarness();
    try {
      for (const d of ['chat-a', 'chat-b']) h.sim.setBehaviour(d, { mode: 'fail', status: 404, body: '{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}', contentType: 'application/json' });
      const err = await h.client.chat.completions.create(hello).catch((e) => e);
      expect(err.status).toBe(502);
      expect(err.code).toBe('upstream_misconfigured');
      // Cooling now, the deployments are skipped: still a configuration problem, not "retry after".
      const again = await h.client.chat.completions.create(hello).catch((e) => e);
      expect(again.code).toBe('upstream_misconfigured');
      const body = await (await fetch(`${h.url}/health`)).json();
      expect(body.problems).toContainEqual({ setting: 'MODEL_DEPLOYMENTS', message: expect.stringContaining('DeploymentNotFound) for gpt-4o-mini') });
    } finally {
      await h.close();
    }
  });

  it('some deployments throttled and the rest failing: a 429 that does not say all are throttled', async () => {
    const h = await startHarness();
    try {
      h.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 30 });
      h.sim.setBehaviour('chat-b', { mode: 'fail', status: 503 });
      const err = await h.client.chat.completions.create(hello).catch((e) => e);
      expect(err.status).toBe(429);
      expect(err.message).toContain('some are throttled, the others failed or did not answer');
    } finally {
      await h.close();
    }
  });
});
