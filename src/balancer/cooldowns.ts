/** Why a deployment is being skipped. */
export type SkipReason = '429' | '5xx' | 'timeout' | 'connect' | 'rejected';

export interface Cooldown {
  readonly until: number;
  readonly reason: SkipReason;
}

/**
 * What this instance knows about deployments that must be skipped. The local
 * view is authoritative for the hot path; a shared store (when configured)
 * feeds it what other instances saw.
 */
export class HealthView {
  private readonly cooling = new Map<string, Cooldown>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The cooldown in force for a deployment, if any. */
  get(deploymentId: string): Cooldown | undefined {
    const c = this.cooling.get(deploymentId);
    if (c === undefined) return undefined;
    if (c.until <= this.now()) {
      this.cooling.delete(deploymentId);
      return undefined;
    }
    return c;
  }

  /** Records a cooldown; a shorter one never cuts a longer one short. */
  set(deploymentId: string, cooldown: Cooldown): boolean {
    const existing = this.cooling.get(deploymentId);
    if (existing !== undefined && existing.until >= cooldown.until) return false;
    this.cooling.set(deploymentId, cooldown);
    return true;
  }

  entries(): IterableIterator<[string, Cooldown]> {
    return this.cooling.entries();
  }
}
