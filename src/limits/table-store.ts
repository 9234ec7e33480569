/** @module The limits' store in Azure Table Storage, beside the balancer's state in the same table. */
import { odata, TableClient } from '@azure/data-tables';
import { TableOnce, isStatus, lostRace, pauseAfterRace } from '../core/table';
import { grantFor, LeaseRequest, LeaseResult, LimitStore, UsageRow } from './store';

const BUDGET = 'limit';
const INSTANCE = 'instance';
const MAX_RACES = 16;
/** Presence rows older than this are deleted by whoever reads them. */
const STALE_INSTANCE_MS = 24 * 3600_000;

interface BudgetEntity {
  partitionKey: string;
  rowKey: string;
  window: number;
  /** Int64: a month's tokens can pass what an Int32 holds. */
  granted: bigint;
}

interface UsageEntity {
  partitionKey: string;
  rowKey: string;
  key: string;
  named: boolean;
  model: string;
  requests: bigint;
  inputTokens: bigint;
  outputTokens: bigint;
}

/**
 * One entity per key and kind of limit (partition "limit") holds the current
 * window and how much of it has been leased; leases are conditional writes on
 * the entity's ETag, so two instances never take the same budget. Each
 * instance's presence (partition "instance") and its usage counts per day
 * (partition "usage-YYYY-MM-DD", one row per key, model and instance) are its
 * own rows, written without conflicts.
 */
export class TableLimitStore implements LimitStore {
  private readonly table: TableClient;
  private readonly once: TableOnce;

  constructor(table: TableClient) {
    this.table = table;
    this.once = new TableOnce(table);
  }

  async lease(request: LeaseRequest, signal: AbortSignal): Promise<LeaseResult> {
    await this.ensureTable(signal);
    for (let race = 0; race < MAX_RACES; race++) {
      const current = await this.readBudget(request.budget, signal);
      const granted = current !== undefined && current.window === request.window ? current.granted : 0;
      const grant = grantFor(request, request.limit - granted);
      if (grant === 0) return { granted: 0, total: granted };
      const entity: BudgetEntity = { partitionKey: BUDGET, rowKey: request.budget, window: request.window, granted: BigInt(granted + grant) };
      try {
        if (current === undefined) await this.table.createEntity(entity, { abortSignal: signal });
        else await this.table.updateEntity(entity, 'Replace', { etag: current.etag, abortSignal: signal });
        return { granted: grant, total: granted + grant };
      } catch (err) {
        if (!lostRace(err)) throw err;
        // Another instance leased first: read again after a short, jittered pause.
        await pauseAfterRace(race, signal);
      }
    }
    throw new Error('lease kept losing races');
  }

  async announce(instanceId: string, now: number, liveMs: number, signal: AbortSignal): Promise<number> {
    await this.ensureTable(signal);
    await this.table.upsertEntity({ partitionKey: INSTANCE, rowKey: instanceId, seen: now }, 'Replace', { abortSignal: signal });
    let live = 0;
    const stale: string[] = [];
    for await (const e of this.table.listEntities<{ seen: number }>({ queryOptions: { filter: odata`PartitionKey eq ${INSTANCE}` }, abortSignal: signal })) {
      const seen = Number(e.seen);
      if (seen > now - liveMs) live++;
      else if (seen < now - STALE_INSTANCE_MS) stale.push(e.rowKey!);
    }
    // Instances come and go with scale-out: the rows of long-gone ones are cleared a few at a time.
    await Promise.all(stale.slice(0, 8).map((rowKey) => this.table.deleteEntity(INSTANCE, rowKey, { abortSignal: signal }).catch(() => {})));
    return Math.max(1, live);
  }

  async writeUsage(day: string, instanceId: string, rows: readonly UsageRow[], signal: AbortSignal): Promise<void> {
    await this.ensureTable(signal);
    await Promise.all(rows.map((r) => {
      const entity: UsageEntity = {
        partitionKey: usagePartition(day),
        rowKey: `${encode(r.key ?? '')}.${encode(r.model)}.${instanceId}`,
        key: r.key ?? '',
        named: r.key !== null,
        model: r.model,
        requests: BigInt(r.requests),
        inputTokens: BigInt(r.inputTokens),
        outputTokens: BigInt(r.outputTokens),
      };
      return this.table.upsertEntity(entity, 'Replace', { abortSignal: signal });
    }));
  }

  async readUsage(day: string, signal: AbortSignal): Promise<UsageRow[]> {
    await this.ensureTable(signal);
    const rows: UsageRow[] = [];
    const partition = usagePartition(day);
    for await (const e of this.table.listEntities<UsageEntity>({ queryOptions: { filter: odata`PartitionKey eq ${partition}` }, abortSignal: signal })) {
      rows.push({ key: e.named ? e.key : null, model: e.model, requests: Number(e.requests), inputTokens: Number(e.inputTokens), outputTokens: Number(e.outputTokens) });
    }
    return rows;
  }

  forget(): void {
    this.once.forget();
  }

  private async readBudget(rowKey: string, signal: AbortSignal): Promise<{ window: number; granted: number; etag: string } | undefined> {
    try {
      const e = await this.table.getEntity<BudgetEntity>(BUDGET, rowKey, { abortSignal: signal });
      return { window: Number(e.window), granted: Number(e.granted), etag: e.etag };
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  private ensureTable(signal: AbortSignal): Promise<void> {
    return this.once.ensure(signal);
  }
}

function usagePartition(day: string): string {
  return `usage-${day}`;
}

/** Row keys may not hold / \ # ? or control characters; model names may. */
function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
