import { Transform, TransformCallback } from 'node:stream';
import { Usage, extractUsage } from './usage';

const LF2 = Buffer.from('\n\n');
const CRLF2 = Buffer.from('\r\n\r\n');
const EMPTY_CHOICES = Buffer.from('"choices":[]');
const EMPTY_CHOICES_SPACED = Buffer.from('"choices": []');
/** What every chunk carries once usage is asked for (OpenAI: "All other chunks will also include a usage field, but with a null value"); Azure writes usage last. */
const NULL_USAGE = Buffer.from(',"usage":null');

/** What the gateway wants of a stream's token usage. */
export interface StreamWatch {
  /** Hears the token counts when the usage chunk passes. */
  onUsage?(usage: Usage): void;
  /** Hears of each event passed on to the client: what a stream cut short before its usage is counted by. */
  onEvent?(): void;
  /**
   * False when the client did not ask for usage (stream_options.include_usage)
   * and the gateway did: the usage chunk, and each chunk's `"usage":null`, are
   * removed, so the client gets the stream it asked for.
   */
  readonly clientWantsUsage?: boolean;
}

/**
 * The most of one event the filter holds while waiting for its end. Azure's
 * chunks are a few hundred bytes; the Responses API's `response.completed`
 * carries the whole answer (images included), a few megabytes at most. An
 * event past this size cannot be a chunk the filter drops, so it streams on
 * unexamined instead of being held.
 */
export const MAX_HELD_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * Passes Azure's server-sent events through as bytes, one whole event at a
 * time, dropping only the chunks whose `choices` is empty and that carry no
 * usage: Azure's prompt_filter_results chunk, on which strict OpenAI clients
 * that read choices[0] crash. The usage chunk (also empty choices) is kept,
 * unless the client did not ask for it (see StreamWatch).
 *
 * Linear in the bytes that pass: each byte is searched once for the blank
 * line that ends its event, and an unfinished event is kept as the chunks it
 * came in, joined once when it ends.
 */
export class AzureEventFilter extends Transform {
  /** The unfinished event's bytes, as they arrived. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** True while an event too large to hold streams through unexamined. */
  private passing = false;
  /** Set by endWithEvent: the event that ends the stream. */
  private lastEvent: string | undefined;

  private readonly stripUsage: boolean;

  constructor(
    private readonly watch: StreamWatch = {},
    private readonly maxHeldBytes = MAX_HELD_EVENT_BYTES,
  ) {
    super();
    this.stripUsage = watch.clientWantsUsage === false;
  }

