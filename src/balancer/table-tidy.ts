/** @module Deleting the balancer table's stale rows at the pace a large table needs, and going on next time where a run stopped. */
import { odata, TableClient, TableEntityResult } from '@azure/data-tables';
import { isStatus } from '../core/table';

/** Deletes in flight at once: one at a time, a run of 5,000 spent most of a minute waiting on round trips to Azure. */
const DELETES_AT_ONCE = 8;
/** Where the scan for stale holder rows stopped: the last partition (a response's id) it went through. */
const SCAN = { partitionKey: 'tidy', rowKey: 'holders-scan' };
/** How often a long scan writes down how far it got, so a run cut off by its time limit is not scanned again. */
const SAVE_EVERY_MS = 30_000;

type Row = TableEntityResult<Record<string, unknown>>;

export interface StaleRows {
  /** The filter for stats rows written before a time: one small partition, read whole each run. */
  readonly stats: string;
  /** The filter for holder rows written before a time, from a partition key on (see TableTidy): every partition, so the table is scanned. */
  holders(after: string): string;
}

/**
 * One run of the tidy. Holder rows have a partition each (a response's id),
 * so finding the stale ones scans the whole table; a run that started at the
 * top every time would, once the table outgrew what one run scans, keep
 * cleaning its first part and never reach the rest. So the scan resumes after
 * the last partition the last run went through (kept in the table, and asked
 * for in the query's filter: the service's own continuation token is only
 * documented for the same query again, and the time in this filter moves),
 * and starts over once it reaches the end.
 */
export class TableTidy {
  private dropped = 0;
  private lastSaved = Date.now();

  constructor(
    private readonly table: TableClient,
    private readonly most: number,
    private readonly signal: AbortSignal,
    private readonly pageSize: number | undefined,
  ) {}

  async run(filters: StaleRows): Promise<number> {
    const stats: Row[] = [];
    for await (const e of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: filters.stats, select: ['PartitionKey', 'RowKey'] }, abortSignal: this.signal })) stats.push(e);
    await this.deleteSome(stats);
    if (this.dropped < this.most) await this.scanHolders(filters.holders);
    return this.dropped;
  }

  private async scanHolders(holders: (after: string) => string): Promise<void> {
    let position = await this.readPosition();
    const pages = this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: holders(position), select: ['PartitionKey', 'RowKey'] }, abortSignal: this.signal })
      .byPage({ maxPageSize: this.pageSize });
    try {
      for await (const page of pages) {
        await this.deleteSome(page);
        // Stopped inside this page: the next run reads it again rather than skip its rest.
        if (this.dropped >= this.most) return;
        if (page.length > 0) position = page[page.length - 1].partitionKey!;
        if (Date.now() - this.lastSaved >= SAVE_EVERY_MS) await this.savePosition(position, this.signal);
      }
      // Past the last page: the next run starts at the top.
      position = '';
    } finally {
      // Written down even when the run's time ran out (its own signal is spent by then).
      await this.savePosition(position, AbortSignal.timeout(10_000)).catch(() => {});
    }
  }

  /** Deletes rows as read (by ETag: a row written again since is not stale), DELETES_AT_ONCE at a time, never past `most` in all. */
  private async deleteSome(rows: readonly Row[]): Promise<void> {
    let next = 0;
    let underway = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < rows.length && this.dropped + underway < this.most) {
        const e = rows[next++];
        underway++;
        try {
          if (await this.deleteAsRead(e)) this.dropped++;
        } catch (err) {
          failed = true;
          throw err;
        } finally {
          underway--;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETES_AT_ONCE, rows.length) }, worker));
  }

  /** False when the row was written again or deleted by another instance tidying too. */
  private async deleteAsRead(e: Row): Promise<boolean> {
    try {
      await this.table.deleteEntity(e.partitionKey!, e.rowKey!, { etag: e.etag, abortSignal: this.signal });
      return true;
    } catch (err) {
      if (isStatus(err, 404) || isStatus(err, 412)) return false;
      throw err;
    }
  }

  /** The last partition the scan went through; '' for the top. */
  private async readPosition(): Promise<string> {
    try {
      const e = await this.table.getEntity<{ after?: unknown }>(SCAN.partitionKey, SCAN.rowKey, { abortSignal: this.signal });
      return typeof e.after === 'string' ? e.after : '';
    } catch (err) {
      if (isStatus(err, 404)) return '';
      throw err;
    }
  }

  private async savePosition(after: string, signal: AbortSignal): Promise<void> {
    await this.table.upsertEntity({ ...SCAN, after }, 'Replace', { abortSignal: signal });
    this.lastSaved = Date.now();
  }
}

/** The filters for rows stale before the given times (ms since the epoch). */
export function staleRows(statsPartition: string, holderRow: string, statsBefore: number, holdersBefore: number): StaleRows {
  const holdersStale = odata`RowKey eq ${holderRow} and Timestamp lt ${new Date(holdersBefore)}`;
  return {
    stats: odata`PartitionKey eq ${statsPartition} and Timestamp lt ${new Date(statsBefore)}`,
    holders: (after) => (after === '' ? holdersStale : `${odata`PartitionKey gt ${after}`} and ${holdersStale}`),
  };
}
