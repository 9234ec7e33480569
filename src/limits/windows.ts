/** @module The windows limits count in: calendar minutes, UTC days and UTC months. */

/** rpm and tpm count per minute; the token quotas per UTC day and per UTC month. */
export type LimitKind = 'rpm' | 'tpm' | 'day' | 'month';

export interface Window {
  /** Distinct per kind: minutes, days or months since 1970. */
  readonly id: number;
  readonly startsAt: number;
  readonly endsAt: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/** The window of a kind that `now` falls in. Fixed windows: every instance agrees on them without talking. */
export function windowOf(kind: LimitKind, now: number): Window {
  switch (kind) {
    case 'rpm':
    case 'tpm':
      return fixed(now, MINUTE);
    case 'day':
      return fixed(now, DAY);
    case 'month': {
      const d = new Date(now);
      const y = d.getUTCFullYear();
      const m = d.getUTCMonth();
      return { id: y * 12 + m, startsAt: Date.UTC(y, m, 1), endsAt: Date.UTC(y, m + 1, 1) };
    }
  }
}

function fixed(now: number, size: number): Window {
  const id = Math.floor(now / size);
  return { id, startsAt: id * size, endsAt: (id + 1) * size };
}

/** The UTC day of a time as YYYY-MM-DD. */
export function utcDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

/**
 * A duration as OpenAI writes it in x-ratelimit-reset-*: "850ms", "12s",
 * "6m0s", "13h2m5s" (Go's time.Duration format, whole seconds past a minute).
 */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  if (ms < MINUTE) return `${Math.round(ms / 100) / 10}s`;
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${m}m${s}s` : `${m}m${s}s`;
}
