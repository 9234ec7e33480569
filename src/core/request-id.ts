/** @module Request ids: a random UUID (v4) per request the client did not name. */
import { randomFillSync } from 'node:crypto';

/** Ids drawn per refill of the random bytes. */
const IDS_PER_FILL = 256;
const random = Buffer.alloc(IDS_PER_FILL * 16);
let next = random.length;
const HEX = Buffer.from('0123456789abcdef');
const text = Buffer.alloc(36);

/**
 * A new random UUID, as crypto.randomUUID makes one (it also draws its bytes
 * in batches), written as one flat string: randomUUID's is pieced together,
 * and every reader of it (header validation, the log line) paid to join it
 * again, together more than a microsecond per request (`npm run bench:ladder`).
 */
export function newRequestId(): string {
  if (next === random.length) {
    randomFillSync(random);
    next = 0;
  }
  const at = next;
  next += 16;
  // Version 4, variant 10xx (RFC 9562, 5.4).
  random[at + 6] = (random[at + 6] & 0x0f) | 0x40;
  random[at + 8] = (random[at + 8] & 0x3f) | 0x80;
  let out = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[out++] = 0x2d;
    const byte = random[at + i];
    text[out++] = HEX[byte >> 4];
    text[out++] = HEX[byte & 0x0f];
  }
  return text.toString('latin1');
}
