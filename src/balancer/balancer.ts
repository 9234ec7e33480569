/** @module Round-robin over a pool with failover, by priority group: which member serves, and what happens when it cannot. */
import { GatewayError, deadlinePassed, rateLimited, unavailable, upstreamFailed, upstreamMisconfigured, upstreamTimeout } from '../core/errors';
import { Cooldown, HealthView, SkipReason, scopedKey } from './cooldowns';
import { PriorityGroup, priorityGroups } from './groups';
import { affinityScore, hashKey } from './affinity';
import { DeploymentStats } from './stats';

/** What the balancer needs of a pool's member: a stable id, a name for logs, its share and its group. */
export interface PoolMember {
  /** Stable across instances and restarts; keys the shared cursor, cooldowns and affinity. */
  readonly id: string;
  /** What logs and operators see: never a resource name or URL. */
  readonly label: string;
  readonly weight: number;
  /** Its priority group: 1 is served first; a higher number only while every better group is out. */
  readonly priority: number;
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
  /** Called on every request: brings in the cooldowns others published, in the background, at most once per interval. */
  refresh?(): void;
}

/** One line of a request's story: which deployment, and what happened there. */
export interface TryRecord {
  readonly deployment: string;
  /**
   * ok/answered: it gave the response; cooling: skipped without a call;
   * abandoned: the request ended while this try was under way (its client
   * left, say), which says nothing of the deployment; otherwise why it failed.
   */
  readonly outcome: 'ok' | 'answered' | 'cooling' | 'abandoned' | SkipReason;
  readonly status?: number;
  readonly reason?: SkipReason;
  /** The deployment's priority group. */
  readonly priority: number;
  /** Set when the pool's best group could not serve the request, so it overflowed to this one. */
  readonly spilled?: true;
}

/** What a request tells the balancer beyond its pool. */
export interface DispatchHint {
  /**
   * Requests with the same key go to the same available member of the group
   * (weighted rendezvous hashing), instead of taking the rotation's turn.
   */
  readonly affinityKey?: string;
  /**
   * The part of a deployment this request needs (its operation): a cooldown
   * an attempt scoped to it holds for that part only, and skips it here.
   */
  readonly scope?: string;
  /**
   * When, on the balancer's clock, the request must have had its answer: no
   * try starts after it, and the request is answered as timed out instead.
   */
  readonly deadline?: number;
}

export type AttemptResult<T> =
  /** This deployment's answer is the answer (success, or an error that retrying cannot fix). */
  | { readonly kind: 'done'; readonly value: T; readonly ok: boolean }
  /** This deployment cannot serve now; try the next one. */
  | {
      readonly kind: 'retry';
      readonly reason: SkipReason;
      readonly retryAfterMs?: number;
      readonly status?: number;
      /** Only the request's scope of the deployment failed (one operation), not the whole deployment. */
      readonly scoped?: boolean;
    };

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
 * Whether a try says the gateway's own configuration is wrong: Azure refused
 * its credential (401, 403) or has no such deployment. Not a token that could
 * not be fetched (no status), a redirect, or a deployment only cooling after a
 * refusal, which may pass: a retry may help there.
 */
function isConfigurationRefusal(t: TryRecord): boolean {
  if (t.outcome === 'missing') return true;
  if (t.outcome === 'cooling') return t.reason === 'missing';
  return t.outcome === 'rejected' && (t.status === 401 || t.status === 403);
}

/**
 * Round-robin over a model's deployments with failover: a deployment that is
 * throttled or failing is skipped for its cooldown, and each request tries
 * every deployment at most once before it gives up. Deployments are served by
 * priority group: a group is used only while every better group is out, and
 * each group keeps its own rotation (or, given an affinity key, each key its
 * own member of the group).
 */
