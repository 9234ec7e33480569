/** @module What the shared cursor and health need of a store: Table Storage in Azure, memory in unit tests. */
import { Cooldown } from './cooldowns';
import { Buckets } from './stats';

export interface Reservation {
  /** First position of the reserved block. */
  readonly start: number;
  /** Conditional writes that lost a race before this one won. */
  readonly conflicts: number;
}

/**
 * Where instances share a pool's rotation, cooldowns and recent counts. Every
 * call may fail or be cut short by its signal; the caller then balances on
 * its own until the store answers again.
 */
export interface BalancerStore {
  /** Moves the pool's cursor forward by `size` and returns where the block starts: no two callers get overlapping blocks. */
  reserve(poolKey: string, size: number, signal: AbortSignal): Promise<Reservation>;
  publishCooldown(deploymentId: string, cooldown: Cooldown, signal: AbortSignal): Promise<void>;
  /** Cooldowns still in force at `now`, as every instance published them. */
  readCooldowns(now: number, signal: AbortSignal): Promise<Map<string, Cooldown>>;
  /** Replaces this instance's recent counts for the given deployments. */
  writeStats(instanceId: string, stats: Map<string, Buckets>, signal: AbortSignal): Promise<void>;
  /**
   * Every instance's recent counts, per deployment, from the rows written
   * since `since` (ms since the epoch): instances that came and went leave
   * rows behind, and a read of them all would grow with every one.
   */
  readStats(since: number, signal: AbortSignal): Promise<Map<string, Buckets[]>>;
  /** Records which member holds a stored object (a response): one write. */
  writeHolder(objectId: string, memberId: string, signal: AbortSignal): Promise<void>;
  /** The member that holds a stored object, if one was recorded. */
  readHolder(objectId: string, signal: AbortSignal): Promise<string | undefined>;
  /**
   * Deletes, up to `most` rows, the stats rows last written before
   * `statsBefore` and the holder rows written before `holdersBefore` (ms
   * since the epoch): what instances long gone and responses Azure no longer
   * keeps left behind. Resolves to the rows deleted.
   */
  dropStale(statsBefore: number, holdersBefore: number, most: number, signal: AbortSignal): Promise<number>;
  /** The store could not be reached: forget what was assumed about it (a table that may need creating again). */
  forget(): void;
}
