/**
 * Why a deployment is being skipped: throttled, failing, silent, unreachable,
 * refusing the gateway's credentials, not there at all ("missing": Azure says
 * it has no such deployment), or not serving one operation ("unsupported").
 */
export type SkipReason = '429' | '5xx' | 'timeout' | 'connect' | 'rejected' | 'missing' | 'unsupported';

/** The default longest cooldown: a retry-after beyond it is not believed. */
export const MAX_COOLDOWN_MS = 5 * 60_000;

/**
 * The key of a cooldown that holds for one part of a deployment (an
 * operation) rather than all of it. Table row keys may not hold "/".
 */
export function scopedKey(deploymentId: string, scope: string): string {
  return `${deploymentId}:${scope.replaceAll('/', '.')}`;
}

/** The deployment id and scope of a key scopedKey made, or undefined for a whole deployment's key. */
export function parseScopedKey(key: string): { deploymentId: string; scope: string } | undefined {
  const colon = key.indexOf(':');
  return colon < 0 ? undefined : { deploymentId: key.slice(0, colon), scope: key.slice(colon + 1).replaceAll('.', '/') };
}

export interface Cooldown {
  readonly until: number;
  readonly reason: SkipReason;
}

const SWEEP_AT = 1024;

/**
 * What this instance knows about deployments that must be skipped. The local
 * view is authoritative for the hot path; a shared store (when configured)
 * feeds it what other instances saw.
 */
export class HealthView {
  private readonly cooling = new Map<string, Cooldown>();

  /**
   * `maxMs` bounds every cooldown, whoever set it: one Azure answer with a
   * retry-after years away (or such a row left in the shared table) must not
   * take a deployment out for longer than that.
   */
  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxMs: number = MAX_COOLDOWN_MS,
  ) {}

  /** Whether nothing is cooling: the common case, answered without building a scoped key. */
  get empty(): boolean {
    return this.cooling.size === 0;
  }

  /** The cooldown in force for a deployment (or a scopedKey), if any. */
  get(key: string): Cooldown | undefined {
    const c = this.cooling.get(key);
    if (c === undefined) return undefined;
    if (c.until <= this.now()) {
      this.cooling.delete(key);
      return undefined;
    }
    return c;
  }

  /**
   * Records a cooldown, held to the longest allowed; a shorter one never cuts
   * a longer one short. Returns what was recorded, or undefined when nothing changed.
   */
  set(key: string, cooldown: Cooldown): Cooldown | undefined {
    const now = this.now();
    const bounded = cooldown.until - now > this.maxMs ? { ...cooldown, until: now + this.maxMs } : cooldown;
    const existing = this.cooling.get(key);
    if (existing !== undefined && existing.until >= bounded.until) return undefined;
    if (this.cooling.size >= SWEEP_AT) this.sweep(now);
    this.cooling.set(key, bounded);
    return bounded;
  }

  /** Drops cooldowns that are over: keys are few, but scoped ones come from requests. */
  private sweep(now: number): void {
    for (const [key, c] of this.cooling) if (c.until <= now) this.cooling.delete(key);
  }

  entries(): IterableIterator<[string, Cooldown]> {
    return this.cooling.entries();
  }
}
