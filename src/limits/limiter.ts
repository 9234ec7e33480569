/** @module Each named key's limits enforced across instances, its usage counted, and what clients are told of both. */
import { randomUUID } from 'node:crypto';
import { GatewayError, keyRateLimited, keyRequestTooLarge, quotaExceeded } from '../core/errors';
import { Logger } from '../core/log';
import { StorageGuard } from '../core/storage-guard';
import { Usage } from '../bodies/usage';
import { KeyLimits, ProxyKey } from '../keys/proxy-key';
import { Budget, BudgetSource } from './budget';
import { TokenEstimate } from './estimate';
import { LeaseRequest, LeaseResult, LimitStore, UsageRow } from './store';
import { UsageBook } from './usage-book';
import { goDuration, LimitKind } from './windows';

export interface LimiterOptions {
  readonly store: LimitStore;
  /** Whether the store is shared with other instances (Table Storage) or this process's own. */
  readonly shared: boolean;
  readonly logger: Logger;
  readonly now: () => number;
  /** Longest a storage call may take before this instance enforces its share alone. */
  readonly timeoutMs: number;
  /** How often usage counts are shared and instances counted, while there is traffic. */
  readonly syncMs: number;
  /** After storage failed, how long before it is tried again (default 5000 ms). */
  readonly retryMs?: number;
  /** The store's outage state, shared with the balancer when they use one table (else the limiter's own). */
  readonly guard?: StorageGuard;
}

/** A request let through: what it was admitted on, to be settled when its real token count is known. */
export class Admission {
  constructor(
    readonly key: ProxyKey,
    readonly model: string,
    readonly estimate: TokenEstimate,
    /** Tokens taken from each token budget. */
    readonly reserved: number,
    /** The token budgets it was admitted by, and the window of each then. */
    readonly budgets: readonly Budget[],
    readonly windows: readonly number[],
  ) {}
}

/** A key's budgets, refused in this order: a spent quota is named before a busy minute. */
class KeyBudgets {
  readonly all: Budget[] = [];
  readonly tokens: Budget[] = [];
  readonly requests?: Budget;
  /** What x-ratelimit-*-tokens report: tokens per minute, else the day's quota, else the month's. */
  readonly tokenHeader?: Budget;

  constructor(readonly limits: KeyLimits, name: string, source: BudgetSource, previous?: KeyBudgets) {
    const make = (kind: LimitKind, limit: number | undefined): Budget | undefined => {
      if (limit === undefined) return undefined;
      const kept = previous?.all.find((b) => b.kind === kind);
      if (kept) kept.limit = limit;
      const b = kept ?? new Budget(`${Buffer.from(name).toString('base64url')}.${kind}`, kind, limit, source);
      this.all.push(b);
      if (kind !== 'rpm') this.tokens.push(b);
      return b;
    };
    const month = make('month', limits.tokensPerMonth);
    const day = make('day', limits.tokensPerDay);
    const tpm = make('tpm', limits.tpm);
    this.requests = make('rpm', limits.rpm);
    this.tokenHeader = tpm ?? day ?? month;
  }

  same(limits: KeyLimits): boolean {
    const l = this.limits;
    return l === limits || (l.rpm === limits.rpm && l.tpm === limits.tpm && l.tokensPerDay === limits.tokensPerDay && l.tokensPerMonth === limits.tokensPerMonth);
  }
}

const NONE: readonly never[] = [];
/** An instance counts as sharing the limits while it announced itself this recently. */
const LIVE_MS = 120_000;

/**
 * Enforces named keys' limits on this instance, sharing them with every other
 * instance through the store by leasing budget in slices (see Budget): no
 * storage call on a request's path while budget is held. Counts each key's
 * usage per model and day, and shares it (with this instance's presence, from
 * which outage shares are computed) in the background while there is traffic.
 */
export class Limiter implements BudgetSource {
  readonly instanceId = randomUUID().slice(0, 8);
  private readonly keys = new Map<string, KeyBudgets>();
  private readonly book = new UsageBook();
  private readonly guard: StorageGuard;
  private counted = 1;
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  readonly now: () => number;

