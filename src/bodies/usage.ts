/** Token usage as OpenAI reports it; only the counts are kept for logs. */
export interface Usage {
  readonly prompt_tokens?: number;
  readonly completion_tokens?: number;
  readonly total_tokens?: number;
}

const USAGE_KEY = '"usage"';
const USAGE_KEY_BYTES = Buffer.from(USAGE_KEY);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * Finds the `"usage": {...}` object in a JSON text by matching braces, so a
 * response can be scanned for its token counts without parsing it whole.
 */
export function extractUsage(text: string): Usage | undefined {
  const at = text.lastIndexOf(USAGE_KEY);
  if (at < 0) return undefined;
  const open = text.indexOf('{', at + USAGE_KEY.length);
  if (open < 0 || text.slice(at + USAGE_KEY.length, open).trim() !== ':') return undefined;
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // A brace inside a string is text, not structure.
      for (i++; i < text.length && text.charCodeAt(i) !== QUOTE; i++) if (text.charCodeAt(i) === BACKSLASH) i++;
    } else if (c === OPEN) depth++;
    else if (c === CLOSE && --depth === 0) {
      try {
        const u = JSON.parse(text.slice(open, i + 1)) as Record<string, unknown>;
        return pickCounts(u);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * The token counts of a whole JSON answer, read from the bytes of its last
 * `"usage"` object: every small answer passes here, and decoding and parsing
 * even that tail cost more than the rest of the gateway's reading of it. An
 * object the byte reader does not take as plain (escapes, fractions, usage
 * that is not an object) is parsed the slow way instead; for well-formed
 * JSON both ways give the same counts (test/unit/usage.test.ts).
 */
export function usageOfBody(body: Buffer): Usage | undefined {
  const at = body.lastIndexOf(USAGE_KEY_BYTES);
  if (at < 0) return undefined;
  const read = readCounts(body, at + USAGE_KEY_BYTES.length);
  return read === UNREAD ? extractUsage(body.toString('utf8', at)) : read;
}

/** What readCounts could not read plainly: the string path decides. */
const UNREAD = Symbol('unread');

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * The counts of the `: {...}` that starts at `i`, by the rules of pickCounts
 * (a repeated field's last value, input/output names as fallbacks), reading
 * only the object's own fields: nested ones (`*_details`) are skipped whole.
 */
function readCounts(b: Buffer, i: number): Usage | undefined | typeof UNREAD {
  const end = b.length;
  while (i < end && isSpace(b[i])) i++;
  if (b[i++] !== COLON) return UNREAD;
  while (i < end && isSpace(b[i])) i++;
  if (b[i++] !== OPEN) return UNREAD;
  // By their place in COUNT_NAMES.
  const counts: (number | undefined)[] = [];
  for (;;) {
    while (i < end && isSpace(b[i])) i++;
    if (b[i] === CLOSE) break;
    if (b[i++] !== QUOTE) return UNREAD;
    const keyStart = i;
    while (i < end && b[i] !== QUOTE && b[i] !== BACKSLASH) i++;
    if (b[i] !== QUOTE) return UNREAD;
    const key = countNamed(b, keyStart, i++);
    while (i < end && isSpace(b[i])) i++;
    if (b[i++] !== COLON) return UNREAD;
    while (i < end && isSpace(b[i])) i++;
    const c = b[i];
    if (c === MINUS || (c >= ZERO && c <= NINE)) {
      const negative = c === MINUS;
      if (negative) i++;
      const digitsStart = i;
      let n = 0;
      while (i < end && b[i] >= ZERO && b[i] <= NINE) n = n * 10 + b[i++] - ZERO;
      // Fractions, exponents and numbers past exact integers are the string path's.
      if (i === digitsStart || i - digitsStart > 15 || (b[digitsStart] === ZERO && i - digitsStart > 1)) return UNREAD;
      if (b[i] === 0x2e || b[i] === 0x65 || b[i] === 0x45) return UNREAD;
      if (key >= 0) counts[key] = negative ? -n : n;
    } else {
      const next = skipValue(b, i);
      if (next < 0) return UNREAD;
      // A count given as anything but a number is no count (as pickCounts has it).
      if (key >= 0) counts[key] = undefined;
      i = next;
    }
    while (i < end && isSpace(b[i])) i++;
    if (b[i] === COMMA) i++;
    else if (b[i] !== CLOSE) return UNREAD;
  }
  const [prompt = counts[INPUT], completion = counts[OUTPUT], total] = counts;
  return prompt === undefined && total === undefined ? undefined : { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
}

/** The counts' names; a field is named by its place here, -1 for any other field. */
const [INPUT, OUTPUT] = [3, 4];
const COUNT_NAMES = ['prompt_tokens', 'completion_tokens', 'total_tokens', 'input_tokens', 'output_tokens'].map((name) => Buffer.from(name));

/** Which count the field name in b[start, end) is, compared as bytes: no string is made for a name. */
function countNamed(b: Buffer, start: number, end: number): number {
  for (let n = 0; n < COUNT_NAMES.length; n++) {
    const name = COUNT_NAMES[n];
    if (name.length !== end - start) continue;
    let k = 0;
    while (k < name.length && name[k] === b[start + k]) k++;
    if (k === name.length) return n;
  }
  return -1;
}

/** Past a JSON value that is not a number (a string, object, list or literal): its end, or -1 when it is not plain. */
function skipValue(b: Buffer, i: number): number {
  const end = b.length;
  let depth = 0;
  do {
    const c = b[i];
    if (c === QUOTE) {
      for (i++; i < end && b[i] !== QUOTE; i++) if (b[i] === BACKSLASH) i++;
      if (i >= end) return -1;
      i++;
    } else if (c === OPEN || c === OPEN_LIST) {
      depth++;
      i++;
    } else if (c === CLOSE || c === CLOSE_LIST) {
      if (depth === 0) return -1;
      depth--;
      i++;
    } else if (depth > 0 || (c >= 0x61 && c <= 0x7a)) {
      // Inside a nested value anything goes; at the top only a literal's letters (true, false, null).
      if (i >= end) return -1;
      i++;
      if (depth === 0) while (i < end && b[i] >= 0x61 && b[i] <= 0x7a) i++;
    } else {
      return -1;
    }
  } while (depth > 0);
  return i;
}

export function pickCounts(u: Record<string, unknown> | null | undefined): Usage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const n = (k: string) => (typeof u[k] === 'number' ? (u[k] as number) : undefined);
  const usage = { prompt_tokens: n('prompt_tokens') ?? n('input_tokens'), completion_tokens: n('completion_tokens') ?? n('output_tokens'), total_tokens: n('total_tokens') };
  return usage.prompt_tokens === undefined && usage.total_tokens === undefined ? undefined : usage;
}

/** Keeps the last bytes of a JSON response, where Azure puts `usage`. */
export class TailKeeper {
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly size = 4096) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.size) this.tail = chunk.subarray(chunk.length - this.size);
    else {
      const joined = Buffer.concat([this.tail, chunk]);
      this.tail = joined.length > this.size ? joined.subarray(joined.length - this.size) : joined;
    }
  }

  usage(): Usage | undefined {
    return extractUsage(this.tail.toString('utf8'));
  }
}
