/** @module How many tokens a request is admitted on, before Azure says how many it used. */

/** A request's tokens as estimated before it is sent. */
export interface TokenEstimate {
  /** The prompt: a quarter of the request body's bytes (about four bytes per token in English; JSON keys pad it), images and audio sent inline taken apart (see mediaIn). */
  readonly prompt: number;
  /** The most the answer may use, when the request caps it (max_tokens, max_completion_tokens or max_output_tokens, times n); else 0. */
  readonly output: number;
}

export const NO_TOKENS: TokenEstimate = { prompt: 0, output: 0 };

/** The estimate for a JSON request: its size, the images and audio it carries, and the cap it puts on the answer. */
export function estimateTokens(raw: Buffer, body: Record<string, unknown>): TokenEstimate {
  const cap = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens;
  const n = typeof body.n === 'number' && Number.isInteger(body.n) && body.n > 1 ? body.n : 1;
  const media = mayCarryMedia(raw) ? mediaIn(body) : NO_MEDIA;
  return { prompt: Math.ceil((raw.length - media.bytes) / 4) + media.tokens, output: typeof cap === 'number' && cap > 0 ? Math.ceil(cap) * n : 0 };
}

/**
 * An image or audio clip sent inline (base64) is billed by what it holds, not
 * by its size: a photo of a few hundred KB costs gpt-4o at most 85 + 170
 * tokens per 512-px tile, eight tiles at most (OpenAI's vision guide,
 * "Calculating costs"), where a quarter of its bytes would be over 100,000
 * and keep any key with a `tpm` from sending it. Audio is about 25 tokens a
 * second (OpenAI's audio pricing, $0.06 a minute at $40 per million), taken at
 * a compressed 21 KB of base64 a second. These are estimates, as the rest is:
 * some models bill an image at many times gpt-4o's tokens (gpt-4o-mini), and
 * Azure's count settles what a request used, the key owing the difference.
 * Files (a PDF is read as text and as page images) keep the byte count,
 * which holds for text-heavy ones.
 */
const IMAGE_TOKENS = 85 + 170 * 8;
const AUDIO_BASE64_BYTES_PER_TOKEN = 800;
/** Smaller payloads are left to the byte count: no media worth the walk fits in them. */
const MIN_MEDIA_CHARS = 1024;
/** Bodies smaller than this are taken by their bytes alone: the hot path of ordinary requests does no more. */
const MIN_SCANNED_BODY = 4096;
const BASE64_MARK = ';base64,';
const DATA_URL = Buffer.from(BASE64_MARK);
const INPUT_AUDIO = Buffer.from('"input_audio"');
/** Only base64 is taken for media: text dressed as a data: URL must not pass for an image and escape the count. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

interface Media {
  bytes: number;
  tokens: number;
}
const NO_MEDIA: Media = { bytes: 0, tokens: 0 };

function mayCarryMedia(raw: Buffer): boolean {
  return raw.length >= MIN_SCANNED_BODY && (raw.includes(DATA_URL) || raw.includes(INPUT_AUDIO));
}

/**
 * The inline images and audio of a request: their bytes (taken out of the
 * byte count) and their tokens. Only the parts that carry them are read:
 * chat's image_url and input_audio, the Responses API's input_image and
 * input_audio, wherever in the body they sit.
 */
function mediaIn(body: Record<string, unknown>): Media {
  const found: Media = { bytes: 0, tokens: 0 };
  walk(body, found, 0);
  return found;
}

function walk(v: unknown, found: Media, depth: number): void {
  if (depth > 32 || v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (const item of v) walk(item, found, depth + 1);
    return;
  }
  const part = v as Record<string, unknown>;
  if (part.type === 'image_url' || part.type === 'input_image') {
    const url = part.type === 'image_url' ? (part.image_url as { url?: unknown } | null)?.url : part.image_url;
    const at = typeof url === 'string' && url.startsWith('data:image/') ? url.indexOf(BASE64_MARK) : -1;
    if (at >= 0 && isMedia((url as string).slice(at + BASE64_MARK.length))) return count((url as string).length, IMAGE_TOKENS, found);
  } else if (part.type === 'input_audio') {
    const data = (part.input_audio as { data?: unknown } | null)?.data;
    if (typeof data === 'string' && isMedia(data)) return count(data.length, Math.ceil(data.length / AUDIO_BASE64_BYTES_PER_TOKEN), found);
  }
  for (const key in part) walk(part[key], found, depth + 1);
}

function isMedia(base64: string): boolean {
  return base64.length >= MIN_MEDIA_CHARS && BASE64.test(base64);
}

function count(chars: number, tokens: number, found: Media): void {
  // A data: URL and base64 are ASCII: a character is a byte of the body.
  found.bytes += chars;
  found.tokens += tokens;
}
