import { Transform, TransformCallback } from 'node:stream';
import { Usage, extractUsage } from './usage';

/*
 * The filter searches a chunk as a latin1 string: one character per byte, so
 * every index found is the byte's index in the chunk, and the searches run in
 * V8's string code rather than as a call into native code each (which cost
 * more than the search itself for Azure's small events). UTF-8 never uses a
 * byte below 0x80 inside a multi-byte character, so the ASCII patterns below
 * cannot be found inside one.
 */
const LF2 = '\n\n';
const CRLF2 = '\r\n\r\n';
const EMPTY_CHOICES = '"choices":[]';
const EMPTY_CHOICES_SPACED = '"choices": []';
const EMPTY_ARRAY = '[]';
/** What every chunk carries once usage is asked for (OpenAI: "All other chunks will also include a usage field, but with a null value"); Azure writes usage last. */
const NULL_USAGE = ',"usage":null';
const CLOSE_BRACE = 0x7d;

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
  /**
   * Text that marks the events carrying usage in a stream without a usage
   * chunk (image generation's `image_generation.completed`): each such
   * event's usage is read, and onUsage hears the sum so far.
   */
  readonly usageEvent?: string;
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
  /** The usage of the usage events so far (see StreamWatch.usageEvent). */
  private summed: Usage | undefined;

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
    // What this chunk passes on, as slices: pushed as one, since every push is a write (and a chunk frame) to the client.
    const out: Buffer[] = [];
    let from = 0;
    const text = chunk.toString('latin1');
    if (this.heldBytes > 0) {
      const end = this.endAcross(text);
      if (end < 0) {
        this.hold(chunk);
        return done();
      }
      this.finishHeld(chunk.subarray(0, end), out);
      from = end;
    }
    // Whole events inside this chunk go on as slices of it, dropped ones cut out.
    let start = from;
    let keptFrom = from;
    const scan = new ChunkScan(text);
    for (;;) {
      const end = scan.eventEnd(start);
      if (end < 0) break;
      if (this.isDropped(text, start, end, scan.mayBeEmpty(start, end))) {
        if (start > keptFrom) out.push(chunk.subarray(keptFrom, start));
        keptFrom = end;
      } else if (this.stripUsage) {
        const at = scan.nullUsage(start, end);
        if (at >= 0) {
          out.push(chunk.subarray(keptFrom, at));
          keptFrom = at + NULL_USAGE.length;
        }
      }
      start = end;
    }
    if (start > keptFrom) out.push(chunk.subarray(keptFrom, start));
    if (out.length === 1) this.push(out[0]);
    else if (out.length > 1) this.push(Buffer.concat(out));
    if (start < chunk.length) this.hold(chunk.subarray(start));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.lastEvent !== undefined) {
      // An event half passed through is closed off, so the last event stands on its own.
      if (this.passing) this.push(LF2, 'latin1');
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

  /** The held event ends with `rest`: examine it whole (what it passes on goes to `out`), or finish streaming it. */
  private finishHeld(rest: Buffer, out: Buffer[]): void {
    if (this.passing) {
      this.push(rest);
      this.passing = false;
    } else {
      const event = this.held.length === 0 ? rest : Buffer.concat([...this.held, rest], this.heldBytes + rest.length);
      const text = event.toString('latin1');
      if (!this.isDropped(text, 0, text.length, true)) {
        const at = this.stripUsage ? text.indexOf(NULL_USAGE) : -1;
        if (at < 0) out.push(event);
        else out.push(event.subarray(0, at), event.subarray(at + NULL_USAGE.length));
      }
    }
    this.held = [];
    this.heldBytes = 0;
  }

  /**
   * Where in `chunk` the held event ends, or -1: the blank line may start in
   * the last bytes held, so those are searched together with the chunk's first.
   */
  private endAcross(chunk: string): number {
    const tail = lastBytes(this.held, CRLF2.length - 1).toString('latin1');
    const across = eventEnd(tail + chunk.slice(0, CRLF2.length - 1), 0);
    if (across >= 0) return across - tail.length;
    return eventEnd(chunk, 0);
  }

  /**
   * Whether an event is held back from the client; every event passed on is
   * counted. `mayBeEmpty`: whether an empty `choices` may be in it (only such
   * an event is read).
   */
  private isDropped(text: string, start: number, end: number, mayBeEmpty: boolean): boolean {
    const dropped = mayBeEmpty && this.drops(text.slice(start, end));
    if (!dropped) {
      this.watch.onEvent?.();
      if (this.watch.usageEvent !== undefined) this.readUsage(text, start, end, this.watch.usageEvent);
    }
    return dropped;
  }

  private readUsage(text: string, start: number, end: number, marker: string): void {
    const at = text.indexOf(marker, start);
    if (at < 0 || at >= end) return;
    const usage = extractUsage(text.slice(start, end));
    if (usage === undefined) return;
    this.summed = this.summed === undefined ? usage : sumUsage(this.summed, usage);
    this.watch.onUsage?.(this.summed);
  }

  private drops(event: string): boolean {
    if (!event.includes(EMPTY_CHOICES) && !event.includes(EMPTY_CHOICES_SPACED)) return false;
    // The usage object is ASCII (names and numbers), the same in latin1 as in UTF-8.
    const usage = extractUsage(event);
    if (usage !== undefined) {
      this.watch.onUsage?.(usage);
      return this.stripUsage;
    }
    return true;
  }
}