  /**
   * Ends the stream after the events already passed with one more event (the
   * gateway's word that the upstream broke off). A partly received event is
   * dropped rather than sent half, so the client can parse every event it gets.
   */
  endWithEvent(event: string): void {
    this.lastEvent = event;
    this.end();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let from = 0;
    if (this.heldBytes > 0) {
      const end = this.endAcross(chunk);
      if (end < 0) {
        this.hold(chunk);
        return done();
      }
      this.finishHeld(chunk.subarray(0, end));
      from = end;
    }
    // Whole events inside this chunk go on as slices of it, dropped ones cut out.
    let start = from;
    let keptFrom = from;
    const ends = new EventEnds(chunk);
    for (;;) {
      const end = ends.after(start);
      if (end < 0) break;
      if (this.isDropped(chunk, start, end)) {
        if (start > keptFrom) this.push(chunk.subarray(keptFrom, start));
        keptFrom = end;
      } else {
        const at = this.nullUsageAt(chunk, start, end);
        if (at >= 0) {
          this.push(chunk.subarray(keptFrom, at));
          keptFrom = at + NULL_USAGE.length;
        }
      }
      start = end;
    }
    if (start > keptFrom) this.push(chunk.subarray(keptFrom, start));
    if (start < chunk.length) this.hold(chunk.subarray(start));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.lastEvent !== undefined) {
      // An event half passed through is closed off, so the last event stands on its own.
      if (this.passing) this.push(LF2);
      this.push(this.lastEvent);
    } else if (!this.passing) {
      for (const part of this.held) this.push(part);
    }
    this.held = [];
    this.heldBytes = 0;
    done();
  }

  /** Keeps the start of an unfinished event, or streams it on once it is too large to hold. */
  private hold(part: Buffer): void {
    if (this.passing) {
      this.push(part);
      this.keepTail([...this.held, part]);
      return;
    }
    this.held.push(part);
    this.heldBytes += part.length;
    if (this.heldBytes > this.maxHeldBytes) {
      for (const p of this.held) this.push(p);
      this.passing = true;
      this.keepTail(this.held);
    }
  }

  /** While passing, only the last bytes sent are kept: a blank line may start in them. */
  private keepTail(parts: readonly Buffer[]): void {
    const tail = lastBytes(parts, CRLF2.length - 1);
    this.held = [tail];
    this.heldBytes = tail.length;
  }

  /** The held event ends with `rest`: examine it whole, or finish streaming it. */
  private finishHeld(rest: Buffer): void {
    if (this.passing) {
      this.push(rest);
      this.passing = false;
    } else {
      const event = this.held.length === 0 ? rest : Buffer.concat([...this.held, rest], this.heldBytes + rest.length);
      if (!this.isDropped(event, 0, event.length)) {
        const at = this.nullUsageAt(event, 0, event.length);
        if (at < 0) this.push(event);
        else {
          this.push(event.subarray(0, at));
          this.push(event.subarray(at + NULL_USAGE.length));
        }
      }
    }
    this.held = [];
    this.heldBytes = 0;
  }

  /**
   * Where in `chunk` the held event ends, or -1: the blank line may start in
   * the last bytes held, so those are searched together with the chunk's first.
   */
  private endAcross(chunk: Buffer): number {
    const tail = lastBytes(this.held, CRLF2.length - 1);
    const probe = Buffer.concat([tail, chunk.subarray(0, CRLF2.length - 1)]);
    const across = eventEnd(probe, 0);
    if (across >= 0) return across - tail.length;
    return eventEnd(chunk, 0);
  }

  /** Whether an event is held back from the client; every event passed on is counted. */
  private isDropped(buf: Buffer, start: number, end: number): boolean {
    const dropped = this.drops(buf.subarray(start, end));
    if (!dropped) this.watch.onEvent?.();
    return dropped;
  }

  private drops(event: Buffer): boolean {
    if (!event.includes(EMPTY_CHOICES) && !event.includes(EMPTY_CHOICES_SPACED)) return false;
    const usage = extractUsage(event.toString('utf8'));
    if (usage !== undefined) {
      this.watch.onUsage?.(usage);
      return this.stripUsage;
    }
    return true;
  }

  /** Where a kept event's `,"usage":null` starts, when the client is not to see it; else -1. */
  private nullUsageAt(buf: Buffer, start: number, end: number): number {
    if (!this.stripUsage) return -1;
    const at = buf.subarray(start, end).indexOf(NULL_USAGE);
    return at < 0 ? -1 : start + at;
  }
}

/**
 * Finds event ends in one chunk, each separator searched for once: looking
 * for a CRLF blank line afresh at every event scanned the rest of the chunk
 * each time (Azure separates with LF, so that search always ran to the end).
 */
class EventEnds {
  /** Next LF and CRLF blank line at or after the last search point; -1: none in the rest of the chunk. */
  private lf = -2;
  private crlf = -2;

  constructor(private readonly buf: Buffer) {}

  /** Index just past the blank line that ends the event starting at `from`, or -1. */
  after(from: number): number {
    if (this.lf !== -1 && this.lf < from) this.lf = this.buf.indexOf(LF2, from);
    if (this.crlf !== -1 && this.crlf < from) this.crlf = this.buf.indexOf(CRLF2, from);
    const { lf, crlf } = this;
    if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + CRLF2.length;
    return lf < 0 ? -1 : lf + LF2.length;
  }
}

/** Index just past the blank line that ends the event starting at `from`, or -1. */
function eventEnd(buf: Buffer, from: number): number {
  const lf = buf.indexOf(LF2, from);
  const crlf = buf.indexOf(CRLF2, from);
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + CRLF2.length;
  return lf < 0 ? -1 : lf + LF2.length;
}

/** The last `n` bytes across a list of buffers. */
function lastBytes(parts: readonly Buffer[], n: number): Buffer {
  const picked: Buffer[] = [];
  let size = 0;
  for (let i = parts.length - 1; i >= 0 && size < n; i--) {
    const p = parts[i];
    const take = Math.min(p.length, n - size);
    picked.unshift(p.subarray(p.length - take));
    size += take;
  }
  return picked.length === 1 ? picked[0] : Buffer.concat(picked);
}
