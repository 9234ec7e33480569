import { describe, expect, it } from 'vitest';
import { StoredHolders } from '../../src/balancer/holders';
import { SharedBalancerState } from '../../src/balancer/shared-state';
import { MemoryBalancerStore } from '../../src/balancer/memory-store';
import { HealthView } from '../../src/balancer/cooldowns';
import { MemoryLogger } from '../../src/core/log';

/** Instances sharing one memory store, as gateway instances share the balancer table. */
function instances(count: number, store = new MemoryBalancerStore(), capacity?: number): { store: MemoryBalancerStore; holders: StoredHolders[] } {
  const holders = Array.from({ length: count }, () => {
    const shared = new SharedBalancerState({ store, health: new HealthView(), logger: new MemoryLogger() });
    return new StoredHolders(shared, capacity);
  });
  return { store, holders };
}

describe('stored holders', () => {
  it('one write per remembered object; another instance finds it with one read, then from memory', async () => {
    const { store, holders: [a, b] } = instances(2);
    await a.remember('resp_1', 'dep-x');
    expect(await a.find('resp_1')).toBe('dep-x');
    expect(store.calls.readHolder).toBe(0);
    expect(await b.find('resp_1')).toBe('dep-x');
    expect(await b.find('resp_1')).toBe('dep-x');
    expect(store.calls).toMatchObject({ writeHolder: 1, readHolder: 1 });
  });

  it('a miss is not remembered: a record written later is still found', async () => {
    const { holders: [a, b] } = instances(2);
    expect(await b.find('resp_2')).toBeUndefined();
    await a.remember('resp_2', 'dep-y');
    expect(await b.find('resp_2')).toBe('dep-y');
  });

  it('keeps at most its capacity in memory, the least recently used going first', async () => {
    const { store, holders: [a] } = instances(1, undefined, 2);
    await a.remember('resp_1', 'd1');
    await a.remember('resp_2', 'd2');
    await a.find('resp_1');
    await a.remember('resp_3', 'd3');
    const reads = store.calls.readHolder;
    await a.find('resp_1');
    await a.find('resp_3');
    expect(store.calls.readHolder).toBe(reads);
    expect(await a.find('resp_2')).toBe('d2');
    expect(store.calls.readHolder).toBe(reads + 1);
  });

  it('an id that could not be a table key never reaches the store', async () => {
    const { store, holders: [a] } = instances(1);
    await a.remember('resp/../x', 'd');
    expect(await a.find('resp#1')).toBeUndefined();
    expect(store.calls).toMatchObject({ writeHolder: 0, readHolder: 0 });
  });
});
