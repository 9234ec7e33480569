/** @module One limit of one key on this instance: budget leased from the shared store in slices and handed out locally. */
import { LeaseRequest, LeaseResult } from './store';
import { LimitKind, windowOf } from './windows';

/** What a budget needs from the instance around it. */
export interface BudgetSource {
  now(): number;
  /** True while the shared store is out of reach: each instance then enforces its share alone. */
  readonly offline: boolean;
  /** Instances sharing the limits, as last counted (1 until counted). */
  readonly instances: number;
  /** A lease from the shared store; rejects when the store fails (and `offline` turns true). */
  lease(request: LeaseRequest): Promise<LeaseResult>;
}

/** A slice is this fraction of the limit: leases are rare, and little is stranded on an instance at a window's end. */
const SLICES_PER_WINDOW = 20;

/**
 * A key's limit of one kind, as this instance enforces it. The instance holds
 * budget it leased from the shared store (`held`) and spends it with no
 * storage call; when it runs low it leases the next slice in the background,
 * as the balancer's cursor reserves positions. The store never grants more
 * than the limit in a window, so requests admitted from leased budget never
 * pass it, whichever instance admits them.
 *
 * Token counts are admitted on an estimate and settled with the real count:
 * `held` goes below zero when a request used more than it was admitted on,
 * and that debt is leased back before the next request is admitted.
 *
 * While the store is out of reach the instance may go into debt by its share
 * of what the store had left when last seen (of the whole limit in a window
 * it has not seen), and leases the debt back when the store answers again.
 */
export class Budget {
  private window = Number.NaN;
  private startsAt = 0;
  private endsAt = 0;
  /** Leased and not yet spent, in this window; negative is debt. */
  private held = 0;
  /** What the store had left to lease in this window, as last seen: an upper bound on what any lease can get. */
  private storeLeft: number;
  private pending?: Promise<void>;
  /** What requests waiting for a lease want in all: the next lease asks for it at once. */
  private waiting = 0;

  constructor(
    /** Stable across instances: the key's name and the kind of limit. */
    readonly id: string,
    readonly kind: LimitKind,
    private limitValue: number,
    private readonly source: BudgetSource,
  ) {
    this.storeLeft = limitValue;
  }

  get limit(): number {
    return this.limitValue;
  }

  /** A rotated secret changed the limit: what is left changes with it. */
  set limit(value: number) {
    this.storeLeft += value - this.limitValue;
    this.limitValue = value;
  }

  /** The window the budget is in now (after rolling to `now`'s). */
  windowAt(now: number): number {
    this.roll(now);
    return this.window;
  }

  /** Milliseconds until the current window ends and its budget starts again. */
  resetMs(now: number): number {
    this.roll(now);
    return this.endsAt - now;
  }

  /** What all instances may still spend in this window, as far as this one knows. */
  remaining(now: number): number {
    this.roll(now);
    return Math.max(0, Math.min(this.limitValue, this.storeLeft + this.held));
  }

  /** Whether `cost` can be spent from what this instance holds, with no storage call. */
  holds(cost: number, now: number): boolean {
    this.roll(now);
    return this.held >= cost;
  }

  /** Spends from what is held (after `holds` said yes), and leases the next slice in the background when running low. */
  spend(cost: number): void {
    this.held -= cost;
    const slice = this.slice();
    if (slice > 1 && this.held <= slice / 2 && this.pending === undefined && this.storeLeft > 0 && !this.source.offline) this.lease(1, slice);
  }

  /**
   * Takes `cost`, leasing more first when too little is held: false when this
   * window has no room for it. Every lease this waits for either grants
   * budget or shows the store has less left, so the wait ends.
   */
  async take(cost: number): Promise<boolean> {
    if (cost > this.limitValue) return false;
    this.waiting += cost;
    try {
      for (;;) {
        if (this.holds(cost, this.source.now())) {
          this.spend(cost);
          return true;
        }
        if (this.source.offline) return this.takeAlone(cost);
        const need = cost - this.held;
        if (need > this.storeLeft) return false;
        if (this.pending === undefined) this.lease(need, Math.max(need, this.waiting - this.held, this.slice()));
        await this.pending;
      }
    } finally {
      this.waiting -= cost;
    }
  }

  /**
   * Settles a request admitted on `reserved` in `window` that used `used`:
   * what it did not use goes back (in the same window only), what it used
   * beyond is owed in the window it is settled in, and leased back at once
   * so other instances see it spent.
   */
  settle(reserved: number, used: number, window: number, now: number): void {
    this.roll(now);
    const extra = used - reserved;
    if (extra > 0 || window === this.window) this.held -= extra;
    this.repay();
  }

  /** Leases back what this instance owes (used beyond its estimates, or alone during an outage), as far as the store has it. */
  repay(): void {
    if (this.held >= 0 || this.pending !== undefined || this.source.offline) return;
    const owed = -this.held;
    const need = Math.min(owed, this.storeLeft);
    if (need > 0) this.lease(need, owed);
  }

  /** Gives back budget taken for a request that was then refused by another limit. */
  giveBack(cost: number, window: number): void {
    if (window === this.window) this.held += cost;
  }

  private takeAlone(cost: number): boolean {
    const share = Math.ceil(this.storeLeft / this.source.instances);
    if (this.held - cost < -share) return false;
    this.held -= cost;
    return true;
  }

  /** Leases at least `need` (up to `want`) for the current window; what comes back after the window has passed is dropped. */
  private lease(need: number, want: number): void {
    const window = this.window;
    const request: LeaseRequest = { budget: this.id, window, limit: this.limitValue, need, want };
    this.pending = this.source.lease(request).then(
      (r) => {
        if (this.window !== window) return;
        this.held += r.granted;
        this.storeLeft = this.limitValue - r.total;
      },
      () => {},
    ).finally(() => {
      this.pending = undefined;
    });
  }

  /** A one-unit slice is leased on demand only: prefetching it would strand units on instances that do not need them. */
  private slice(): number {
    return Math.max(1, Math.floor(this.limitValue / SLICES_PER_WINDOW));
  }

  private roll(now: number): void {
    if (now >= this.startsAt && now < this.endsAt) return;
    const w = windowOf(this.kind, now);
    this.window = w.id;
    this.startsAt = w.startsAt;
    this.endsAt = w.endsAt;
    // What was held or owed belongs to the window that ended.
    this.held = 0;
    this.storeLeft = this.limitValue;
  }
}
