/**
 * Structured logs: one JSON object per line. Callers pass plain fields; no
 * prompt, completion, key, token or upstream URL is ever put into them.
 */
export type Level = 'info' | 'warn' | 'error';

export interface Logger {
  log(level: Level, fields: Record<string, unknown>): void;
}

export class JsonLineLogger implements Logger {
  constructor(private readonly write: (line: string, level: Level) => void = batchedStdout) {}

  log(level: Level, fields: Record<string, unknown>): void {
    this.write(JSON.stringify({ time: new Date().toISOString(), level, ...fields }), level);
  }
}

/**
 * Stdout lines written together once per turn of the event loop: one write
 * call for a burst of requests instead of one each (writes to a pipe are
 * synchronous, and they showed in the hot path's profile).
 */
let pending = '';
let scheduled = false;

function batchedStdout(line: string): void {
  pending += `${line}\n`;
  if (pending.length > 65536) return flushStdout();
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushStdout);
  }
}

function flushStdout(): void {
  scheduled = false;
  if (pending.length === 0) return;
  const out = pending;
  pending = '';
  process.stdout.write(out);
}

process.once('exit', flushStdout);

/** Collects lines in memory: for tests that scan what was logged. */
export class MemoryLogger implements Logger {
  readonly lines: string[] = [];

  log(level: Level, fields: Record<string, unknown>): void {
    this.lines.push(JSON.stringify({ level, ...fields }));
  }

  entries(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l));
  }
}

/**
 * A warning that repeats while a condition lasts (storage down, Key Vault
 * unreachable) is logged once per interval, with how many were suppressed.
 */
export class RateLimitedWarning {
  private lastAt = -Infinity;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const t = this.now();
    if (t - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.lastAt = t;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.logger.log('warn', suppressed > 0 ? { ...fields, suppressed } : fields);
  }

  /** The condition ended: the next occurrence is logged at once. */
  reset(): void {
    this.lastAt = -Infinity;
    this.suppressed = 0;
  }
}

/** Names an unexpected error without its message or stack, which may carry URLs or secrets. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.name} (${code})` : err.name;
  }
  return typeof err;
}

const NETWORK_ERRORS: Record<string, string> = {
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be looked up (DNS)',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate is not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate is for another name',
};

/** A network error (or an HTTP refusal) in words, never its message, which names the host. */
export function whyUnreachable(err: unknown): string {
  const status = (err as { statusCode?: unknown } | undefined)?.statusCode;
  if (typeof status === 'number') return status === 401 || status === 403 ? `HTTP ${status}: the key or identity is not accepted` : `HTTP ${status}`;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && NETWORK_ERRORS[code]) return NETWORK_ERRORS[code];
  if ((err as Error | undefined)?.name === 'AbortError' || (err as Error | undefined)?.name === 'TimeoutError') return 'no answer in time';
  return describeError(err);
}
