import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayRequest } from './http';
import { unauthorized } from './errors';

/**
 * The proxy keys clients may present. Keys are compared as SHA-256 digests with
 * timingSafeEqual against every configured key, so neither the position of the
 * first wrong character nor which key matched shows in the timing.
 */
export class ProxyKeyRing {
  private readonly digests: readonly Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get size(): number {
    return this.digests.length;
  }

  matches(presented: string): boolean {
    const candidate = digest(presented);
    let found = false;
    for (const d of this.digests) found = timingSafeEqual(candidate, d) || found;
    return found;
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** The key from `Authorization: Bearer <key>` (OpenAI style) or `api-key: <key>` (Azure style). */
export function presentedKey(req: GatewayRequest): string | undefined {
  const authorization = req.header('authorization');
  if (authorization !== undefined) {
    const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  const apiKey = req.header('api-key')?.trim();
  return apiKey ? apiKey : undefined;
}

/** Throws OpenAI's 401 unless the request carries a key the ring accepts. */
export function authenticate(req: GatewayRequest, ring: { matches(key: string): boolean }): void {
  const key = presentedKey(req);
  if (key === undefined) {
    throw unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or as an 'api-key' header.");
  }
  if (!ring.matches(key)) throw unauthorized('Incorrect API key provided. Check the proxy key your client sends.');
}
