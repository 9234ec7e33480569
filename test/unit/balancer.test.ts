import { describe, expect, it } from 'vitest';
import { AttemptResult, Balancer, LocalCursor, TryRecord } from '../../src/balancer/balancer';
import { loadConfig } from '../../src/config/config';
import { Deployment } from '../../src/azure-openai/deployment';
import { GatewayError } from '../../src/core/errors';
import { HealthView } from '../../src/balancer/cooldowns';
import { weightedSchedule } from '../../src/balancer/schedule';

function pool(spec: unknown[]): readonly Deployment[] {
  const c = loadConfig({ PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com', AZURE_OPENAI_API_KEY: 'x', MODEL_DEPLOYMENTS: JSON.stringify({ m: spec }) });
  return c.models.get('m')!;
}

function balancer(now: () => number = () => 1_000_000) {
  return new Balancer({ cursor: new LocalCursor(), health: new HealthView(now), now, failureCooldownMs: 10_000 });
}

type Answer = AttemptResult<string>;
const ok = (d: Deployment): Answer => ({ kind: 'done', value: d.deployment, ok: true });

describe('cooldowns', () => {
  it('a scoped failure cools that scope of the deployment only', async () => {
    const p = pool(['a', 'b']);
    const b = balancer();
    const seen: string[] = [];
    const attempt = (scope: string) => async (d: Deployment): Promise<Answer> => {
      seen.push(`${d.deployment} ${scope}`);
      return d.deployment === 'a' && scope === 'completions' ? { kind: 'retry', reason: 'unsupported', status: 404, scoped: true } : ok(d);
    };
    await b.dispatch('m', p, attempt('completions'), [], { scope: 'completions' });
    for (let i = 0; i < 2; i++) await b.dispatch('m', p, attempt('completions'), [], { scope: 'completions' });
    for (let i = 0; i < 2; i++) await b.dispatch('m', p, attempt('chat/completions'), [], { scope: 'chat/completions' });
    expect(seen.filter((s) => s === 'a completions')).toHaveLength(1);
    expect(seen.filter((s) => s === 'a chat/completions')).toHaveLength(1);
  });

  it('no cooldown outlasts the cap, whatever retry-after said or another instance published', () => {
    const health = new HealthView(() => 1_000_000, 300_000);
    expect(health.set('d', { until: Date.parse('2030-01-01'), reason: '429' })?.until).toBe(1_300_000);
    expect(health.get('d')?.until).toBe(1_300_000);
  });
});

describe('the balancer', () => {
  it('rotates through a pool, a weight-2 deployment taking twice the share, spread within the rotation', () => {
    const s = weightedSchedule(pool([{ deployment: 'big', weight: 2 }, 'a', 'b']));
    expect(s.map((d) => d.deployment)).toEqual(['big', 'a', 'b', 'big']);
    const five = weightedSchedule(pool([{ deployment: 'big', weight: 3 }, 'a', 'b']));
    expect(five.map((d) => d.deployment).join(' ')).toBe('big a big b big');
  });

  it('tries each deployment at most once per request and fails over past 429s', async () => {
    const p = pool(['a', 'b', 'c']);
    const b = balancer();
    const seen: string[] = [];
    const tries: TryRecord[] = [];
    const value = await b.dispatch('m', p, async (d) => {
      seen.push(d.deployment);
      return d.deployment === 'c' ? ok(d) : { kind: 'retry', reason: '429', retryAfterMs: 2000 };
    }, tries);
    expect(value).toBe('c');
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(tries.map((t) => t.outcome)).toEqual(['429', '429', 'ok']);
  });

  it('skips a cooling deployment without calling it, until its retry-after has passed', async () => {
    let t = 1_000_000;
    const p = pool(['a', 'b']);
    const b = balancer(() => t);
    const calls: string[] = [];
    const attempt = async (d: Deployment): Promise<Answer> => {
      calls.push(d.deployment);
      return d.deployment === 'a' && t < 1_002_000 ? { kind: 'retry', reason: '429', retryAfterMs: 2000 } : ok(d);
    };
    for (let i = 0; i < 4; i++) await b.dispatch('m', p, attempt, []);
    expect(calls).toEqual(['a', 'b', 'b', 'b', 'b']);
    t += 2000;
    calls.length = 0;
    for (let i = 0; i < 2; i++) await b.dispatch('m', p, attempt, []);
    expect(calls).toContain('a');
  });

  it('answers 429 with the soonest recovery when all are throttled, 504 when all timed out, 502 otherwise', async () => {
    const p = pool(['a', 'b']);
    const fail = (reason: 'timeout' | '5xx', ms?: number) => async (): Promise<Answer> => ({ kind: 'retry', reason, retryAfterMs: ms });
    const throttled = await balancer().dispatch('m', p, async (d) => ({ kind: 'retry', reason: '429', retryAfterMs: d.deployment === 'a' ? 9000 : 2500 }), []).catch((e) => e);
    expect(throttled).toBeInstanceOf(GatewayError);
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('3');
    expect((await balancer().dispatch('m', p, fail('timeout'), []).catch((e) => e)).status).toBe(504);
    expect((await balancer().dispatch('m', p, fail('5xx'), []).catch((e) => e)).status).toBe(502);
  });

  it('starts no try past the request\'s deadline, and answers 504 then, whatever the tries before it said', async () => {
    const p = pool(['a', 'b', 'c']);
    let now = 1_000_000;
    const b = balancer(() => now);
    const tried: string[] = [];
    // Each try fails after using up 100 s; the deadline leaves room for two.
    const slow = async (d: Deployment): Promise<Answer> => {
      tried.push(d.deployment);
      now += 100_000;
      return { kind: 'retry', reason: d.deployment === 'a' ? '5xx' : 'timeout' };
    };
    const tries: TryRecord[] = [];
    const err = await b.dispatch('m', p, slow, tries, { deadline: now + 150_000 }).catch((e) => e);
    expect(tried).toHaveLength(2);
    expect(tries).toHaveLength(2);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.status).toBe(504);
    expect(err.code).toBe('upstream_timeout');
    // A deadline already past tries none.
    tried.length = 0;
    expect((await balancer(() => now).dispatch('m', p, slow, [], { deadline: now }).catch((e) => e)).status).toBe(504);
    expect(tried).toEqual([]);
  });

  it('answers 503 with Retry-After when every deployment is still recovering from errors', async () => {
    const p = pool(['a', 'b']);
    const b = balancer();
    await b.dispatch('m', p, async () => ({ kind: 'retry', reason: '5xx' }), []).catch(() => {});
    const calls: string[] = [];
    const err = await b.dispatch('m', p, async (d) => (calls.push(d.deployment), ok(d)), []).catch((e) => e);
    expect(calls).toEqual([]);
    expect(err.status).toBe(503);
    expect(err.headers['retry-after']).toBe('10');
  });
});

describe('priority groups', () => {
  const tiers = () => pool([{ deployment: 'ptu-a', priority: 1 }, { deployment: 'ptu-b', priority: 1 }, { deployment: 'paygo-a', priority: 2 }, { deployment: 'paygo-b', priority: 2 }]);

  it('serves only the best group while it can, spills while all of it is throttled, and comes back when one recovers', async () => {
    let t = 1_000_000;
    const p = tiers();
    const b = balancer(() => t);
    const throttled = new Set<string>();
    const calls: string[] = [];
    const attempt = async (d: Deployment): Promise<Answer> => {
      calls.push(d.deployment);
      return throttled.has(d.deployment) ? { kind: 'retry', reason: '429', retryAfterMs: 2000 } : ok(d);
    };
    for (let i = 0; i < 6; i++) await b.dispatch('m', p, attempt, []);
    expect(calls).toEqual(['ptu-a', 'ptu-b', 'ptu-a', 'ptu-b', 'ptu-a', 'ptu-b']);

    calls.length = 0;
    throttled.add('ptu-a').add('ptu-b');
    const tries: TryRecord[] = [];
    expect(await b.dispatch('m', p, attempt, tries)).toBe('paygo-a');
    expect(tries).toEqual([
      { deployment: 'ptu-a', outcome: '429', status: undefined, priority: 1, spilled: undefined },
      { deployment: 'ptu-b', outcome: '429', status: undefined, priority: 1, spilled: undefined },
      { deployment: 'paygo-a', outcome: 'ok', priority: 2, spilled: true },
    ]);
    for (let i = 0; i < 4; i++) await b.dispatch('m', p, attempt, []);
    expect(calls).toEqual(['ptu-a', 'ptu-b', 'paygo-a', 'paygo-b', 'paygo-a', 'paygo-b', 'paygo-a']);

    calls.length = 0;
    throttled.clear();
    t += 2000;
    const back: TryRecord[] = [];
    await b.dispatch('m', p, attempt, back);
    expect(back).toEqual([{ deployment: 'ptu-b', outcome: 'ok', priority: 1, spilled: undefined }]);
    await b.dispatch('m', p, attempt, []);
    // The first group's rotation goes on from its last turn (the request that spilled took ptu-a's).
    expect(calls).toEqual(['ptu-b', 'ptu-a']);
  });

  it('keeps a rotation per group, and spends no turn of a group that is wholly cooling', async () => {
    const keys: string[] = [];
    const local = new LocalCursor();
    const cursor = { next: (key: string, cycle: number) => (keys.push(key), local.next(key)) };
    const health = new HealthView(() => 1_000_000);
    const b = new Balancer({ cursor, health, now: () => 1_000_000, failureCooldownMs: 10_000 });
    const p = tiers();
    await b.dispatch('m', p, async (d) => ok(d), []);
    for (const d of p.slice(0, 2)) health.set(d.id, { until: 1_005_000, reason: '5xx' });
    await b.dispatch('m', p, async (d) => ok(d), []);
    await b.dispatch('m', p, async (d) => ok(d), []);
    expect(keys).toEqual(['m', 'm#p2', 'm#p2']);
  });

  it('answers 429 only when every group is out, with the soonest recovery of any', async () => {
    const p = tiers();
    const b = balancer();
    const retryAfter: Record<string, number> = { 'ptu-a': 9000, 'ptu-b': 8000, 'paygo-a': 6000, 'paygo-b': 4500 };
    const tries: TryRecord[] = [];
    const err = await b.dispatch('m', p, async (d) => ({ kind: 'retry', reason: '429', retryAfterMs: retryAfter[d.deployment] }), tries).catch((e) => e);
    expect(err.status).toBe(429);
    expect(err.headers['retry-after']).toBe('5');
    expect(tries.map((t) => t.deployment)).toEqual(['ptu-a', 'ptu-b', 'paygo-a', 'paygo-b']);
    const again: TryRecord[] = [];
    expect((await b.dispatch('m', p, async (d) => ok(d), again).catch((e) => e)).status).toBe(429);
    expect(again.map((t) => [t.outcome, t.priority])).toEqual([['cooling', 1], ['cooling', 1], ['cooling', 2], ['cooling', 2]]);
  });
});

describe('prompt-cache affinity', () => {
  const keyed = (b: Balancer, p: readonly Deployment[], key: string, attempt = async (d: Deployment) => ok(d)) =>
    b.dispatch('m', p, attempt, [], { affinityKey: key });
  const keys = Array.from({ length: 6000 }, (_, i) => `conversation-${i}`);

  it('sends every request with one key to one member, the same on every instance, keys spread in proportion to weight', async () => {
    const p = pool([{ deployment: 'big', weight: 2 }, 'a', 'b', { deployment: 'overflow', priority: 2 }]);
    const one = balancer();
    const other = balancer();
    const counts = new Map<string, number>();
    for (const key of keys) {
      const served = await keyed(one, p, key);
      expect(await keyed(one, p, key)).toBe(served);
      expect(await keyed(other, p, key)).toBe(served);
      counts.set(served, (counts.get(served) ?? 0) + 1);
    }
    expect(counts.get('overflow')).toBeUndefined();
    expect(counts.get('big')! / keys.length).toBeCloseTo(0.5, 1);
    for (const d of ['a', 'b']) expect(Math.abs(counts.get(d)! / keys.length - 0.25), d).toBeLessThan(0.03);
  });

  it("moves only a cooling member's keys, spread over the rest of the group, and brings them back when it recovers", async () => {
    let t = 1_000_000;
    const p = pool(['a', 'b', 'c', { deployment: 'overflow', priority: 2 }]);
    const b = balancer(() => t);
    const before = new Map<string, string>();
    for (const key of keys) before.set(key, await keyed(b, p, key));

    // The first request of one of a's keys finds it throttled: that request and the rest of a's keys move.
    const first = keys.find((k) => before.get(k) === 'a')!;
    const calls: string[] = [];
    const aThrottled = async (d: Deployment): Promise<Answer> => (calls.push(d.deployment), d.deployment === 'a' ? { kind: 'retry', reason: '429', retryAfterMs: 30_000 } : ok(d));
    const movedTo = await keyed(b, p, first, aThrottled);
    expect(calls).toEqual(['a', movedTo]);

    const moved = new Map<string, number>();
    for (const key of keys) {
      const now = await keyed(b, p, key, aThrottled);
      if (before.get(key) === 'a') moved.set(now, (moved.get(now) ?? 0) + 1);
      else expect(now, key).toBe(before.get(key));
    }
    expect(calls.filter((d) => d === 'a')).toHaveLength(1);
    expect([...moved.keys()].sort()).toEqual(['b', 'c']);
    expect(Math.abs(moved.get('b')! - moved.get('c')!)).toBeLessThan(0.2 * (moved.get('b')! + moved.get('c')!));
    expect((await keyed(b, p, first, aThrottled))).toBe(movedTo);

    t += 30_000;
    for (const key of keys) expect(await keyed(b, p, key), key).toBe(before.get(key));
  });

  it('spills keyed requests to the next group only when all of the best group is out, and they stick there too', async () => {
    const p = pool(['a', 'b', { deployment: 'x', priority: 2 }, { deployment: 'y', priority: 2 }]);
    const health = new HealthView(() => 1_000_000);
    const b = new Balancer({ cursor: new LocalCursor(), health, now: () => 1_000_000, failureCooldownMs: 10_000 });
    health.set(p[0].id, { until: 1_010_000, reason: '429' });
    for (const key of keys.slice(0, 50)) expect(['b']).toContain(await keyed(b, p, key));
    health.set(p[1].id, { until: 1_010_000, reason: '429' });
    const spilled = new Set<string>();
    for (const key of keys.slice(0, 50)) {
      const tries: TryRecord[] = [];
      const served = await b.dispatch('m', p, async (d) => ok(d), tries, { affinityKey: key });
      expect(await keyed(b, p, key)).toBe(served);
      expect(tries.at(-1)).toMatchObject({ priority: 2, spilled: true });
      spilled.add(served);
    }
    expect([...spilled].sort()).toEqual(['x', 'y']);
  });

  it('without a key, requests take the rotation as before', async () => {
    const p = pool(['a', 'b']);
    const b = balancer();
    const served = [];
    for (let i = 0; i < 4; i++) served.push(await b.dispatch('m', p, async (d) => ok(d), [], {}));
    expect(served).toEqual(['a', 'b', 'a', 'b']);
  });
});

describe('when no deployment could serve', () => {
  const failing = (result: Answer) => async (): Promise<Answer> => result;
  const codeOf = async (b: Balancer, p: readonly Deployment[], result: Answer) =>
    (await b.dispatch('m', p, failing(result), []).catch((e: GatewayError) => e)) as GatewayError;

  it('Azure refusing the credential (401, 403) or the deployment everywhere is the operator\'s to fix, and not retried', async () => {
    for (const result of [{ kind: 'retry', reason: 'rejected', status: 401 }, { kind: 'retry', reason: 'rejected', status: 403 }, { kind: 'retry', reason: 'missing', status: 404 }] as Answer[]) {
      const b = balancer();
      const p = pool(['a', 'b']);
      const first = await codeOf(b, p, result);
      expect(first).toMatchObject({ status: 502, code: 'upstream_misconfigured' });
      expect(first.headers['x-should-retry']).toBe('false');
      // Cooling after a refusal: only a missing deployment is still certain.
      const again = await codeOf(b, p, result);
      expect(again.code).toBe(result.kind === 'retry' && result.reason === 'missing' ? 'upstream_misconfigured' : 'service_unavailable');
    }
  });

  it('a refusal that may pass (no status: a sign-in that failed; a redirect) is still one to retry', async () => {
    for (const result of [{ kind: 'retry', reason: 'rejected' }, { kind: 'retry', reason: 'rejected', status: 307 }] as Answer[]) {
      const error = await codeOf(balancer(), pool(['a', 'b']), result);
      expect(error.code).toBe('upstream_error');
      expect(error.headers['x-should-retry']).toBeUndefined();
    }
  });
});
