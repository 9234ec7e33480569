/** @module A JSON body's top-level `model`, rewritten in its bytes. */
import { jsonTooDeep } from '../core/errors';

/**
 * Deeper than any request the OpenAI API takes (a structured-output schema
 * nests ten levels at most): a body nested further is refused, not forwarded.
 */
export const MAX_JSON_DEPTH = 1000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MODEL_KEY = Buffer.from('"model"');

/**
 * Rewrites a JSON object's top-level "model" (the v1 form names the
 * deployment there) by splicing its bytes: no parse and re-serialisation, so
 * any nesting costs one linear scan, without recursion, and every other byte
 * goes on as the client sent it. `raw` must be a JSON object JSON.parse
 * accepted. The scan is done once, on the first call.
 */
export function modelRewriter(raw: Buffer): (model: string) => Buffer {
  let slot: { start: number; end: number } | undefined;
  return (model) => {
    slot ??= modelSlot(raw);
    return Buffer.concat([raw.subarray(0, slot.start), Buffer.from(JSON.stringify(model)), raw.subarray(slot.end)]);
  };
}

/** Where the top-level "model" value lies (the last one, as JSON.parse takes the last), or an empty slot to insert one. */
function modelSlot(raw: Buffer): { start: number; end: number } {
  let i = skipSpace(raw, 0) + 1; // past '{'
  let found: { start: number; end: number } | undefined;
  for (;;) {
    i = skipSpace(raw, i);
    if (raw[i] !== QUOTE) break; // '}': the object ends
    const keyStart = i;
    i = stringEnd(raw, i);
    const isModel = isModelKey(raw, keyStart, i);
    i = skipSpace(raw, skipSpace(raw, i) + 1); // past ':'
    const start = i;
    i = valueEnd(raw, i);
    if (isModel) found = { start, end: i };
    i = skipSpace(raw, i);
    if (raw[i] === 0x2c) i++; // ','
  }
  if (found) return found;
  // No model at the top level: insert one as the first member.
  const open = skipSpace(raw, 0) + 1;
  return { start: open, end: open };
}

function isModelKey(raw: Buffer, start: number, end: number): boolean {
  const key = raw.subarray(start, end);
  if (key.equals(MODEL_KEY)) return true;
  // An escaped spelling ("mod\u0065l") is the same key to JSON.parse.
  return key.includes(BACKSLASH) && JSON.parse(key.toString('utf8')) === 'model';
}

function skipSpace(raw: Buffer, i: number): number {
  while (i < raw.length && (raw[i] === 0x20 || raw[i] === 0x0a || raw[i] === 0x0d || raw[i] === 0x09)) i++;
  return i;
}

/** Index just past the string that opens at `i`. */
function stringEnd(raw: Buffer, i: number): number {
  for (i++; i < raw.length; i++) {
    if (raw[i] === BACKSLASH) i++;
    else if (raw[i] === QUOTE) return i + 1;
  }
  return i;
}

/** Index just past the value that starts at `i`; nesting deeper than MAX_JSON_DEPTH is the client's 400. */
function valueEnd(raw: Buffer, i: number): number {
  const c = raw[i];
  if (c === QUOTE) return stringEnd(raw, i);
  if (c !== 0x7b && c !== 0x5b) {
    // A number or a literal: it runs to the next delimiter.
    while (i < raw.length && raw[i] !== 0x2c && raw[i] !== 0x7d && raw[i] !== 0x5d && raw[i] !== 0x20 && raw[i] !== 0x0a && raw[i] !== 0x0d && raw[i] !== 0x09) i++;
    return i;
  }
  // The top-level object is one level; this value opens the next.
  let depth = 1;
  for (i++; i < raw.length; i++) {
    const b = raw[i];
    if (b === QUOTE) i = stringEnd(raw, i) - 1;
    else if (b === 0x7b || b === 0x5b) {
      if (++depth + 1 > MAX_JSON_DEPTH) throw jsonTooDeep(MAX_JSON_DEPTH);
    } else if ((b === 0x7d || b === 0x5d) && --depth === 0) return i + 1;
  }
  return i;
}
