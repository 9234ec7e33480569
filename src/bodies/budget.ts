/** @module How many bytes of request bodies an instance holds at once, across all its requests. */
import { GatewayRequest } from '../core/http';
import { bodiesBusy, payloadTooLarge } from '../core/errors';

/**
 * A process-wide budget for request bodies in memory. Each body's limit
 * bounds one request; this bounds them all together, so many large uploads
 * at once are turned away (503 with Retry-After, which OpenAI SDKs retry)
 * instead of taking the instance's memory.
 */
export class BodyBudget {
  private used = 0;

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` if they fit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.capacity) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }

  /**
   * Holds a request's body in the budget until `release`: its declared length
   * at once (refused before a byte is read when it does not fit), or, sent in
   * chunks, each chunk as it arrives. A declared length over `largest` holds
   * nothing: no route reads that much, and the route refuses it unread.
   */
  admit(req: GatewayRequest, largest: number): { readonly req: GatewayRequest; release(): void } {
    const declared = req.header('content-length');
    if (declared !== undefined) {
      const bytes = Number(declared);
      if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > largest) return { req, release: noop };
      if (!this.take(bytes)) throw this.refusal(bytes);
      return { req, release: () => this.give(bytes) };
    }
    if (req.header('transfer-encoding') === undefined) return { req, release: noop };
    const counted = { bytes: 0 };
    return { req: { ...req, body: this.counting(req.body, counted) }, release: () => this.give(counted.bytes) };
  }

  /** Busy (503, retried) while other bodies hold the room; too large (413) when the budget could never hold this one. */
  private refusal(bytes: number): Error {
    return bytes > this.capacity ? payloadTooLarge(this.capacity) : bodiesBusy();
  }

  /** A body sent in chunks, taken from the budget as it is read. */
  private async *counting(body: AsyncIterable<Uint8Array>, counted: { bytes: number }): AsyncIterable<Uint8Array> {
    for await (const chunk of body) {
      if (!this.take(chunk.byteLength)) throw this.refusal(counted.bytes + chunk.byteLength);
      counted.bytes += chunk.byteLength;
      yield chunk;
    }
  }
}

const noop = () => {};
