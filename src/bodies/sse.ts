import { Transform, TransformCallback } from 'node:stream';
import { Usage, extractUsage } from './usage';

const LF2 = Buffer.from('\n\n');
const CRLF2 = Buffer.from('\r\n\r\n');
const EMPTY_CHOICES = [Buffer.from('"choices":[]'), Buffer.from('"choices": []')];

/**
 * Passes Azure's server-sent events through as bytes, one whole event at a
 * time, dropping only the chunks whose `choices` is empty and that carry no
 * usage: Azure's prompt_filter_results chunk, on which strict OpenAI clients
 * that read choices[0] crash. The usage chunk (also empty choices) is kept.
 */
export class AzureEventFilter extends Transform {
  private carry: Buffer | null = null;

  /** onUsage hears the token counts when the stream's usage chunk passes. */
  constructor(private readonly onUsage?: (usage: Usage) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const buf = this.carry === null ? chunk : Buffer.concat([this.carry, chunk]);
    let start = 0;
    let keptFrom = 0;
    for (;;) {
      const end = eventEnd(buf, start);
      if (end < 0) break;
      if (this.isDropped(buf, start, end)) {
        if (start > keptFrom) this.push(buf.subarray(keptFrom, start));
        keptFrom = end;
      }
      start = end;
    }
    if (start > keptFrom) this.push(buf.subarray(keptFrom, start));
    this.carry = start < buf.length ? buf.subarray(start) : null;
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.carry !== null) this.push(this.carry);
    this.carry = null;
    done();
  }

  private isDropped(buf: Buffer, start: number, end: number): boolean {
    const event = buf.subarray(start, end);
    if (!EMPTY_CHOICES.some((needle) => event.includes(needle))) return false;
    const text = event.toString('utf8');
    const usage = extractUsage(text);
    if (usage !== undefined) {
      this.onUsage?.(usage);
      return false;
    }
    return true;
  }
}

/** Index just past the blank line that ends the event starting at `from`, or -1. */
function eventEnd(buf: Buffer, from: number): number {
  const lf = buf.indexOf(LF2, from);
  const crlf = buf.indexOf(CRLF2, from);
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + CRLF2.length;
  return lf < 0 ? -1 : lf + LF2.length;
}
