import { describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../src/core/log';
import { FLAP_MS, StorageGuard } from '../../src/core/storage-guard';

function guard() {
  const logger = new MemoryLogger();
  const clock = { now: 0 };
  const g = new StorageGuard({ logger, now: () => clock.now, timeoutMs: 1000, retryMs: 5000, downMessage: 'down', upMessage: 'up' });
  const ok = () => g.run(async () => 'fine');
  const fail = () => g.run(async () => { throw new Error('unreachable'); }).catch(() => 'failed');
  const said = () => logger.entries().map((e) => e.msg);
  return { g, clock, ok, fail, said };
}

describe('a shared store\'s outage', () => {
  it('is one warning while it lasts, and one note when it ends; the store is left alone for the retry interval', async () => {
    const { g, clock, ok, fail, said } = guard();
    await fail();
    expect(g.offline).toBe(true);
    clock.now += 1000;
    await fail();
    clock.now += 5000;
    expect(g.offline).toBe(false);
    await ok();
    expect(said()).toEqual(['down', 'up']);
  });

  it('failing again just after it answered is the same outage flapping; failing later is a new one', async () => {
    const { clock, ok, fail, said } = guard();
    await fail();
    clock.now += 6000;
    await ok();
    clock.now += 2000;
    await fail();
    expect(said()).toEqual(['down', 'up']);
    clock.now += 6000;
    await ok();
    clock.now += FLAP_MS;
    await fail();
    expect(said()).toEqual(['down', 'up', 'up', 'down']);
  });
});
