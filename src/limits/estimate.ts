/** @module How many tokens a request is admitted on, before Azure says how many it used. */

/** A request's tokens as estimated before it is sent. */
export interface TokenEstimate {
  /** The prompt: a quarter of the request body's text bytes (about four bytes per token in English; JSON keys pad it), and what its embedded media cost (see mediaTokens). */
  readonly prompt: number;
  /** The most the answer may use, when the request caps it (max_tokens, max_completion_tokens or max_output_tokens, times n); else 0. */
  readonly output: number;
}

export const NO_TOKENS: TokenEstimate = { prompt: 0, output: 0 };

/** The estimate for a JSON request: its size, what media it carries, and the cap it puts on the answer. */
export function estimateTokens(raw: Buffer, body: Record<string, unknown>): TokenEstimate {
  const cap = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens;
  const n = typeof body.n === 'number' && Number.isInteger(body.n) && body.n > 1 ? body.n : 1;
  const media = mayCarryMedia(raw) ? mediaIn(body) : NO_MEDIA;
  return { prompt: Math.ceil((raw.length - media.bytes) / 4) + media.tokens, output: typeof cap === 'number' && cap > 0 ? Math.ceil(cap) * n : 0 };
}

/**
 * Images, audio and files sent inline (base64) are billed by what they hold,
 * not by their size: a photo of a few hundred KB costs a vision model at most
 * 85 + 170 tokens per 512-px tile, and eight tiles at most (OpenAI's vision
 * guide, "Calculating costs"), where a quarter of its bytes would be over
 * 100,000 and keep any key with a `tpm` from sending it. Audio is about 25
 * tokens a second (OpenAI's audio pricing, $0.06 a minute at $40 per million),
 * taken at a compressed 21 KB of base64 a second; a file (a PDF is read as
 * text and an image of each page) at a token per 64 bytes of base64, a rough
 * rate that errs high. What a request used is settled with Azure's count.
 */
const IMAGE_TOKENS = 85 + 170 * 8;
const AUDIO_BASE64_BYTES_PER_TOKEN = 800;
const FILE_BASE64_BYTES_PER_TOKEN = 64;
/** Smaller strings are left to the byte count: no media worth the walk fits in them. */
const MIN_MEDIA_CHARS = 1024;
/** Bodies smaller than this are taken by their bytes alone: the hot path of ordinary requests does no more. */
const MIN_SCANNED_BODY = 4096;
const DATA_URL = Buffer.from(';base64,');
const INPUT_AUDIO = Buffer.from('"input_audio"');

interface Media {
  bytes: number;
  tokens: number;
}
const NO_MEDIA: Media = { bytes: 0, tokens: 0 };

function mayCarryMedia(raw: Buffer): boolean {
  return raw.length >= MIN_SCANNED_BODY && (raw.includes(DATA_URL) || raw.includes(INPUT_AUDIO));
}

/** The inline media in a request body: their bytes (taken out of the byte count) and their tokens. */
function mediaIn(body: Record<string, unknown>): Media {
  const found: Media = { bytes: 0, tokens: 0 };
  walk(body, found, 0);
  return found;
}

function walk(v: unknown, found: Media, depth: number): void {
  if (depth > 32) return;
  if (typeof v === 'string') {
    if (v.length >= MIN_MEDIA_CHARS && v.startsWith('data:')) count(v.length, dataUrlTokens(v), found);
  } else if (Array.isArray(v)) {
    for (const item of v) walk(item, found, depth + 1);
  } else if (v !== null && typeof v === 'object') {
    for (const key in v) {
      const value = (v as Record<string, unknown>)[key];
      // Chat's and the Responses API's audio part: { input_audio: { data: <base64>, format } }, no data: URL.
      const audio = key === 'input_audio' ? (value as { data?: unknown } | null)?.data : undefined;
      if (typeof audio === 'string' && audio.length >= MIN_MEDIA_CHARS) count(audio.length, Math.ceil(audio.length / AUDIO_BASE64_BYTES_PER_TOKEN), found);
      else walk(value, found, depth + 1);
    }
  }
}

function count(chars: number, tokens: number, found: Media): void {
  // A data: URL and base64 are ASCII: a character is a byte of the body.
  found.bytes += chars;
  found.tokens += tokens;
}

function dataUrlTokens(url: string): number {
  if (url.startsWith('data:image/')) return IMAGE_TOKENS;
  if (url.startsWith('data:audio/')) return Math.ceil(url.length / AUDIO_BASE64_BYTES_PER_TOKEN);
  return Math.ceil(url.length / FILE_BASE64_BYTES_PER_TOKEN);
}
