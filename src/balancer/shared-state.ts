import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Buckets, DeploymentStats, WINDOW_MINUTES } from './stats';
import { CursorSource, HealthPublisher } from './balancer';
import { Cooldown, HealthView } from './cooldowns';
import { Logger, whyUnreachable } from '../core/log';
import { StorageGuard } from '../core/storage-guard';
import { BalancerStore } from './store';
import { SharedHolders } from './holders';

export interface SharedStateOptions {
  readonly store: BalancerStore;
  /** This instance's recent counts, shared every few seconds for /health/deployments. */
  readonly stats?: DeploymentStats;
  readonly health: HealthView;
  readonly logger: Logger;
  readonly now?: () => number;
  /** About how many positions an instance reserves at a time (default 16). */
  readonly blockTarget?: number;
  /** Longest a storage call may take before this instance stops waiting for it (default 1000 ms). */
  readonly timeoutMs?: number;
  /** How often other instances' cooldowns are read (default 1000 ms). */
  readonly refreshMs?: number;
  /** After storage failed, how long before it is tried again (default 5000 ms). */
  readonly retryMs?: number;
  /** The store's outage state, shared with the other parts that use the same table (else this instance's own). */
  readonly guard?: StorageGuard;
}

interface PoolState {
  next: number;
  end: number;
  readonly cycle: number;
  /** Rotations per block now; grows while requests wait for blocks, shrinks when blocks last long. */
  rotations: number;
  readonly minRotations: number;
  installedAt: number;
  queued?: { start: number; end: number };
  pending?: Promise<void>;
  /** This instance's own rotation, used while storage is out of reach. */
  local: number;
}

/** An instance shares its recent counts at most every this many health refresh intervals. */
const STATS_FLUSH_REFRESHES = 5;
/** How far back stats rows are read: the counts' window, and 5 minutes more for the storage service's clock against this one. */
const STATS_READ_MS = (WINDOW_MINUTES + 5) * 60_000;

/** What every instance knows of the deployments: cooldowns in force, and recent counts per instance. */
export interface DeploymentsSnapshot {
  readonly cooldowns: Map<string, Cooldown>;
  readonly recent: Map<string, Buckets[]>;
}

export interface SharedView {
  view(): Promise<DeploymentsSnapshot>;
}

/** Where rows nobody will read again are deleted from the shared store. */
export interface SharedTidy {
  /** Deletes a run's worth of stale rows; resolves to how many. */
  tidy(): Promise<number>;
}

/** Stats rows not written for this long belong to instances gone (a live one writes within minutes of a request). */
const STATS_STALE_MS = 60 * 60_000;
/**
 * Holder rows older than this name responses Azure no longer keeps: it
 * stores them for 30 days by default (Azure's Responses API docs); a row
 * deleted early only costs a lookup across the pool, which records it again.
 */
const HOLDERS_STALE_MS = 45 * 24 * 60 * 60_000;
/**
 * Rows deleted in one run at most, so that a run ends well within a timer
 * function's time (eight deletes in flight at once: their round trips to
 * Azure take about half a minute, the scan that finds them comes on top);
 * the next run goes on where this one stopped.
 */
export const TIDY_ROWS = 20_000;
/** How long a run may take: it pages through a table, unlike the point reads STORAGE_TIMEOUT_MS bounds. */
const TIDY_MS = 5 * 60_000;

/** Blocks grow to at most this many rotations under heavy load. */
const MAX_ROTATIONS = 2048;

/**
 * One more than a whole number of rotations, so that successive blocks start
 * at successive deployments.
 */
function blockSize(pool: PoolState): number {
  return pool.cycle > 1 ? pool.rotations * pool.cycle + 1 : pool.rotations;
}

export interface SharedStats {
  reservations: number;
  conflicts: number;
  fallbacks: number;
  storageMs: number;
}

/**
 * The cursor and health view shared by every instance through a store (Table Storage in Azure),
 * kept off the request path: an instance reserves a block of cursor positions
 * with one conditional write and hands them out locally, reserving the next
 * block when half of the current one is gone.
 *
 * Fairness: blocks are contiguous windows of one global rotation, so the
 * positions used are the rotation from 0 minus, per instance, the unused end
 * of its current block and its unused prefetched block, each a contiguous
 * window whose mix of deployments is within one weight of proportional. Over
 * N requests a deployment of weight w (of total W) serves N*w/W requests, give
 * or take (2 * instances + 1) * w, however the requests are spread.
 *
 * Block sizes are one more than a whole number of rotations, so successive
 * blocks start at successive deployments: fresh instances that serve a request
 * or two each (a scale-out) still take turns instead of all starting on the
 * first deployment. A block grows when requests had to wait for the next one
 * (heavy load) and shrinks when blocks last long; fairness does not depend on
 * its size.
 *
 * When storage is down or slow, requests keep flowing on this instance's own
 * rotation, with one warning, and sharing resumes when storage answers again.
 */
export class SharedBalancerState implements CursorSource, HealthPublisher, SharedView, SharedHolders {
  readonly stats: SharedStats = { reservations: 0, conflicts: 0, fallbacks: 0, storageMs: 0 };
  readonly instanceId = randomUUID().slice(0, 8);
  private lastStatsFlush = -Infinity;
  private readonly pools = new Map<string, PoolState>();
  private readonly now: () => number;
  private readonly guard: StorageGuard;
  private lastRefresh = -Infinity;
  private refreshing = false;

  constructor(private readonly options: SharedStateOptions) {
    this.now = options.now ?? Date.now;
    this.guard = options.guard ?? new StorageGuard({
      logger: options.logger,
      now: this.now,
      timeoutMs: options.timeoutMs ?? 1000,
      retryMs: options.retryMs ?? 5000,
      downMessage: 'balancer storage unavailable; balancing on this instance alone until it answers',
      upMessage: 'balancer storage reachable again; the cursor and health are shared again',
    });
    this.guard.onFailure(() => options.store.forget());
  }

