import { describe, expect, it } from 'vitest';
import { SharedBalancerState } from '../../src/balancer/shared-state';
import { MemoryBalancerStore } from '../../src/balancer/memory-store';
import { BalancerStore } from '../../src/balancer/store';
import { HealthView } from '../../src/balancer/cooldowns';
import { MemoryLogger } from '../../src/core/log';

interface Instance {
  readonly state: SharedBalancerState;
  readonly health: HealthView;
  readonly logger: MemoryLogger;
}

function instance(store: BalancerStore, now: () => number = Date.now, blockTarget = 16): Instance {
  const health = new HealthView(now);
  const logger = new MemoryLogger();
  const state = new SharedBalancerState({ store, health, logger, now, blockTarget, refreshMs: 1000, retryMs: 5000 });
  return { state, health, logger };
}

/** A memory store that can be switched off, failing every call as an unreachable table would. */
class SwitchableStore extends MemoryBalancerStore {
  down = false;
  forgotten = 0;

  override reserve(poolKey: string, size: number, signal: AbortSignal) {
    return this.down ? Promise.reject(new Error('ECONNREFUSED')) : super.reserve(poolKey, size, signal);
  }

  override readCooldowns(now: number, signal: AbortSignal) {
    return this.down ? Promise.reject(new Error('ECONNREFUSED')) : super.readCooldowns(now, signal);
  }

  override forget(): void {
    this.forgotten++;
  }
}

/** A seeded generator, so a failing interleaving can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Takes n positions from instances chosen at random, in bursts of concurrent
 * requests (so blocks run out while the next is being reserved), and returns
 * every position handed out.
 */
async function take(instances: readonly Instance[], poolKey: string, cycle: number, n: number, rand: () => number): Promise<number[]> {
  const positions: number[] = [];
  while (positions.length < n) {
    const burst = Math.min(n - positions.length, 1 + Math.floor(rand() * 40));
    const pending = Array.from({ length: burst }, () => instances[Math.floor(rand() * instances.length)].state.next(poolKey, cycle));
    positions.push(...(await Promise.all(pending)));
  }
  return positions;
}

describe('the shared cursor', () => {
  for (const m of [2, 4]) {
    it(`keeps each deployment within (2 x ${m} + 1) x weight of its fair share when requests reach ${m} instances in random bursts`, async () => {
      const store = new MemoryBalancerStore();
      const instances = Array.from({ length: m }, () => instance(store));
      // A weight-2 deployment and two of weight 1: the rotation is [big, a, b, big].
      const rotation = ['big', 'a', 'b', 'big'];
      for (const seed of [1, 2, 3]) {
        const key = `m${seed}`;
        const n = 5000;
        const positions = await take(instances, key, rotation.length, n, random(seed));
        const served = new Map<string, number>();
        for (const p of positions) served.set(rotation[p % rotation.length], (served.get(rotation[p % rotation.length]) ?? 0) + 1);
        const bound = 2 * m + 1;
        expect(Math.abs(served.get('big')! - n / 2), `seed ${seed}`).toBeLessThanOrEqual(2 * bound);
        for (const d of ['a', 'b']) expect(Math.abs(served.get(d)! - n / 4), `seed ${seed}, ${d}`).toBeLessThanOrEqual(bound);
      }
    });
  }

  it('never hands out one position twice, across instances, and reserves a block per many requests', async () => {
    const store = new MemoryBalancerStore();
    const instances = Array.from({ length: 3 }, () => instance(store));
    const positions = await take(instances, 'm', 2, 3000, random(7));
    expect(new Set(positions).size).toBe(positions.length);
    expect(store.calls.reserve).toBeLessThan(3000 / 8);
  });

  it('fresh instances that serve one request each take turns instead of all starting on the first deployment', async () => {
    const store = new MemoryBalancerStore();
    const firsts = [];
    for (let i = 0; i < 12; i++) firsts.push(await instance(store).state.next('m', 2));
    const evens = firsts.filter((p) => p % 2 === 0).length;
    expect(evens).toBe(6);
  });

  it('grows its blocks while requests wait for the next one', async () => {
    const store = new MemoryBalancerStore();
    const { state } = instance(store);
    await state.next('m', 2);
    const first = store.cursor('m');
    // Two hundred requests at once: the first block runs out before the next is reserved.
    await Promise.all(Array.from({ length: 200 }, () => state.next('m', 2)));
    expect(store.cursor('m')).toBeGreaterThan(200);
    expect(store.calls.reserve).toBeLessThan(200 / first);
  });

  it('while the store is unreachable, positions come from the instance alone with one warning, and sharing resumes after', async () => {
    let t = 1_000_000;
    const store = new SwitchableStore();
    const a = instance(store, () => t);
    await take([a], 'm', 2, 20, random(1));
    store.down = true;
    const during = await take([a], 'm', 2, 200, random(2));
    expect(during).toHaveLength(200);
    expect(a.state.stats.fallbacks).toBeGreaterThan(0);
    expect(store.forgotten).toBeGreaterThan(0);
    const warnings = a.logger.entries().filter((e) => e.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0].msg)).toContain('storage unavailable');

    store.down = false;
    const reservations = store.calls.reserve;
    t += 5001;
    await take([a], 'm', 2, 100, random(3));
    expect(store.calls.reserve).toBeGreaterThan(reservations);
    expect(a.logger.entries().some((e) => String(e.msg).includes('reachable again'))).toBe(true);
    expect(a.logger.entries().filter((e) => e.level === 'warn')).toHaveLength(1);
  });

  it("an instance learns the cooldowns another published at its next refresh, at most once per interval", async () => {
    let t = 1_000_000;
    const store = new MemoryBalancerStore();
    const a = instance(store, () => t);
    const b = instance(store, () => t);
    b.state.refresh();
    a.health.set('d1', { until: t + 30_000, reason: '429' });
    a.state.publish('d1', { until: t + 30_000, reason: '429' });
    await Promise.resolve();
    expect(b.health.get('d1')).toBeUndefined();
    b.state.refresh();
    await new Promise((r) => setImmediate(r));
    expect(b.health.get('d1')).toBeUndefined();
    t += 1000;
    b.state.refresh();
    await new Promise((r) => setImmediate(r));
    expect(b.health.get('d1')).toEqual({ until: 1_030_000, reason: '429' });
  });
});

describe('tidying the shared store', () => {
  it('deletes the counts of instances silent for an hour, and holders of responses older than Azure keeps them', async () => {
    const store = new MemoryBalancerStore();
    const signal = new AbortController().signal;
    await store.writeStats('gone', new Map([['chat-a', {}]]), signal);
    await store.writeHolder('resp_1', 'chat-a', signal);
    const clock = { now: Date.now() + 59 * 60_000 };
    const { state } = instance(store, () => clock.now);
    expect(await state.tidy()).toBe(0);
    clock.now = Date.now() + 61 * 60_000;
    expect(await state.tidy()).toBe(1);
    expect(await store.readHolder('resp_1', signal)).toBe('chat-a');
    // Azure keeps a stored response 30 days by default; its holder row goes a fortnight after that.
    clock.now = Date.now() + 44 * 24 * 60 * 60_000;
    expect(await state.tidy()).toBe(0);
    clock.now = Date.now() + 46 * 24 * 60 * 60_000;
    expect(await state.tidy()).toBe(1);
    expect(await store.readHolder('resp_1', signal)).toBeUndefined();
  });
});
