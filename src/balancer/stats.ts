import { SkipReason } from './cooldowns';

export type Outcome = 'ok' | SkipReason;

/** Counts per outcome: successes, and failures by why. */
export type Counts = Partial<Record<Outcome, number>>;

/** Per-minute buckets, keyed by minutes since the epoch. */
export type Buckets = Record<string, Counts>;

export const WINDOW_MINUTES = 5;

/**
 * Recent successes and failures per deployment, in one-minute buckets for the
 * last few minutes: what /health/deployments reports and what each instance
 * shares through the balancer table.
 */
export class DeploymentStats {
  private readonly byDeployment = new Map<string, Buckets>();
  private changed = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** The current minute's bucket key, made once a minute rather than per request. */
  private minuteNumber = NaN;
  private minuteKey = '';

  record(deploymentId: string, outcome: Outcome): void {
    const m = Math.floor(this.now() / 60_000);
    if (m !== this.minuteNumber) {
      this.minuteNumber = m;
      this.minuteKey = String(m);
    }
    const minute = this.minuteKey;
    let buckets = this.byDeployment.get(deploymentId);
    if (buckets === undefined) this.byDeployment.set(deploymentId, (buckets = {}));
    const counts = (buckets[minute] ??= {});
    counts[outcome] = (counts[outcome] ?? 0) + 1;
    this.changed = true;
  }

  /**
   * One request counted `from` turned out `to` (an answer that broke off
   * after it was counted a success): taken from the latest minute that
   * counted it, and counted now as `to`, so the request is counted once.
   */
  reclassify(deploymentId: string, from: Outcome, to: Outcome): void {
    const buckets = this.byDeployment.get(deploymentId);
    if (buckets !== undefined) {
      const latest = Object.keys(buckets).filter((m) => (buckets[m][from] ?? 0) > 0).sort((a, b) => Number(b) - Number(a))[0];
      if (latest !== undefined) buckets[latest][from]! -= 1;
    }
    this.record(deploymentId, to);
  }

  /** The recent buckets of every deployment; older ones are dropped. */
  snapshot(): Map<string, Buckets> {
    const oldest = Math.floor(this.now() / 60_000) - WINDOW_MINUTES;
    for (const buckets of this.byDeployment.values()) {
      for (const minute of Object.keys(buckets)) if (Number(minute) <= oldest) delete buckets[minute];
    }
    return this.byDeployment;
  }

  /** True once per change: whether there is anything new to share. */
  takeChanged(): boolean {
    const c = this.changed;
    this.changed = false;
    return c;
  }
}

/** Sums buckets within the window, across instances. */
export function sumRecent(bucketSets: Iterable<Buckets>, now: number): Counts {
  const oldest = Math.floor(now / 60_000) - WINDOW_MINUTES;
  const total: Counts = {};
  for (const buckets of bucketSets) {
    for (const [minute, counts] of Object.entries(buckets)) {
      if (Number(minute) <= oldest) continue;
      for (const [k, v] of Object.entries(counts) as [Outcome, number][]) total[k] = (total[k] ?? 0) + v;
    }
  }
  return total;
}
