/** @module The limits' store in memory: one process's instances share it (unit tests, and the local host without storage). */
import { grantFor, LeaseRequest, LeaseResult, LimitStore, UsageRow } from './store';

export class MemoryLimitStore implements LimitStore {
  private readonly budgets = new Map<string, { window: number; granted: number }>();
  private readonly seen = new Map<string, number>();
  private readonly usage = new Map<string, Map<string, UsageRow>>();
  /** When true every call fails, as an unreachable table would. */
  down = false;
  /** Calls made, by kind (for tests that check nothing reached storage on the common path). */
  readonly calls = { lease: 0, announce: 0, writeUsage: 0, readUsage: 0 };

  async lease(request: LeaseRequest): Promise<LeaseResult> {
    this.calls.lease++;
    this.check();
    const stored = this.budgets.get(request.budget);
    const granted = stored && stored.window === request.window ? stored.granted : 0;
    const grant = grantFor(request, request.limit - granted);
    this.budgets.set(request.budget, { window: request.window, granted: granted + grant });
    return { granted: grant, total: granted + grant };
  }

  async announce(instanceId: string, now: number, liveMs: number): Promise<number> {
    this.calls.announce++;
    this.check();
    this.seen.set(instanceId, now);
    return [...this.seen.values()].filter((t) => t > now - liveMs).length;
  }

  async writeUsage(day: string, instanceId: string, rows: readonly UsageRow[]): Promise<void> {
    this.calls.writeUsage++;
    this.check();
    const dayRows = this.usage.get(day) ?? new Map<string, UsageRow>();
    for (const r of rows) dayRows.set(`${instanceId}\n${r.key}\n${r.model}`, { ...r });
    this.usage.set(day, dayRows);
  }

  async readUsage(day: string): Promise<UsageRow[]> {
    this.calls.readUsage++;
    this.check();
    return [...(this.usage.get(day)?.values() ?? [])];
  }

  forget(): void {}

  private check(): void {
    if (this.down) throw new Error('store unreachable');
  }
}
