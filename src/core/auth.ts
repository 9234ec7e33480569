import { timingSafeEqual } from 'node:crypto';
import { GatewayRequest } from './http';
import { unauthorized } from './errors';
import { digestOf, KeyEntry } from '../keys/parse';
import { ProxyKey, UNNAMED_KEY } from '../keys/proxy-key';

/**
 * The proxy keys clients may present, each with the identity it stands for.
 * Keys are compared as SHA-256 digests with timingSafeEqual against every
 * configured key, so neither the position of the first wrong character nor
 * which key matched shows in the timing. Named keys come first: a key listed
 * both named and unnamed is the named one, limits and all.
 *
 * A key that matched is remembered by its text, so the clients that keep
 * coming skip the digest (a hash per request showed in the hot path's
 * profile). Only configured keys get in, so the map is never larger than the
 * ring. Looking up a wrong key in it tells nothing either: the map compares
 * string hashes before any character, and a wrong key then takes the digest
 * path as before. A ring rebuilt from Key Vault starts with none remembered.
 */
export class ProxyKeyRing {
  private readonly entries: readonly KeyEntry[];
  private readonly matched = new Map<string, ProxyKey>();

  constructor(unnamed: readonly string[], named: readonly KeyEntry[] = []) {
    this.entries = [...named, ...unnamed.map((k) => ({ digest: digestOf(k), key: UNNAMED_KEY }))];
  }

  get size(): number {
    return this.entries.length;
  }

  /** The identity of a presented key, or undefined when no configured key matches. */
  identify(presented: string): ProxyKey | undefined {
    const known = this.matched.get(presented);
    if (known !== undefined) return known;
    const candidate = digestOf(presented);
    let found: ProxyKey | undefined;
    for (const e of this.entries) {
      const equal = timingSafeEqual(candidate, e.digest);
      if (equal && found === undefined) found = e.key;
    }
    if (found !== undefined) this.matched.set(presented, found);
    return found;
  }

  /** A named key by its name, for work that outlives its request (a realtime session's usage). */
  named(name: string): ProxyKey | undefined {
    return this.entries.find((e) => e.key.name === name)?.key;
  }
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

/** The identity of the request's key; OpenAI's 401 when it carries none, or one nobody configured. */
export function authenticate(req: GatewayRequest, identify: (key: string) => ProxyKey | undefined): ProxyKey {
  const key = presentedKey(req);
  if (key === undefined) {
    throw unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or as an 'api-key' header.");
  }
  const identity = identify(key);
  if (identity === undefined) throw unauthorized('Incorrect API key provided. Check the proxy key your client sends.');
  return identity;
}
