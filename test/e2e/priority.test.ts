import OpenAI from 'openai';
import { TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { sharingInstances, spread, useSharedUpstream } from '../support/shared-upstream';
import { Harness, PROXY_KEY } from '../support/harness';

const upstream = useSharedUpstream();
let table = 0;

const POOLS = {
  // Provisioned throughput first, pay-as-you-go as overflow.
  tiers: [{ deployment: 'ptu-a', priority: 1 }, { deployment: 'ptu-b', priority: 1 }, { deployment: 'paygo-a', priority: 2 }, { deployment: 'paygo-b', priority: 2 }],
  cached: { deployments: ['cache-a', 'cache-b', 'cache-c', { deployment: 'cache-overflow', priority: 2 }], affinity: 'prompt_cache_key' },
};

/** `count` gateway instances sharing one simulator and one fresh balancer table in Azurite. */
function instances(count: number): Promise<Harness[]> {
  return sharingInstances(upstream, count, `priority${++table}`, { MODEL_DEPLOYMENTS: JSON.stringify(POOLS) });
}

async function chat(h: Harness, model: string, fields: Record<string, unknown> = {}): Promise<number> {
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...fields }),
  });
  await res.arrayBuffer();
  return res.status;
}

interface RequestLine {
  deployment?: string;
  priority?: number;
  spilled?: boolean;
  tries?: { deployment: string; outcome: string; priority: number }[];
}

/** The request log lines an instance wrote, oldest first. */
const lines = (h: Harness): RequestLine[] => h.logger.entries().filter((e) => e.msg === 'request') as RequestLine[];
const served = (deployment: string) => upstream.sim.callsTo(deployment).filter((c) => c.status === 200).length;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Which deployment answered each call carrying this prompt-cache key. */
function deploymentsFor(field: string, key: string): string[] {
  return upstream.sim.calls.filter((c) => c.status === 200 && JSON.parse(c.body.toString('utf8'))[field] === key).map((c) => c.deployment);
}

interface DeploymentState {
  deployment: string;
  priority: number;
  affinity?: string;
  state: 'healthy' | 'cooling';
  cooling_until?: string;
}

