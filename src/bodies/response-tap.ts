import { Transform, TransformCallback } from 'node:stream';
import { TailKeeper, Usage } from './usage';

/**
 * The id of the response an answer carries: the first `"id":"resp_…"` in it.
 * A response object starts with its id, and a stream's first event
 * (response.created) carries the response, so it comes before any other.
 */
const RESPONSE_ID = /"id"\s*:\s*"(resp_[A-Za-z0-9_-]+)"/;

/** Longest head held while looking for the id: far more than response.created ever takes. */
const HEAD_LIMIT = 64 * 1024;

const SEQUENCE = /"sequence_number"\s*:\s*(\d+)/g;

/**
 * Passes a Responses API answer (a JSON object or its server-sent events)
 * through untouched, with two side jobs. With `onId`, nothing is passed on
 * until the response's id has been found and handed to it and what it
 * returned has settled: where the response is stored is on record before the
 * client can name it. With `onUsage`, token counts are read from the tail,
 * where the response (or response.completed) keeps them; `onEvents` hears how
 * many events have passed (by their sequence_number), which is what a stream
 * cut short before response.completed is counted by.
 */
export class ResponseTap extends Transform {
  private held: Buffer[] | null;
  private heldBytes = 0;
  private readonly tail: TailKeeper | undefined;
  /** The last event's sequence_number seen, for an event that ends the stream after it. */
  private sequence = -1;
  /** Set by endWith: the event that ends the stream. */
  private lastEvent: ((sequenceNumber: number) => string) | undefined;

  constructor(
    private readonly onId?: (id: string) => Promise<unknown>,
    private readonly onUsage?: (usage: Usage) => void,
    private readonly onEvents?: (count: number) => void,
  ) {
    super();
    this.held = onId === undefined ? null : [];
    this.tail = onUsage === undefined ? undefined : new TailKeeper();
  }

  /**
   * Ends the stream after what has passed with one more event, numbered after
   * the last: the one the client sees last. Both sides end, so the stream
   * closes and the request is logged and settled like any other.
   */
  endWith(event: (sequenceNumber: number) => string): void {
    this.lastEvent = event;
    this.end();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.tail?.push(chunk);
    for (const m of chunk.toString('latin1').matchAll(SEQUENCE)) this.sequence = Number(m[1]);
    this.onEvents?.(this.sequence + 1);
    const held = this.held;
    if (held === null) return done(null, chunk);
    held.push(chunk);
    this.heldBytes += chunk.length;
    const id = RESPONSE_ID.exec(Buffer.concat(held, this.heldBytes).toString('utf8'))?.[1];
    if (id === undefined && this.heldBytes < HEAD_LIMIT) return done();
    const release = () => {
      this.release();
      done();
    };
    if (id === undefined) return release();
    this.onId!(id).then(release, release);
  }

  override _flush(done: TransformCallback): void {
    this.release();
    if (this.lastEvent !== undefined) {
      this.push(this.lastEvent(this.sequence + 1));
    } else {
      const usage = this.tail?.usage();
      if (usage !== undefined) this.onUsage!(usage);
    }
    done();
  }

  private release(): void {
    const held = this.held;
    this.held = null;
    if (held) for (const c of held) this.push(c);
  }
}
