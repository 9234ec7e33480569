/** @module Calls to a store that every instance shares, made so that its outage never stops a request. */
import { Logger, RateLimitedWarning, describeError } from './log';

export interface StorageGuardOptions {
  readonly logger: Logger;
  readonly now: () => number;
  /** Longest a call may take before it counts as failed. */
  readonly timeoutMs: number;
  /** After a failure, how long before the store is tried again. */
  readonly retryMs: number;
  /** The warning logged (once per ten minutes) when the store fails, and the note when it answers again. */
  readonly downMessage: string;
  readonly upMessage: string;
}

/** A failure this soon after the store answered again is the same outage flapping: no second warning. */
export const FLAP_MS = 30_000;

/**
 * Runs calls to one store with a timeout, for every part of the instance that
 * uses it (one table holds the balancer's state and the keys' limits). A call
 * that fails or is too slow puts the store out of use for a retry interval,
 * during which `offline` is true and every part does without it; the outage
 * is logged once, and its end once. A store that fails again within FLAP_MS
 * of answering (an emulator restarting, a slow first call) is still the same
 * outage: its warning is not repeated.
 */
export class StorageGuard {
  private offlineUntil = 0;
  private wasOffline = false;
  private recoveredAt: number | undefined;
  private readonly warning: RateLimitedWarning;
  private readonly failureListeners: (() => void)[] = [];

  constructor(private readonly options: StorageGuardOptions) {
    this.warning = new RateLimitedWarning(options.logger, 10 * 60_000, options.now);
  }

  get offline(): boolean {
    return this.options.now() < this.offlineUntil;
  }

  /** Told of each failure, to forget what was assumed about the store (a table that may need creating again). */
  onFailure(listener: () => void): void {
    this.failureListeners.push(listener);
  }

  async run<T>(op: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      const result = await op(AbortSignal.timeout(this.options.timeoutMs));
      if (this.wasOffline) {
        this.wasOffline = false;
        this.recoveredAt = this.options.now();
        this.options.logger.log('info', { msg: this.options.upMessage });
      }
      return result;
    } catch (err) {
      const now = this.options.now();
      if (this.recoveredAt !== undefined && now - this.recoveredAt >= FLAP_MS) this.warning.reset();
      this.recoveredAt = undefined;
      this.offlineUntil = now + this.options.retryMs;
      this.wasOffline = true;
      for (const l of this.failureListeners) l();
      this.warning.warn({ msg: this.options.downMessage, error: describeError(err) });
      throw err;
    }
  }
}
