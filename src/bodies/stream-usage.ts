/** @module Asking Azure for a stream's token usage when the client did not. */

/** Whether the client asked for the stream's usage chunk itself (stream_options.include_usage). */
export function clientAskedForUsage(body: Record<string, unknown>): boolean {
  const options = body.stream_options;
  return typeof options === 'object' && options !== null && (options as { include_usage?: unknown }).include_usage === true;
}

/**
 * The body with `stream_options.include_usage` set, so Azure ends the stream
 * with its usage chunk; undefined when the client's stream_options is not an
 * object Azure would take. Without stream_options the client's bytes are kept
 * and one member is written in front of theirs; otherwise the body is written
 * again with the option added to the client's.
 */
export function withStreamUsage(raw: Buffer, body: Record<string, unknown>): Buffer | undefined {
  const options = body.stream_options;
  if (options === undefined) {
    const open = raw.indexOf(0x7b);
    return Buffer.concat([raw.subarray(0, open + 1), INCLUDE_USAGE_MEMBER, raw.subarray(open + 1)]);
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) return undefined;
  return Buffer.from(JSON.stringify({ ...body, stream_options: { ...options, include_usage: true } }));
}

/** Ends in a comma: the body it goes in front of has `model` and `stream` at least. */
const INCLUDE_USAGE_MEMBER = Buffer.from('"stream_options":{"include_usage":true},');
