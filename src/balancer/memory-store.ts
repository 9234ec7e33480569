/** @module The balancer's shared state in one process's memory: instances in one test sharing a rotation without Azurite. */
import { Cooldown } from './cooldowns';
import { Buckets } from './stats';
import { BalancerStore, Reservation } from './store';

/**
 * A BalancerStore in memory, with the Table Storage store's semantics: a
 * cursor per pool moved by whole blocks, the latest cooldown per deployment,
 * and each instance's counts replaced on every write. Copies go in and out,
 * as they would through a table.
 */
export class MemoryBalancerStore implements BalancerStore {
  private readonly cursors = new Map<string, number>();
  private readonly cooldowns = new Map<string, Cooldown>();
  /** Each instance's counts per deployment, with when they were written (a table's Timestamp). */
  private readonly stats = new Map<string, { buckets: Buckets; at: number }>();
  private readonly holders = new Map<string, { member: string; at: number }>();
  /** Calls served, by kind: what a test reads to see how often instances went to the store. */
  readonly calls = { reserve: 0, publishCooldown: 0, readCooldowns: 0, writeStats: 0, readStats: 0, writeHolder: 0, readHolder: 0, dropStale: 0 };

  async reserve(poolKey: string, size: number, signal: AbortSignal): Promise<Reservation> {
    this.enter('reserve', signal);
    const start = this.cursors.get(poolKey) ?? 0;
    this.cursors.set(poolKey, start + size);
    return { start, conflicts: 0 };
  }

  async publishCooldown(deploymentId: string, cooldown: Cooldown, signal: AbortSignal): Promise<void> {
    this.enter('publishCooldown', signal);
    this.cooldowns.set(deploymentId, { ...cooldown });
  }

  async readCooldowns(now: number, signal: AbortSignal): Promise<Map<string, Cooldown>> {
    this.enter('readCooldowns', signal);
    const result = new Map<string, Cooldown>();
    for (const [id, c] of this.cooldowns) if (c.until > now) result.set(id, { ...c });
    return result;
  }

  async writeStats(instanceId: string, stats: Map<string, Buckets>, signal: AbortSignal): Promise<void> {
    this.enter('writeStats', signal);
    for (const [deploymentId, buckets] of stats) this.stats.set(`${deploymentId}~${instanceId}`, { buckets: structuredClone(buckets), at: Date.now() });
  }

  async readStats(since: number, signal: AbortSignal): Promise<Map<string, Buckets[]>> {
    this.enter('readStats', signal);
    const result = new Map<string, Buckets[]>();
    for (const [key, { buckets, at }] of this.stats) {
      if (at < since) continue;
      const deploymentId = key.split('~')[0];
      result.set(deploymentId, [...(result.get(deploymentId) ?? []), structuredClone(buckets)]);
    }
    return result;
  }

  async writeHolder(objectId: string, memberId: string, signal: AbortSignal): Promise<void> {
    this.enter('writeHolder', signal);
    this.holders.set(objectId, { member: memberId, at: Date.now() });
  }

  async readHolder(objectId: string, signal: AbortSignal): Promise<string | undefined> {
    this.enter('readHolder', signal);
    return this.holders.get(objectId)?.member;
  }

  async dropStale(statsBefore: number, holdersBefore: number, most: number, signal: AbortSignal): Promise<number> {
    this.enter('dropStale', signal);
    let dropped = 0;
    for (const [rows, before] of [[this.stats, statsBefore], [this.holders, holdersBefore]] as const) {
      for (const [key, row] of rows) {
        if (dropped >= most) return dropped;
        if (row.at >= before) continue;
        rows.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Where a pool's cursor stands: the next position a reservation would start at. */
  cursor(poolKey: string): number {
    return this.cursors.get(poolKey) ?? 0;
  }

  forget(): void {
    // Nothing is assumed about memory.
  }

  private enter(call: keyof MemoryBalancerStore['calls'], signal: AbortSignal): void {
    signal.throwIfAborted();
    this.calls[call]++;
  }
}
