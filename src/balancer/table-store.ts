import { odata, TableClient, TableEntityResult } from '@azure/data-tables';
import { TableOnce, isStatus, lostRace, pauseAfterRace } from '../core/table';
import { Cooldown, SkipReason } from './cooldowns';
import { Buckets } from './stats';
import { BalancerStore, Reservation } from './store';
import { staleRows, TableTidy } from './table-tidy';

const CURSOR = 'cursor';
const HEALTH = 'health';
const STATS = 'stats';
/** The row of a stored object's holder, in a partition of its own (the object's id): lookups are point reads, and writes spread. */
const HOLDER = 'holder';
const MAX_RACES = 16;

interface CursorEntity {
  partitionKey: string;
  rowKey: string;
  next: number;
}

interface HealthEntity {
  partitionKey: string;
  rowKey: string;
  until: number;
  reason: string;
}

/**
 * The balancer's shared state in one Azure Table: a cursor entity per model
 * pool (partition "cursor"), a cooldown entity per deployment (partition
 * "health"), each instance's recent counts (partition "stats") and, per
 * stored response, the deployment that holds it (partition: the response's
 * id, row "holder"). Cursor moves use optimistic concurrency on the ETag.
 */
export class TableBalancerStore implements BalancerStore {
  private readonly table: TableClient;
  private readonly once: TableOnce;

  /** `tidyPageSize`: rows per page of the tidy's scan, for tests (the service's own pages are up to 1,000). */
  constructor(table: TableClient, private readonly options: { readonly tidyPageSize?: number } = {}) {
    this.table = table;
    this.once = new TableOnce(table);
  }

  /** Moves the pool's cursor forward by `size` and returns where the block starts. */
  async reserve(poolKey: string, size: number, signal: AbortSignal): Promise<Reservation> {
    await this.ensureTable(signal);
    const rowKey = rowKeyFor(poolKey);
    let conflicts = 0;
    for (let race = 0; race < MAX_RACES; race++) {
      const current = await this.readCursor(rowKey, signal);
      try {
        if (current === undefined) {
          await this.table.createEntity<CursorEntity>({ partitionKey: CURSOR, rowKey, next: size }, { abortSignal: signal });
          return { start: 0, conflicts };
        }
        await this.table.updateEntity<CursorEntity>({ partitionKey: CURSOR, rowKey, next: current.next + size }, 'Replace', { etag: current.etag, abortSignal: signal });
        return { start: current.next, conflicts };
      } catch (err) {
        if (!lostRace(err)) throw err;
        conflicts++;
        // Another instance moved the cursor first: read again after a short, jittered pause.
        await pauseAfterRace(race, signal);
      }
    }
    throw new Error('cursor reservation kept losing races');
  }

  async publishCooldown(deploymentId: string, cooldown: Cooldown, signal: AbortSignal): Promise<void> {
    await this.ensureTable(signal);
    await this.table.upsertEntity<HealthEntity>(
      { partitionKey: HEALTH, rowKey: deploymentId, until: cooldown.until, reason: cooldown.reason },
      'Replace',
      { abortSignal: signal },
    );
  }

  /** Cooldowns still in force, as every instance published them. */
  async readCooldowns(now: number, signal: AbortSignal): Promise<Map<string, Cooldown>> {
    await this.ensureTable(signal);
    const result = new Map<string, Cooldown>();
    const pages = this.table.listEntities<HealthEntity>({ queryOptions: { filter: odata`PartitionKey eq ${HEALTH} and until gt ${now}` }, abortSignal: signal });
    for await (const e of pages) result.set(e.rowKey, { until: Number(e.until), reason: e.reason as SkipReason });
    return result;
  }

  /** Replaces this instance's recent counts for the given deployments. */
  async writeStats(instanceId: string, stats: Map<string, Buckets>, signal: AbortSignal): Promise<void> {
    await this.ensureTable(signal);
    await Promise.all([...stats].map(([deploymentId, buckets]) =>
      this.table.upsertEntity({ partitionKey: STATS, rowKey: `${deploymentId}~${instanceId}`, buckets: JSON.stringify(buckets) }, 'Replace', { abortSignal: signal })));
  }

  /** Every instance's recent counts, per deployment, from the rows the service stamped as written since `since`. */
  async readStats(since: number, signal: AbortSignal): Promise<Map<string, Buckets[]>> {
    await this.ensureTable(signal);
    const result = new Map<string, Buckets[]>();
    const filter = odata`PartitionKey eq ${STATS} and Timestamp ge ${new Date(since)}`;
    for await (const e of this.table.listEntities<{ buckets: string }>({ queryOptions: { filter }, abortSignal: signal })) {
      const deploymentId = e.rowKey!.split('~')[0];
      try {
        const list = result.get(deploymentId) ?? [];
        list.push(JSON.parse(e.buckets) as Buckets);
        result.set(deploymentId, list);
      } catch {
        // A row another version wrote in another shape: skip it.
      }
    }
    return result;
  }

  async writeHolder(objectId: string, memberId: string, signal: AbortSignal): Promise<void> {
    await this.ensureTable(signal);
    await this.table.upsertEntity({ partitionKey: objectId, rowKey: HOLDER, member: memberId }, 'Replace', { abortSignal: signal });
  }

  async readHolder(objectId: string, signal: AbortSignal): Promise<string | undefined> {
    await this.ensureTable(signal);
    try {
      const e = await this.table.getEntity<{ member: string }>(objectId, HOLDER, { abortSignal: signal });
      return typeof e.member === 'string' ? e.member : undefined;
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  async dropStale(statsBefore: number, holdersBefore: number, most: number, signal: AbortSignal): Promise<number> {
    await this.ensureTable(signal);
    return new TableTidy(this.table, most, signal, this.options.tidyPageSize).run(staleRows(STATS, HOLDER, statsBefore, holdersBefore));
  }

  private async readCursor(rowKey: string, signal: AbortSignal): Promise<{ next: number; etag: string } | undefined> {
    try {
      const e: TableEntityResult<CursorEntity> = await this.table.getEntity<CursorEntity>(CURSOR, rowKey, { abortSignal: signal });
      return { next: Number(e.next), etag: e.etag };
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  private ensureTable(signal: AbortSignal): Promise<void> {
    return this.once.ensure(signal);
  }

  /** After storage was lost (an emulator restarted empty), the table may need creating again. */
  forget(): void {
    this.once.forget();
  }
}

/** Row keys may not hold / \ # ? or control characters; model names may. */
function rowKeyFor(poolKey: string): string {
  return Buffer.from(poolKey, 'utf8').toString('base64url');
}