export class Balancer {
  private readonly groups = new WeakMap<readonly PoolMember[], readonly PriorityGroup<PoolMember>[]>();
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
    hint?: DispatchHint,
  ): Promise<T> {
    this.options.publisher?.refresh?.();
    const groups = this.groupsOf(pool);
    const keyHash = hint?.affinityKey === undefined ? undefined : hashKey(hint.affinityKey);
    const scope = hint?.scope;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g];
      const spilled = g > 0 ? true : undefined;
      if (!this.anyAvailable(group, scope)) {
        // A wholly cooling group spends no turn of its rotation.
        for (const d of group.members) tries.push({ deployment: d.label, outcome: 'cooling', reason: this.cooldownOf(d, scope)?.reason, priority: group.priority, spilled });
        continue;
      }
      let order: readonly D[];
      if (keyHash === undefined) {
        const next = this.options.cursor.next(poolKey + group.cursorSuffix, group.schedule.length);
        order = rotationOrder(group, typeof next === 'number' ? next : await next);
      } else {
        order = affinityOrder(group, keyHash);
      }
      for (const deployment of order) {
        const cooling = this.cooldownOf(deployment, scope);
        if (cooling !== undefined) {
          tries.push({ deployment: deployment.label, outcome: 'cooling', reason: cooling.reason, priority: group.priority, spilled });
          continue;
        }
        if (hint?.deadline !== undefined && this.now() >= hint.deadline) {
          throw deadlinePassed();
        }
        let result: AttemptResult<T>;
        try {
          result = await attempt(deployment);
        } catch (err) {
          throw abandoned(err, deployment, tries, group.priority, spilled);
        }
        if (result.kind === 'done') {
          tries.push({ deployment: deployment.label, outcome: result.ok ? 'ok' : 'answered', priority: group.priority, spilled });
          this.options.stats?.record(deployment.id, 'ok');
          return result.value;
        }
        tries.push({ deployment: deployment.label, outcome: result.reason, status: result.status, priority: group.priority, spilled });
        this.options.stats?.record(deployment.id, result.reason);
        this.coolDown(deployment, result, scope);
      }
    }
    throw this.exhausted(pool, tries, scope);
  }

  /** The cooldown that keeps a request of this scope off a deployment: the deployment's own, or its scope's. */
  private cooldownOf(d: PoolMember, scope: string | undefined): Cooldown | undefined {
    const health = this.options.health;
    if (health.empty) return undefined;
    return health.get(d.id) ?? (scope === undefined ? undefined : health.get(scopedKey(d.id, scope)));
  }

  private anyAvailable(group: PriorityGroup<PoolMember>, scope: string | undefined): boolean {
    for (const d of group.members) if (this.cooldownOf(d, scope) === undefined) return true;
    return false;
  }

  /**
   * Sends to one named member and no other: for a request tied to state only
   * that member holds (a stored response). There is no failover; when the
   * member is cooling down (whole, or for `scope`) or cannot serve, the
   * caller's `unavailable` words the error, given the seconds until the
   * member is expected back.
   */
  async dispatchTo<T, D extends PoolMember>(
    member: D,
    attempt: (member: D) => Promise<AttemptResult<T>>,
    tries: TryRecord[],
    unavailable: (retryAfterSeconds: number, reason: SkipReason) => GatewayError,
    scope?: string,
  ): Promise<T> {
    this.options.publisher?.refresh?.();
    const cooling = this.cooldownOf(member, scope);
    if (cooling !== undefined) {
      tries.push({ deployment: member.label, outcome: 'cooling', reason: cooling.reason, priority: member.priority });
      throw unavailable(this.soonestRecovery([member], scope), cooling.reason);
    }
    let result: AttemptResult<T>;
    try {
      result = await attempt(member);
    } catch (err) {
      throw abandoned(err, member, tries, member.priority, undefined);
    }
    this.options.stats?.record(member.id, result.kind === 'done' ? 'ok' : result.reason);
    if (result.kind === 'done') {
      tries.push({ deployment: member.label, outcome: result.ok ? 'ok' : 'answered', priority: member.priority });
      return result.value;
    }
    tries.push({ deployment: member.label, outcome: result.reason, status: result.status, priority: member.priority });
    this.coolDown(member, result, scope);
    throw unavailable(this.soonestRecovery([member], scope), result.reason);
  }

  /**
   * A member whose answer broke off or stalled after its client had the
   * first of it: the request cannot move, but the next ones should not come
   * here for a while, as after a failed try.
   */
  brokeOff(member: PoolMember, reason: 'timeout' | 'connect'): void {
    // Counted a success when its answer began: one request, so one count, of what it turned out to be.
    this.options.stats?.reclassify(member.id, 'ok', reason);
    this.coolDown(member, { reason }, undefined);
  }

  /** Cools a deployment after a failed try, or only the scope (the operation) it failed for, when the failure says so. */
  private coolDown(member: PoolMember, result: { readonly reason: SkipReason; readonly retryAfterMs?: number; readonly scoped?: boolean }, scope: string | undefined): void {
    const key = result.scoped && scope !== undefined ? scopedKey(member.id, scope) : member.id;
    const ms = result.retryAfterMs ?? this.options.failureCooldownMs;
    const recorded = this.options.health.set(key, { until: this.now() + ms, reason: result.reason });
    if (recorded) this.options.publisher?.publish(key, recorded);
  }

  /** The error for a request no deployment could serve, shaped by why they could not. */
  private exhausted(pool: readonly PoolMember[], tries: readonly TryRecord[], scope?: string): GatewayError {
    const reasons = tries.map((t) => (t.outcome === 'cooling' ? t.reason : t.outcome));
    const soonest = this.soonestRecovery(pool, scope);
    if (reasons.includes('429')) return rateLimited(soonest, reasons.every((r) => r === '429'));
    // Azure refused the gateway's credential (401, 403) or has no such deployment, on every try: no retry fixes that.
    if (tries.length > 0 && tries.every(isConfigurationRefusal)) return upstreamMisconfigured();
    const attempted = tries.filter((t) => t.outcome !== 'cooling');
    if (attempted.length === 0) {
      return unavailable(`Every deployment of this model is recovering from errors. Retry after ${soonest} seconds.`, soonest);
    }
    if (attempted.every((t) => t.outcome === 'timeout')) {
      return upstreamTimeout('No deployment of this model answered in time. Retry the request.');
    }
    return upstreamFailed('No deployment of this model could serve the request. Retry it; if it keeps failing, the gateway operator should check /health/deployments.');
  }

  private soonestRecovery(pool: readonly PoolMember[], scope?: string): number {
    const now = this.now();
    let soonest = Infinity;
    for (const d of pool) {
      const c = this.cooldownOf(d, scope);
      if (c !== undefined) soonest = Math.min(soonest, c.until);
    }
    const ms = soonest === Infinity ? 1000 : soonest - now;
    return Math.max(1, Math.ceil(ms / 1000));
  }

  private groupsOf<D extends PoolMember>(pool: readonly D[]): readonly PriorityGroup<D>[] {
    let groups = this.groups.get(pool);
    if (groups === undefined) {
      groups = priorityGroups(pool);
      this.groups.set(pool, groups);
    }
    return groups as readonly PriorityGroup<D>[];
  }
}

/** A try that threw (the client left while it waited, say) is still told in the request's story; returns what it threw. */
function abandoned(err: unknown, member: PoolMember, tries: TryRecord[], priority: number, spilled: true | undefined): unknown {
  tries.push({ deployment: member.label, outcome: 'abandoned', priority, spilled });
  return err;
}

/** Each member of the group once, in the rotation's order from this request's turn. */
function rotationOrder<D extends PoolMember>(group: PriorityGroup<D>, start: number): D[] {
  const schedule = group.schedule;
  const order: D[] = [];
  for (let i = 0; i < schedule.length && order.length < group.members.length; i++) {
    const member = schedule[(start + i) % schedule.length];
    if (!order.includes(member)) order.push(member);
  }
  return order;
}

/**
 * Every member of the group, best first for this key: the first available
 * one takes it, so a key moves only while its member is out.
 */
function affinityOrder<D extends PoolMember>(group: PriorityGroup<D>, keyHash: number): D[] {
  const scored = group.members.map((member, i) => ({ member, score: affinityScore(keyHash, group.memberHashes[i], member.weight) }));
  scored.sort((a, b) => b.score - a.score);
  return scored.map((s) => s.member);
}
