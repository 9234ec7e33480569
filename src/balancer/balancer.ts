/** @module Round-robin over a pool with failover: which member serves, and what happens when it cannot. */
import { GatewayError, rateLimited, unavailable, upstreamFailed, upstreamTimeout } from '../core/errors';
import { Cooldown, HealthView, SkipReason } from './cooldowns';
import { weightedSchedule } from './schedule';
import { DeploymentStats } from './stats';

/** What the balancer needs of a pool's member: a stable id, a name for logs, and its share. */
export interface PoolMember {
  /** Stable across instances and restarts; keys the shared cursor and cooldowns. */
  readonly id: string;
  /** What logs and operators see: never a resource name or URL. */
  readonly label: string;
  readonly weight: number;
}

/** Hands out positions in a pool's rotation. */
export interface CursorSource {
  next(poolKey: string, cycle: number): number | Promise<number>;
}

/** A cursor private to this process: what the local host uses without storage. */
export class LocalCursor implements CursorSource {
  private readonly positions = new Map<string, number>();

  next(poolKey: string): number {
    const p = this.positions.get(poolKey) ?? 0;
    this.positions.set(poolKey, p + 1);
    return p;
  }
}

/** Receives cooldowns this instance observed, to share them with the others. */
export interface HealthPublisher {
  publish(deploymentId: string, cooldown: Cooldown): void;
}

/** One line of a request's story: which deployment, and what happened there. */
export interface TryRecord {
  readonly deployment: string;
  /** ok/answered: it gave the response; cooling: skipped without a call; otherwise why it failed. */
  readonly outcome: 'ok' | 'answered' | 'cooling' | SkipReason;
  readonly status?: number;
  readonly reason?: SkipReason;
}

export type AttemptResult<T> =
  /** This deployment's answer is the answer (success, or an error that retrying cannot fix). */
  | { readonly kind: 'done'; readonly value: T; readonly ok: boolean }
  /** This deployment cannot serve now; try the next one. */
  | { readonly kind: 'retry'; readonly reason: SkipReason; readonly retryAfterMs?: number; readonly status?: number };

export interface BalancerOptions {
  readonly cursor: CursorSource;
  readonly stats?: DeploymentStats;
  readonly health: HealthView;
  readonly publisher?: HealthPublisher;
  readonly now?: () => number;
  /** How long a deployment is skipped after a 5xx, a timeout or a connection error. */
  readonly failureCooldownMs: number;
}

/**
 * Round-robin over a model's deployments with failover: a deployment that is
 * throttled or failing is skipped for its cooldown, and each request tries
 * every deployment at most once before it gives up.
 */
export class Balancer {
  private readonly schedules = new WeakMap<readonly PoolMember[], readonly PoolMember[]>();
  private readonly now: () => number;

  constructor(private readonly options: BalancerOptions) {
    this.now = options.now ?? Date.now;
  }

  get health(): HealthView {
    return this.options.health;
  }

  async dispatch<T, D extends PoolMember>(
    poolKey: string,
    pool: readonly D[],
    attempt: (member: D) => Promise<AttemptResult<T>>,
    tries: TryRecord[],
  ): Promise<T> {
    const schedule = this.scheduleOf(pool);
    const next = this.options.cursor.next(poolKey, schedule.length);
    const start = typeof next === 'number' ? next : await next;
    const tried = new Set<D>();

    for (let i = 0; i < schedule.length && tried.size < pool.length; i++) {
      const deployment = schedule[(start + i) % schedule.length];
      if (tried.has(deployment)) continue;
      tried.add(deployment);

      const cooling = this.options.health.get(deployment.id);
      if (cooling !== undefined) {
        tries.push({ deployment: deployment.label, outcome: 'cooling', reason: cooling.reason });
        continue;
      }
      const result = await attempt(deployment);
      if (result.kind === 'done') {
        tries.push({ deployment: deployment.label, outcome: result.ok ? 'ok' : 'answered' });
        this.options.stats?.record(deployment.id, 'ok');
        return result.value;
      }
      tries.push({ deployment: deployment.label, outcome: result.reason, status: result.status });
      this.options.stats?.record(deployment.id, result.reason);
      this.coolDown(deployment, result.reason, result.retryAfterMs);
    }
    throw this.exhausted(pool, tries);
  }

  private coolDown(deployment: PoolMember, reason: SkipReason, retryAfterMs: number | undefined): void {
    const ms = retryAfterMs ?? this.options.failureCooldownMs;
    const cooldown: Cooldown = { until: this.now() + ms, reason };
    if (this.options.health.set(deployment.id, cooldown)) this.options.publisher?.publish(deployment.id, cooldown);
  }

  /** The error for a request no deployment could serve, shaped by why they could not. */
  private exhausted(pool: readonly PoolMember[], tries: readonly TryRecord[]): GatewayError {
    const reasons = tries.map((t) => (t.outcome === 'cooling' ? t.reason : t.outcome));
    const soonest = this.soonestRecovery(pool);
    if (reasons.includes('429')) return rateLimited(soonest);
    const attempted = tries.filter((t) => t.outcome !== 'cooling');
    if (attempted.length === 0) {
      return unavailable(`Every deployment of this model is recovering from errors. Retry after ${soonest} seconds.`, soonest);
    }
    if (attempted.every((t) => t.outcome === 'timeout')) {
      return upstreamTimeout('No deployment of this model answered in time. Retry the request.');
    }
    return upstreamFailed('No deployment of this model could serve the request. Retry it; if it keeps failing, the gateway operator should check /health/deployments.');
  }

  private soonestRecovery(pool: readonly PoolMember[]): number {
    const now = this.now();
    let soonest = Infinity;
    for (const d of pool) {
      const c = this.options.health.get(d.id);
      if (c !== undefined) soonest = Math.min(soonest, c.until);
    }
    const ms = soonest === Infinity ? 1000 : soonest - now;
    return Math.max(1, Math.ceil(ms / 1000));
  }

  private scheduleOf<D extends PoolMember>(pool: readonly D[]): readonly D[] {
    let s = this.schedules.get(pool);
    if (s === undefined) {
      s = weightedSchedule(pool);
      this.schedules.set(pool, s);
    }
    return s as readonly D[];
  }
}