  constructor(private readonly options: LimiterOptions) {
    this.now = options.now;
    this.guard = options.guard ?? new StorageGuard({
      logger: options.logger,
      now: options.now,
      timeoutMs: options.timeoutMs,
      retryMs: options.retryMs ?? 5000,
      downMessage: 'limits storage unavailable; this instance enforces its share of every key limit alone until it answers',
      upMessage: 'limits storage reachable again; limits are shared again',
    });
    this.guard.onFailure(() => options.store.forget());
  }

  get offline(): boolean {
    return this.guard.offline;
  }

  get instances(): number {
    return this.counted;
  }

  lease(request: LeaseRequest): Promise<LeaseResult> {
    return this.guard.run((signal) => this.options.store.lease(request, signal));
  }

  /**
   * Lets a request through or throws OpenAI's 429. Unlimited keys, and limited
   * ones while this instance holds enough budget, are answered at once.
   */
  admit(key: ProxyKey, model: string, estimate: TokenEstimate): Admission | Promise<Admission> {
    if (!key.limited) return new Admission(key, model, estimate, 0, NONE, NONE);
    const budgets = this.budgetsOf(key);
    const now = this.now();
    const cost = Math.max(1, estimate.prompt + estimate.output);
    for (const b of budgets.all) {
      if (!b.holds(costIn(b, cost), now)) return this.admitAfterLeasing(key, model, estimate, budgets, cost);
    }
    for (const b of budgets.all) b.spend(costIn(b, cost));
    this.scheduleSync();
    return new Admission(key, model, estimate, cost, budgets.tokens, budgets.tokens.map((b) => b.windowAt(now)));
  }

  /**
   * Settles a finished request with what it used: Azure's usage when it came,
   * else, for a stream cut short, the prompt estimate plus one token per
   * streamed event that passed; else nothing. Counts it for the usage report.
   */
  finish(admission: Admission, usage: Usage | undefined, streamedEvents: number | undefined): void {
    const now = this.now();
    let used = { input: 0, output: 0 };
    if (usage !== undefined) used = tokensOf(usage);
    else if (streamedEvents !== undefined) used = { input: admission.estimate.prompt, output: streamedEvents };
    const { input, output } = used;
    admission.budgets.forEach((b, i) => b.settle(admission.reserved, input + output, admission.windows[i], now));
    this.book.add(now, admission.key.name ?? null, admission.model, 1, input, output);
    this.scheduleSync();
  }

  /** Tokens used outside a request (a realtime session's responses): owed to the key's budgets and counted. */
  charge(key: ProxyKey, model: string, usage: Usage): void {
    const now = this.now();
    const { input, output } = tokensOf(usage);
    if (key.limited) for (const b of this.budgetsOf(key).tokens) b.settle(0, input + output, b.windowAt(now), now);
    this.book.add(now, key.name ?? null, model, 0, input, output);
    this.scheduleSync();
  }

  /** OpenAI's x-ratelimit-* headers for a limited key, as this instance knows its budgets now. */
  writeHeaders(key: ProxyKey, headers: Record<string, string>): void {
    const budgets = this.budgetsOf(key);
    const now = this.now();
    const requests = budgets.requests;
    if (requests !== undefined) {
      headers['x-ratelimit-limit-requests'] = String(requests.limit);
      headers['x-ratelimit-remaining-requests'] = String(requests.remaining(now));
      headers['x-ratelimit-reset-requests'] = goDuration(requests.resetMs(now));
    }
    const tokens = budgets.tokenHeader;
    if (tokens !== undefined) {
      headers['x-ratelimit-limit-tokens'] = String(tokens.limit);
      headers['x-ratelimit-remaining-tokens'] = String(tokens.remaining(now));
      headers['x-ratelimit-reset-tokens'] = goDuration(tokens.resetMs(now));
    }
  }

