/** @module What every Table Storage store shares: its table made on first use, and the statuses that mean a lost race. */
import { RestError, TableClient } from '@azure/data-tables';

/** A table created on first use, and again after storage was lost (an emulator restarted empty). */
export class TableOnce {
  private ready?: Promise<void>;

  constructor(readonly client: TableClient) {}

  ensure(signal: AbortSignal): Promise<void> {
    this.ready ??= this.client.createTable({ abortSignal: signal }).then(
      () => undefined,
      (err) => {
        this.ready = undefined;
        throw err;
      },
    );
    return this.ready;
  }

  forget(): void {
    this.ready = undefined;
  }
}

export function isStatus(err: unknown, status: number): boolean {
  return err instanceof RestError ? err.statusCode === status : (err as { statusCode?: number })?.statusCode === status;
}

/** A conditional write lost to another instance's (409 on create, 412 on an ETag). */
export function lostRace(err: unknown): boolean {
  return isStatus(err, 409) || isStatus(err, 412);
}

/** A short, jittered pause before reading again after a lost race; cut short by the signal. */
export function pauseAfterRace(race: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, Math.random() * 2 * (race + 1));
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
