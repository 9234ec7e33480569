import { createPublicKey, JsonWebKey, KeyObject, verify } from 'node:crypto';

/**
 * Checks the Entra ID token Web PubSub sends to its event handler when the
 * handler is set to authenticate with the service's managed identity (no
 * access key anywhere): RS256 signature against the issuer's published keys,
 * issuer, audience, lifetime, and that the token was issued to the service's
 * own identity (its principal's object id, or its client id) rather than to
 * any other principal of the tenant that can get a token for the audience.
 * Several issuers may be accepted (a tenant's v1 and v2 tokens differ in it);
 * each token's keys come from its own issuer's discovery document, fetched
 * once and again only for an unknown key id, at most every five minutes.
 */
export type FetchJson = (url: string) => Promise<unknown>;

const REFETCH_MS = 5 * 60_000;
const SKEW_S = 300;

export class EntraTokenValidator {
  private readonly byIssuer = new Map<string, { keys: Map<string, KeyObject>; fetchedAt: number; pending?: Promise<void> }>();

  constructor(
    private readonly issuers: readonly string[],
    private readonly audience: string,
    private readonly principal: string,
    private readonly fetchJson: FetchJson = async (url) => (await fetch(url)).json(),
    private readonly now: () => number = Date.now,
  ) {}

  async valid(authorization: string | undefined): Promise<boolean> {
    const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    if (!token) return false;
    const [h, p, s] = token.split('.');
    if (!h || !p || !s) return false;
    let header: { alg?: string; kid?: string };
    let claims: { iss?: string; aud?: string | string[]; exp?: number; nbf?: number; oid?: string; azp?: string; appid?: string };
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    } catch {
      return false;
    }
    if (header.alg !== 'RS256' || !header.kid) return false;
    if (typeof claims.iss !== 'string' || !this.issuers.includes(claims.iss)) return false;
    const key = await this.key(claims.iss, header.kid);
    if (!key || !verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) return false;
    const nowS = this.now() / 1000;
    const audiences = [claims.aud].flat();
    const principal = this.principal.toLowerCase();
    const issuedTo = [claims.oid, claims.azp, claims.appid].some((id) => typeof id === 'string' && id.toLowerCase() === principal);
    return audiences.includes(this.audience) && issuedTo
      && typeof claims.exp === 'number' && claims.exp + SKEW_S > nowS
      && (claims.nbf === undefined || claims.nbf - SKEW_S <= nowS);
  }

  private async key(issuer: string, kid: string): Promise<KeyObject | undefined> {
    let known = this.byIssuer.get(issuer);
    if (known === undefined) this.byIssuer.set(issuer, (known = { keys: new Map(), fetchedAt: -Infinity }));
    if (!known.keys.has(kid) && this.now() - known.fetchedAt >= REFETCH_MS) {
      const entry = known;
      entry.pending ??= this.refresh(issuer, entry).finally(() => (entry.pending = undefined));
      await entry.pending.catch(() => {});
    }
    return known.keys.get(kid);
  }

  private async refresh(issuer: string, entry: { keys: Map<string, KeyObject>; fetchedAt: number }): Promise<void> {
    entry.fetchedAt = this.now();
    const config = (await this.fetchJson(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)) as { jwks_uri?: string };
    if (!config.jwks_uri) throw new Error('no jwks_uri');
    const jwks = (await this.fetchJson(config.jwks_uri)) as { keys?: (JsonWebKey & { kid?: string })[] };
    const keys = new Map<string, KeyObject>();
    for (const jwk of jwks.keys ?? []) {
      if (jwk.kid && jwk.kty === 'RSA') keys.set(jwk.kid, createPublicKey({ key: jwk, format: 'jwk' }));
    }
    entry.keys = keys;
  }
}