  /** Every instance's usage of a UTC day (YYYY-MM-DD), summed per key and model; this instance's alone when storage cannot be read. */
  async report(day: string): Promise<{ source: 'shared' | 'this instance'; rows: UsageRow[] }> {
    await this.sync();
    let rows: UsageRow[];
    let source: 'shared' | 'this instance' = this.options.shared ? 'shared' : 'this instance';
    try {
      if (this.guard.offline) throw new Error('offline');
      rows = await this.guard.run((signal) => this.options.store.readUsage(day, signal));
    } catch {
      rows = this.book.rows(day);
      source = 'this instance';
    }
    return { source, rows: sum(rows) };
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async admitAfterLeasing(key: ProxyKey, model: string, estimate: TokenEstimate, budgets: KeyBudgets, cost: number): Promise<Admission> {
    const taken: { budget: Budget; cost: number; window: number }[] = [];
    for (const b of budgets.all) {
      const c = costIn(b, cost);
      const window = b.windowAt(this.now());
      if (!(await b.take(c))) {
        for (const t of taken) t.budget.giveBack(t.cost, t.window);
        throw this.refusal(b, c);
      }
      taken.push({ budget: b, cost: c, window });
    }
    this.scheduleSync();
    return new Admission(key, model, estimate, cost, budgets.tokens, budgets.tokens.map((b) => taken.find((t) => t.budget === b)!.window));
  }

  private refusal(b: Budget, cost: number): GatewayError {
    const ms = b.resetMs(this.now());
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    if (b.kind === 'day' || b.kind === 'month') return quotaExceeded(b.kind, b.limit, b.remaining(this.now()), cost, goDuration(ms), seconds);
    if (b.kind === 'rpm') return keyRateLimited('requests', b.limit, seconds);
    return cost > b.limit ? keyRequestTooLarge(b.limit, cost) : keyRateLimited('tokens', b.limit, seconds);
  }

  private budgetsOf(key: ProxyKey): KeyBudgets {
    const name = key.name ?? '';
    let budgets = this.keys.get(name);
    if (budgets === undefined || !budgets.same(key.limits)) {
      budgets = new KeyBudgets(key.limits, name, this, budgets);
      this.keys.set(name, budgets);
    }
    return budgets;
  }

  /** Shares usage and presence within a sync interval of the last request; nothing runs while there is no traffic. */
  private scheduleSync(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, this.options.syncMs);
    this.timer.unref();
  }

  private sync(): Promise<void> {
    this.syncing ??= this.share().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async share(): Promise<void> {
    const changed = this.book.takeChanged();
    try {
      if (this.guard.offline) throw new Error('offline');
      for (const { day, rows } of changed) {
        await this.guard.run((signal) => this.options.store.writeUsage(day, this.instanceId, rows, signal));
      }
      // Presence only matters for limits (an outage share); an instance without limited keys stays quiet.
      if (this.keys.size === 0) return;
      const now = this.now();
      this.counted = await this.guard.run((signal) => this.options.store.announce(this.instanceId, now, LIVE_MS, signal));
      // Storage may be back after an outage: what was spent alone meanwhile is leased back now.
      for (const budgets of this.keys.values()) for (const b of budgets.all) b.repay();
    } catch {
      this.book.unshared(changed);
      this.scheduleSync();
    }
  }
}

/** Azure's usage as input and output tokens; output is what the total holds beyond the input when Azure gives no completion count. */
function tokensOf(usage: Usage): { input: number; output: number } {
  const input = usage.prompt_tokens ?? 0;
  return { input, output: usage.completion_tokens ?? Math.max(0, (usage.total_tokens ?? input) - input) };
}

/** What a request costs one budget: one request, or its tokens. */
function costIn(b: Budget, tokens: number): number {
  return b.kind === 'rpm' ? 1 : tokens;
}

function sum(rows: readonly UsageRow[]): UsageRow[] {
  const totals = new Map<string, { key: string | null; model: string; requests: number; inputTokens: number; outputTokens: number }>();
  for (const r of rows) {
    const id = `${r.key ?? ''}\n${r.key === null}\n${r.model}`;
    const t = totals.get(id) ?? { key: r.key, model: r.model, requests: 0, inputTokens: 0, outputTokens: 0 };
    t.requests += r.requests;
    t.inputTokens += r.inputTokens;
    t.outputTokens += r.outputTokens;
    totals.set(id, t);
  }
  return [...totals.values()].sort((a, b) => (a.key ?? '').localeCompare(b.key ?? '') || a.model.localeCompare(b.model));
}