  next(poolKey: string, cycle: number): number | Promise<number> {
    const pool = this.pool(poolKey, cycle);
    if (pool.next < pool.end) {
      const position = pool.next++;
      if (pool.end - pool.next <= blockSize(pool) / 2) this.prefetch(poolKey, pool);
      return position;
    }
    return this.slowNext(poolKey, pool);
  }

  publish(deploymentId: string, cooldown: Cooldown): void {
    if (this.offline()) return;
    void this.call((signal) => this.options.store.publishCooldown(deploymentId, cooldown, signal)).catch(() => {});
  }

  /** Skipped while storage is out: the instance then remembers holders alone. */
  recordHolder(objectId: string, memberId: string): Promise<void> {
    if (this.offline()) return Promise.resolve();
    return this.call((signal) => this.options.store.writeHolder(objectId, memberId, signal));
  }

  findHolder(objectId: string): Promise<string | undefined> {
    if (this.offline()) return Promise.resolve(undefined);
    return this.call((signal) => this.options.store.readHolder(objectId, signal));
  }

  private async slowNext(poolKey: string, pool: PoolState): Promise<number> {
    for (let round = 0; round < 4; round++) {
      if (pool.next < pool.end) return pool.next++;
      if (pool.queued) {
        this.install(pool);
        continue;
      }
      if (this.offline()) break;
      if (pool.end > 0) pool.rotations = Math.min(pool.rotations * 2, MAX_ROTATIONS);
      this.prefetch(poolKey, pool);
      await pool.pending;
    }
    this.stats.fallbacks++;
    return pool.local++;
  }

  private prefetch(poolKey: string, pool: PoolState): void {
    if (pool.pending || pool.queued || this.offline()) return;
    const size = blockSize(pool);
    pool.pending = this.call((signal) => this.options.store.reserve(poolKey, size, signal))
      .then((r) => {
        this.stats.reservations++;
        this.stats.conflicts += r.conflicts;
        pool.queued = { start: r.start, end: r.start + size };
      }, () => {})
      .finally(() => {
        pool.pending = undefined;
      });
  }

  private install(pool: PoolState): void {
    const now = this.now();
    // A block that lasted long means traffic is light: smaller blocks keep instances taking turns.
    if (now - pool.installedAt > 30_000) pool.rotations = Math.max(pool.minRotations, Math.floor(pool.rotations / 2));
    pool.next = pool.queued!.start;
    pool.end = pool.queued!.end;
    pool.queued = undefined;
    pool.installedAt = now;
  }

  /** Deletes stats rows of instances gone and holder rows of responses Azure no longer keeps (see SharedTidy). */
  async tidy(): Promise<number> {
    if (this.offline()) return 0;
    const now = this.now();
    return this.options.store.dropStale(now - STATS_STALE_MS, now - HOLDERS_STALE_MS, TIDY_ROWS, AbortSignal.timeout(TIDY_MS));
  }

  /** Every instance's cooldowns and recent counts, read now (this instance's counts written first). */
  async view(): Promise<DeploymentsSnapshot> {
    await this.flushStats().catch(() => {});
    const [cooldowns, recent] = await Promise.all([
      this.call((signal) => this.options.store.readCooldowns(this.now(), signal)),
      // Rows an instance last wrote before the counts' window (and a margin for clocks) hold nothing recent.
      this.call((signal) => this.options.store.readStats(this.now() - STATS_READ_MS, signal)),
    ]);
    return { cooldowns, recent };
  }

  private flushStats(): Promise<void> {
    const stats = this.options.stats;
    if (!stats || !stats.takeChanged()) return Promise.resolve();
    this.lastStatsFlush = this.now();
    return this.call((signal) => this.options.store.writeStats(this.instanceId, stats.snapshot(), signal));
  }

  /** Whether the store answers now: undefined when it does, else why not, described without the error's message. */
  async probe(): Promise<string | undefined> {
    try {
      await this.call((signal) => this.options.store.readCooldowns(this.now(), signal));
      return undefined;
    } catch (err) {
      return whyUnreachable(err);
    }
  }

  /** Other instances' cooldowns, read in the background at most once per refresh interval. */
  refresh(): void {
    const now = this.now();
    if (now - this.lastStatsFlush >= STATS_FLUSH_REFRESHES * (this.options.refreshMs ?? 1000) && !this.offline()) void this.flushStats().catch(() => {});
    if (this.refreshing || now - this.lastRefresh < (this.options.refreshMs ?? 1000) || this.offline()) return;
    this.refreshing = true;
    this.lastRefresh = now;
    void this.call((signal) => this.options.store.readCooldowns(now, signal))
      .then((cooldowns) => {
        for (const [id, c] of cooldowns) this.options.health.set(id, c);
      }, () => {})
      .finally(() => {
        this.refreshing = false;
      });
  }

  private async call<T>(op: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await this.guard.run(op);
    } finally {
      this.stats.storageMs += performance.now() - started;
    }
  }

  private offline(): boolean {
    return this.guard.offline;
  }

  private pool(poolKey: string, cycle: number): PoolState {
    let pool = this.pools.get(poolKey);
    if (pool === undefined) {
      const target = this.options.blockTarget ?? 16;
      const rotations = Math.max(1, Math.ceil((cycle > 1 ? target - 1 : target) / cycle));
      pool = { next: 0, end: 0, cycle, rotations, minRotations: rotations, installedAt: this.now(), local: 0 };
      this.pools.set(poolKey, pool);
    }
    return pool;
  }
}
