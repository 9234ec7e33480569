import { Transform, TransformCallback } from 'node:stream';
import { TailKeeper, Usage } from './usage';

/** Passes a JSON response through untouched and reads its token counts from the tail at the end. */
export class UsageTap extends Transform {
  private readonly tail = new TailKeeper();

  constructor(private readonly onUsage: (usage: Usage) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.tail.push(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const usage = this.tail.usage();
    if (usage !== undefined) this.onUsage(usage);
    done();
  }
}
