/**
 * Structured logs: one JSON object per line. Callers pass plain fields; no
 * prompt, completion, key, token or upstream URL is ever put into them.
 */
export type Level = 'info' | 'warn' | 'error';

export interface Logger {
  log(level: Level, fields: Record<string, unknown>): void;
}

export class JsonLineLogger implements Logger {
  constructor(private readonly sink: LineBatch = stdoutLines) {}

  log(level: Level, fields: Record<string, unknown>): void {
    this.sink.add(Date.now(), level, fields);
  }
}

/**
 * Lines formatted and written together, at most every BATCH_MS: one write for
 * all the requests of that time instead of one per turn of the event loop.
 * Writes to a pipe are synchronous, and at one a turn they cost a busy gateway
 * more than the requests' own logging did (`npm run bench`). Nothing is lost
 * on a normal exit (flushed on 'exit'); a killed process loses at most
 * BATCH_MS of lines. The fields are read when the batch is written: pass
 * values that no longer change.
 */
export class LineBatch {
  /** time, level, fields, time, level, fields, ... */
  private readonly queue: unknown[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastMs = NaN;
  private lastIso = '';
  private readonly flushNow = () => this.flush();

  constructor(private readonly write: (text: string) => void, private readonly batchMs = BATCH_MS) {}

  add(time: number, level: Level, fields: Record<string, unknown>): void {
    this.queue.push(time, level, fields);
    if (this.queue.length >= MAX_BATCHED * 3) return this.flush();
    // Unreferenced: pending lines never keep the process alive, as the exit flush writes them.
    this.timer ??= setTimeout(this.flushNow, this.batchMs).unref();
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    let text = '';
    for (let i = 0; i < this.queue.length; i += 3) {
      text += `${this.format(this.queue[i] as number, this.queue[i + 1] as Level, this.queue[i + 2] as Record<string, unknown>)}\n`;
    }
    this.queue.length = 0;
    this.write(text);
  }

  private format(time: number, level: Level, fields: Record<string, unknown>): string {
    let rest: string;
    try {
      rest = JSON.stringify(fields);
    } catch (err) {
      rest = JSON.stringify({ msg: 'a log line could not be written', error: describeError(err) });
    }
    if (time !== this.lastMs) {
      this.lastMs = time;
      this.lastIso = new Date(time).toISOString();
    }
    return `{"time":"${this.lastIso}","level":"${level}"${rest.length > 2 ? `,${rest.slice(1)}` : '}'}`;
  }
}

/** Lines held before a batch is written at once, however soon. */
const MAX_BATCHED = 256;
/** Longest a line waits for the ones after it. */
const BATCH_MS = 20;

/** The process's stdout, batched: one per process, as stdout is. */
const stdoutLines = new LineBatch((text) => process.stdout.write(text));
process.once('exit', () => stdoutLines.flush());

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
