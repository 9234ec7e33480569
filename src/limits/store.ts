/** @module What the limits need of a store shared by every instance: Table Storage in Azure, memory in unit tests. */

/** One lease: budget taken from a limit's window for one instance to hand out alone. */
export interface LeaseRequest {
  /** The budget: a key's name and the kind of limit, as one stable id. */
  readonly budget: string;
  /** The window the lease is for; a budget whose stored window is older starts again from nothing granted. */
  readonly window: number;
  readonly limit: number;
  /** Grant at least this much, or nothing. */
  readonly need: number;
  /** Grant up to this much when plenty is left. */
  readonly want: number;
}

export interface LeaseResult {
  /** What this lease took: 0, or from `need` up to `want`. */
  readonly granted: number;
  /** All granted in the window so far, this lease included: the limit minus this is what any instance may still take. */
  readonly total: number;
}

/** One instance's counts for a key and a model on one UTC day. */
export interface UsageRow {
  /** The key's name; null for the unnamed PROXY_API_KEY keys. */
  readonly key: string | null;
  readonly model: string;
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/**
 * Where instances share their limits and usage. Every call may fail or be cut
 * short by its signal; the caller then enforces its share of each limit
 * alone until the store answers again.
 */
export interface LimitStore {
  /**
   * Takes budget from a window: never more than the limit in all (no two
   * callers are granted the same budget), and at most a quarter of what is
   * left beyond `need`, so a limit close to its end is not stranded on one
   * instance.
   */
  lease(request: LeaseRequest, signal: AbortSignal): Promise<LeaseResult>;
  /** Records that this instance is serving at `now`; returns how many instances served within `liveMs`. */
  announce(instanceId: string, now: number, liveMs: number, signal: AbortSignal): Promise<number>;
  /** Replaces this instance's counts of a day (YYYY-MM-DD) for the rows given. */
  writeUsage(day: string, instanceId: string, rows: readonly UsageRow[], signal: AbortSignal): Promise<void>;
  /** Every instance's rows for a day. */
  readUsage(day: string, signal: AbortSignal): Promise<UsageRow[]>;
  /** The store could not be reached: forget what was assumed about it (a table that may need creating again). */
  forget(): void;
}

/** How much a lease grants, given what is left: the rule every store applies in its one atomic step. */
export function grantFor(request: LeaseRequest, left: number): number {
  if (left < request.need || left <= 0) return 0;
  return Math.min(left, Math.max(request.need, Math.min(request.want, Math.ceil(left / 4))));
}
