import OpenAI from 'openai';
import { TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { sharingInstances, spread, useSharedUpstream } from '../support/shared-upstream';
import { freePort } from '../support/azurite';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';

const upstream = useSharedUpstream();
const running = upstream.running;
let table = 0;

const POOLS = {
  'gpt-4o-mini': ['chat-a', 'chat-b'],
  weighted: [{ deployment: 'w-big', weight: 2 }, 'w-one', 'w-two'],
};

/** `count` gateway instances sharing one simulator and one fresh table in Azurite. */
function instances(count: number, extra: Record<string, string> = {}): Promise<Harness[]> {
  return sharingInstances(upstream, count, `balancer${++table}`, { MODEL_DEPLOYMENTS: JSON.stringify(POOLS), ...extra });
}

function chat(h: Harness, model = 'gpt-4o-mini') {
  return fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
}

/** Sends n requests, each to a random instance, `parallel` at a time. */
function spreadChat(hs: Harness[], n: number, model: string, parallel = 8): Promise<void> {
  return spread(hs, n, async (h) => {
    const res = await chat(h, model);
    await res.arrayBuffer();
    return res.status;
  }, parallel);
}

const served = (deployment: string) => upstream.sim.callsTo(deployment).filter((c) => c.status === 200).length;

describe('the shared round-robin', () => {
  for (const m of [2, 4]) {
    it(`spreads 2,000 requests arriving at ${m} instances in random order within (2 x ${m} + 1) x weight of the fair share`, async () => {
      const hs = await instances(m);
      const n = 2000;
      await spreadChat(hs, n, 'gpt-4o-mini');
      const bound = 2 * m + 1;
      for (const d of ['chat-a', 'chat-b']) expect(Math.abs(served(d) - n / 2), d).toBeLessThanOrEqual(bound);
      await spreadChat(hs, n, 'weighted');
      expect(Math.abs(served('w-big') - n / 2)).toBeLessThanOrEqual(bound * 2);
      for (const d of ['w-one', 'w-two']) expect(Math.abs(served(d) - n / 4), d).toBeLessThanOrEqual(bound);
    });
  }

  it('fresh instances that serve one request each take turns instead of all starting on the first deployment', async () => {
    const hs = await instances(12);
    for (const h of hs) expect((await chat(h)).status).toBe(200);
    const order = upstream.sim.calls.map((c) => c.deployment);
    expect(order.filter((d) => d === 'chat-a').length).toBe(6);
    expect(order.filter((d) => d === 'chat-b').length).toBe(6);
  });

  it('keeps the cursor in the table, moved by conditional writes', async () => {
    const hs = await instances(2);
    await spreadChat(hs, 100, 'gpt-4o-mini');
    const client = TableClient.fromConnectionString(upstream.azurite.connectionString, `balancer${table}`, { allowInsecureConnection: true });
    const cursor = await client.getEntity<{ next: number }>('cursor', Buffer.from('gpt-4o-mini').toString('base64url'));
    expect(cursor.next).toBeGreaterThanOrEqual(100);
    expect(cursor.etag).toBeTruthy();
  });
});

describe('failover', () => {
  it('a deployment that answered 429 is skipped by a second instance too, until its retry-after has passed, and the client sees no error', async () => {
    const [a, b] = await instances(2);
    upstream.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 2 });
    const throttledAt = Date.now();
    for (let i = 0; i < 2; i++) expect((await chat(a)).status).toBe(200);
    expect(upstream.sim.callsTo('chat-a').map((c) => c.status)).toEqual([429]);
    await new Promise((r) => setTimeout(r, 400)); // b reads shared health every 100 ms
    for (let i = 0; i < 10; i++) expect((await chat(b)).status).toBe(200);
    expect(upstream.sim.callsTo('chat-a')).toHaveLength(1);
    upstream.sim.setBehaviour('chat-a', { mode: 'ok' });
    await new Promise((r) => setTimeout(r, Math.max(0, throttledAt + 2100 - Date.now())));
    for (let i = 0; i < 4; i++) expect((await chat(b)).status).toBe(200);
    expect(served('chat-a')).toBeGreaterThan(0);
  });

  it('when every deployment is throttled the SDK raises RateLimitError and the response carries Retry-After', async () => {
    const [h] = await instances(1);
    upstream.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 7 });
    upstream.sim.setBehaviour('chat-b', { mode: 'throttle', retryAfterSeconds: 3 });
    const err = await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(Number(err.headers.get('retry-after'))).toBe(3);
    expect(err.message).not.toMatch(/ChatCompletions_Create|aka\.ms/);
    // Each deployment was tried once; the next request does not call them again while they cool down.
    expect(upstream.sim.calls).toHaveLength(2);
    const again = await chat(h);
    expect(again.status).toBe(429);
    expect(upstream.sim.calls).toHaveLength(2);
  });

  it('5xx, a hang past the header timeout and a refused connection each fail over; a content-filter 400 does not', async () => {
    const deadPort = await freePort();
    const h = await startHarness({
      sharedSimulator: upstream.sim,
      env: (url) => ({
        UPSTREAM_HEADERS_TIMEOUT_MS: '300',
        MODEL_DEPLOYMENTS: JSON.stringify({
          five: ['f-bad', 'f-good'],
          hang: ['h-bad', 'h-good'],
          refused: [{ deployment: 'r-bad', endpoint: `http://127.0.0.1:${deadPort}`, apiKey: AZURE_KEY }, { deployment: 'r-good', endpoint: url, apiKey: AZURE_KEY }],
          filtered: ['c-bad', 'c-good'],
        }),
      }),
    });
    running.push(h);
    upstream.sim.setBehaviour('f-bad', { mode: 'fail', status: 503 });
    upstream.sim.setBehaviour('h-bad', { mode: 'hang' });
    upstream.sim.setBehaviour('c-bad', { mode: 'block' });
    for (const model of ['five', 'hang', 'refused']) {
      for (let i = 0; i < 2; i++) expect((await chat(h, model)).status, model).toBe(200);
    }
    const tries = h.logger.entries().filter((e) => e.msg === 'request' && e.tried === 2).map((e) => (e.tries as { outcome: string }[])[0].outcome);
    expect(tries.sort()).toEqual(['5xx', 'connect', 'timeout']);

    const filtered = [await chat(h, 'filtered'), await chat(h, 'filtered')];
    const statuses = filtered.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 400]);
    expect(upstream.sim.callsTo('c-bad')).toHaveLength(1);
    expect(upstream.sim.callsTo('c-good')).toHaveLength(1);
  });

  it('a streamed request fails over before its first byte, but not after it', async () => {
    const [h] = await instances(1);
    upstream.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 1 });
    const stream = await h.client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'go' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Simulated reply to: go');

    await new Promise((r) => setTimeout(r, 1100));
    upstream.sim.reset();
    upstream.sim.setBehaviour('chat-a', { mode: 'reset', afterEvents: 3 });
    upstream.sim.setBehaviour('chat-b', { mode: 'reset', afterEvents: 3 });
    const broken = await h.client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, max_tokens: 50, messages: [{ role: 'user', content: 'go' }] });
    const err = await (async () => {
      for await (const _ of broken) { /* reading until it breaks */ }
    })().catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(upstream.sim.calls).toHaveLength(1);
  });
});

describe('when storage goes away', () => {
  it('no request fails, one warning is logged, and sharing resumes when storage is back', async () => {
    const [a, b] = await instances(2, { BALANCER_STORAGE_TIMEOUT_MS: '300' });
    await spreadChat([a, b], 50, 'gpt-4o-mini', 4);
    await upstream.azurite.stop();
    try {
      await spreadChat([a, b], 200, 'gpt-4o-mini', 4);
      const warnings = (h: Harness) => h.logger.entries().filter((e) => e.level === 'warn');
      expect(warnings(a)).toHaveLength(1);
      expect(warnings(b)).toHaveLength(1);
      expect(String(warnings(a)[0].msg)).toContain('storage unavailable');
    } finally {
      await upstream.azurite.start();
    }
    await eventually(async () => {
      await spreadChat([a, b], 20, 'gpt-4o-mini', 2);
      return [a, b].every((h) => h.logger.entries().some((e) => String(e.msg).includes('reachable again')));
    }, 15_000, 'sharing to resume');
    for (const h of [a, b]) expect(h.logger.entries().filter((e) => e.level === 'warn')).toHaveLength(1);
  }, 40_000);
});