function sumUsage(a: Usage, b: Usage): Usage {
  const add = (x: number | undefined, y: number | undefined) => (x === undefined && y === undefined ? undefined : (x ?? 0) + (y ?? 0));
  return { prompt_tokens: add(a.prompt_tokens, b.prompt_tokens), completion_tokens: add(a.completion_tokens, b.completion_tokens), total_tokens: add(a.total_tokens, b.total_tokens) };
}

/**
 * What the filter looks for in one chunk, each needle searched for once per
 * chunk rather than once per event: looking afresh at every event scanned the
 * rest of the chunk each time (Azure separates with LF, so a CRLF search
 * always ran to the end), which made a chunk of many events quadratic.
 */
class ChunkScan {
  private readonly lf: Occurrences;
  private readonly crlf: Occurrences;
  private readonly brackets: Occurrences;
  private readonly usageNull: Occurrences;
  /** The length of the blank line that ended the last event found. */
  private separator = 0;

  constructor(private readonly text: string) {
    this.lf = new Occurrences(text, LF2);
    // Azure's chunks carry no CR at all: one search for it spares a CRLF search per event.
    this.crlf = new Occurrences(text, CRLF2, text.includes('\r'));
    // Either spelling of an empty `choices` holds "[]", which is rare anywhere else: drops() makes sure.
    this.brackets = new Occurrences(text, EMPTY_ARRAY);
    this.usageNull = new Occurrences(text, NULL_USAGE);
  }

  /** Index just past the blank line that ends the event starting at `from`, or -1. */
  eventEnd(from: number): number {
    const crlf = this.crlf.from(from);
    const end = endAfter(this.lf.from(from), crlf);
    this.separator = crlf >= 0 && end === crlf + CRLF2.length ? CRLF2.length : LF2.length;
    return end;
  }

  /** Whether an empty `choices` may be within [start, end). */
  mayBeEmpty(start: number, end: number): boolean {
    return this.brackets.within(start, end);
  }

  /** Where `,"usage":null` starts in the event [start, end) that eventEnd just found, or -1. */
  nullUsage(start: number, end: number): number {
    // Azure writes it last, just before the closing brace: looked at there first, then searched for.
    const brace = end - this.separator - 1;
    const at = brace - NULL_USAGE.length;
    if (at >= start && this.text.charCodeAt(brace) === CLOSE_BRACE && this.text.startsWith(NULL_USAGE, at)) return at;
    return this.usageNull.within(start, end) ? this.usageNull.from(start) : -1;
  }
}

/** The next place a needle occurs in a chunk's text at or after a point that only moves forward. */
class Occurrences {
  /** The last occurrence found; -2 before the first search, -1 when none is left. */
  private at: number;

  constructor(private readonly text: string, private readonly needle: string, mayOccur = true) {
    this.at = mayOccur ? -2 : -1;
  }

  from(start: number): number {
    if (this.at !== -1 && this.at < start) this.at = this.text.indexOf(this.needle, start);
    return this.at;
  }

  /** Whether the needle occurs wholly within [start, end). */
  within(start: number, end: number): boolean {
    const at = this.from(start);
    return at >= 0 && at + this.needle.length <= end;
  }
}

/** Index just past the blank line that ends the event starting at `from`, or -1. */
function eventEnd(text: string, from: number): number {
  return endAfter(text.indexOf(LF2, from), text.indexOf(CRLF2, from));
}

/** Index just past whichever blank line comes first, given where each kind starts (-1: none), or -1. */
function endAfter(lf: number, crlf: number): number {
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