/** A model's deployments as GET /health/deployments shows them. */
async function deploymentsHealth(h: Harness, model: string): Promise<DeploymentState[]> {
  const res = await fetch(`${h.url}/health/deployments`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
  const body = (await res.json()) as { data: (DeploymentState & { model: string })[] };
  return body.data.filter((d) => d.model === model);
}

/** Waits out the longest cooldown shown (each instance that met the 429 set its own retry-after from then). */
async function untilCooled(states: DeploymentState[]): Promise<void> {
  const until = Math.max(...states.map((d) => (d.cooling_until ? Date.parse(d.cooling_until) : 0)));
  expect(until).toBeGreaterThan(0);
  await pause(Math.max(0, until + 50 - Date.now()));
}

/** No two requests in a row served by the same deployment: a strict rotation of two. */
function alternates(deployments: (string | undefined)[]): boolean {
  return deployments.every((d, i) => d !== undefined && (i === 0 || d !== deployments[i - 1]));
}

describe('priority groups', () => {
  it('serve the first group in strict turns while it is healthy, spill to the second while both answer 429, and come back after their retry-after', async () => {
    const [a, b] = await instances(2);
    for (let i = 0; i < 12; i++) expect(await chat(i % 2 ? b : a, 'tiers')).toBe(200);
    expect([served('ptu-a'), served('ptu-b'), served('paygo-a'), served('paygo-b')]).toEqual([6, 6, 0, 0]);
    for (const h of [a, b]) {
      expect(alternates(lines(h).map((l) => l.deployment))).toBe(true);
      expect(lines(h).every((l) => l.priority === 1 && l.spilled === false)).toBe(true);
    }

    upstream.sim.setBehaviour('ptu-a', { mode: 'throttle', retryAfterMs: 1500 });
    upstream.sim.setBehaviour('ptu-b', { mode: 'throttle', retryAfterMs: 1500 });
    expect(await chat(a, 'tiers')).toBe(200);
    const spill = lines(a).at(-1)!;
    expect(spill).toMatchObject({ priority: 2, spilled: true });
    expect(spill.tries!.map((t) => [t.outcome, t.priority])).toEqual([['429', 1], ['429', 1], ['ok', 2]]);

    // b's next request reads the shared cooldowns (at most every 100 ms); until then it may try the first group itself.
    expect(await chat(b, 'tiers')).toBe(200);
    expect(lines(b).at(-1)).toMatchObject({ priority: 2, spilled: true });
    await pause(200);
    const ptuCalls = upstream.sim.callsTo('ptu-a').length + upstream.sim.callsTo('ptu-b').length;
    const before = { a: lines(a).length, b: lines(b).length };
    for (let i = 0; i < 8; i++) expect(await chat(i % 2 ? b : a, 'tiers')).toBe(200);
    expect(upstream.sim.callsTo('ptu-a').length + upstream.sim.callsTo('ptu-b').length).toBe(ptuCalls);
    const spilledA = lines(a).slice(before.a);
    const spilledB = lines(b).slice(before.b);
    for (const l of [...spilledA, ...spilledB]) expect(l).toMatchObject({ priority: 2, spilled: true, tries: [{ outcome: 'cooling' }, { outcome: 'cooling' }, { outcome: 'ok' }] });
    expect(alternates(spilledA.map((l) => l.deployment))).toBe(true);
    expect(alternates(spilledB.map((l) => l.deployment))).toBe(true);

    const tiers = await deploymentsHealth(b, 'tiers');
    expect(tiers.map((d) => [d.deployment, d.priority, d.state])).toEqual([
      ['ptu-a', 1, 'cooling'], ['ptu-b', 1, 'cooling'], ['paygo-a', 2, 'healthy'], ['paygo-b', 2, 'healthy'],
    ]);

    upstream.sim.setBehaviour('ptu-a', { mode: 'ok' });
    upstream.sim.setBehaviour('ptu-b', { mode: 'ok' });
    await untilCooled(tiers);
    const paygo = served('paygo-a') + served('paygo-b');
    for (let i = 0; i < 4; i++) expect(await chat(i % 2 ? b : a, 'tiers')).toBe(200);
    expect(served('paygo-a') + served('paygo-b')).toBe(paygo);
    for (const h of [a, b]) expect(lines(h).slice(-2).map((l) => [l.priority, l.spilled])).toEqual([[1, false], [1, false]]);
  });

  it('answer the client 429 with Retry-After only when every group is out', async () => {
    const [h] = await instances(1);
    upstream.sim.setBehaviour('ptu-a', { mode: 'throttle', retryAfterSeconds: 7 });
    upstream.sim.setBehaviour('ptu-b', { mode: 'throttle', retryAfterSeconds: 6 });
    upstream.sim.setBehaviour('paygo-a', { mode: 'throttle', retryAfterSeconds: 3 });
    expect(await chat(h, 'tiers')).toBe(200);
    upstream.sim.setBehaviour('paygo-b', { mode: 'throttle', retryAfterSeconds: 4 });
    const err = await h.client.chat.completions.create({ model: 'tiers', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(Number(err.headers.get('retry-after'))).toBe(3);
    expect(upstream.sim.calls.map((c) => c.status)).toEqual([429, 429, 429, 200, 429]);
  });

  it('keep the fairness bound within a group, each group on its own shared cursor', async () => {
    const hs = await instances(2);
    const bound = 2 * hs.length + 1;
    const n = 600;
    await spread(hs, n, (h) => chat(h, 'tiers'));
    for (const d of ['ptu-a', 'ptu-b']) expect(Math.abs(served(d) - n / 2), d).toBeLessThanOrEqual(bound);
    expect(served('paygo-a') + served('paygo-b')).toBe(0);

    upstream.sim.setBehaviour('ptu-a', { mode: 'throttle', retryAfterSeconds: 60 });
    upstream.sim.setBehaviour('ptu-b', { mode: 'throttle', retryAfterSeconds: 60 });
    await spread(hs, n, (h) => chat(h, 'tiers'));
    for (const d of ['paygo-a', 'paygo-b']) expect(Math.abs(served(d) - n / 2), d).toBeLessThanOrEqual(bound);

    const client = TableClient.fromConnectionString(upstream.azurite.connectionString, `priority${table}`, { allowInsecureConnection: true });
    for (const key of ['tiers', 'tiers#p2']) {
      const cursor = await client.getEntity<{ next: number }>('cursor', Buffer.from(key).toString('base64url'));
      expect(cursor.next, key).toBeGreaterThanOrEqual(n);
    }
  }, 60_000);
});

describe('prompt-cache affinity', () => {
  it('sends requests with the same key to the same deployment from both instances, and ten keys spread over the group', async () => {
    const [a, b] = await instances(2);
    const keys = Array.from({ length: 10 }, (_, i) => `tenant-${i}-system-prompt`);
    for (let round = 0; round < 3; round++) {
      for (const key of keys) {
        expect(await chat(a, 'cached', { prompt_cache_key: key })).toBe(200);
        expect(await chat(b, 'cached', { prompt_cache_key: key })).toBe(200);
      }
    }
    const homes = new Set<string>();
    for (const key of keys) {
      const where = deploymentsFor('prompt_cache_key', key);
      expect(where).toHaveLength(6);
      expect(new Set(where).size, key).toBe(1);
      homes.add(where[0]);
    }
    expect(homes.size).toBeGreaterThanOrEqual(2);
    expect(homes.has('cache-overflow')).toBe(false);

    // Without prompt_cache_key, the end user named by user or safety_identifier keys the request.
    for (const h of [a, b, a, b]) await h.client.chat.completions.create({ model: 'cached', user: 'user-1', messages: [{ role: 'user', content: 'hello there' }] });
    for (const h of [a, b, a, b]) await h.client.chat.completions.create({ model: 'cached', safety_identifier: 'hashed-user-2', messages: [{ role: 'user', content: 'hello there' }] });
    expect(new Set(deploymentsFor('user', 'user-1')).size).toBe(1);
    expect(new Set(deploymentsFor('safety_identifier', 'hashed-user-2')).size).toBe(1);

    const cached = await deploymentsHealth(a, 'cached');
    expect(cached.map((d) => [d.affinity, d.priority])).toEqual([
      ['prompt_cache_key', 1], ['prompt_cache_key', 1], ['prompt_cache_key', 1], ['prompt_cache_key', 2],
    ]);
  });

  it("moves a cooling deployment's keys elsewhere on both instances, leaves other keys where they were, and brings them back", async () => {
    const [a, b] = await instances(2);
    const keys = Array.from({ length: 12 }, (_, i) => `thread-${i}`);
    for (const key of keys) expect(await chat(a, 'cached', { prompt_cache_key: key })).toBe(200);
    const home = new Map(keys.map((k) => [k, deploymentsFor('prompt_cache_key', k)[0]]));
    const key = keys[0];
    const cooling = home.get(key)!;
    const others = keys.filter((k) => home.get(k) !== cooling);
    expect(others.length).toBeGreaterThan(0);

    upstream.sim.setBehaviour(cooling, { mode: 'throttle', retryAfterMs: 1500 });
    upstream.sim.calls.length = 0;
    expect(await chat(a, 'cached', { prompt_cache_key: key })).toBe(200);
    const moved = lines(a).at(-1)!;
    expect(moved.tries!.map((t) => t.outcome)).toEqual(['429', 'ok']);
    const newHome = moved.deployment!;
    expect(newHome).not.toBe(cooling);
    expect(moved.priority).toBe(1);

    // b's next request reads the shared cooldowns (at most every 100 ms); until then it may try the cooling one itself.
    expect(await chat(b, 'cached', { prompt_cache_key: key })).toBe(200);
    await pause(200);
    const coolingCalls = upstream.sim.callsTo(cooling).length;
    for (const h of [a, b, a, b]) expect(await chat(h, 'cached', { prompt_cache_key: key })).toBe(200);
    expect(deploymentsFor('prompt_cache_key', key)).toEqual([newHome, newHome, newHome, newHome, newHome, newHome]);
    expect(upstream.sim.callsTo(cooling)).toHaveLength(coolingCalls);
    for (const k of others) {
      expect(await chat(b, 'cached', { prompt_cache_key: k })).toBe(200);
      expect(deploymentsFor('prompt_cache_key', k), k).toEqual([home.get(k)]);
    }

    upstream.sim.setBehaviour(cooling, { mode: 'ok' });
    await untilCooled(await deploymentsHealth(b, 'cached'));
    upstream.sim.calls.length = 0;
    for (const h of [a, b]) expect(await chat(h, 'cached', { prompt_cache_key: key })).toBe(200);
    expect(deploymentsFor('prompt_cache_key', key)).toEqual([cooling, cooling]);
  });
});
