/** @module This instance's usage counts per UTC day, key and model, until they are shared. */
import { UsageRow } from './store';
import { utcDay } from './windows';

interface Row {
  readonly key: string | null;
  readonly model: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  changed: boolean;
}

export interface ChangedDay {
  readonly day: string;
  readonly rows: UsageRow[];
}

/**
 * Counts what this instance served, by UTC day (YYYY-MM-DD), key name and
 * model. The counts only grow; what changed since the last share is handed
 * out as whole rows, so a share that fails is simply sent again.
 */
export class UsageBook {
  private readonly days = new Map<string, Map<string, Row>>();
  private today = '';
  private todayEnds = 0;

  add(now: number, key: string | null, model: string, requests: number, inputTokens: number, outputTokens: number): void {
    const rows = this.dayOf(now);
    const id = rowId(key, model);
    let row = rows.get(id);
    if (row === undefined) {
      row = { key, model, requests: 0, inputTokens: 0, outputTokens: 0, changed: false };
      rows.set(id, row);
    }
    row.requests += requests;
    row.inputTokens += inputTokens;
    row.outputTokens += outputTokens;
    row.changed = true;
  }

  /** The rows changed since the last call, per day; days before today with nothing left to share are forgotten. */
  takeChanged(): ChangedDay[] {
    const out: ChangedDay[] = [];
    for (const [day, rows] of this.days) {
      const changed = [...rows.values()].filter((r) => r.changed);
      for (const r of changed) r.changed = false;
      if (changed.length > 0) out.push({ day, rows: changed.map(copy) });
      else if (day !== this.today) this.days.delete(day);
    }
    return out;
  }

  /** A share failed: its rows are sent again next time. */
  unshared(days: readonly ChangedDay[]): void {
    for (const { day, rows } of days) {
      const book = this.days.get(day);
      for (const r of rows) {
        const row = book?.get(rowId(r.key, r.model));
        if (row) row.changed = true;
      }
    }
  }

  get pending(): boolean {
    for (const rows of this.days.values()) for (const r of rows.values()) if (r.changed) return true;
    return false;
  }

  /** This instance's rows of a day. */
  rows(day: string): UsageRow[] {
    return [...(this.days.get(day)?.values() ?? [])].map(copy);
  }

  private dayOf(now: number): Map<string, Row> {
    if (now >= this.todayEnds || now < this.todayEnds - 86_400_000) {
      this.today = utcDay(now);
      this.todayEnds = (Math.floor(now / 86_400_000) + 1) * 86_400_000;
    }
    let rows = this.days.get(this.today);
    if (rows === undefined) {
      rows = new Map();
      this.days.set(this.today, rows);
    }
    return rows;
  }
}

/** One row per key and model; the unnamed keys (null) apart from any name. */
function rowId(key: string | null, model: string): string {
  return key === null ? `\n${model}` : `${key}\n${model}`;
}

function copy(r: Row): UsageRow {
  return { key: r.key, model: r.model, requests: r.requests, inputTokens: r.inputTokens, outputTokens: r.outputTokens };
}
