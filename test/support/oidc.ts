import { createSign, generateKeyPairSync, KeyObject } from 'node:crypto';
import http from 'node:http';
import { AddressInfo } from 'node:net';

/**
 * An Entra ID stand-in for one tenant: OpenID discovery and a JWKS at the
 * documented paths for both token versions, and RS256 tokens like those a
 * managed identity gets. Tokens are v1 unless asked otherwise, as Entra ID
 * issues them for a resource whose app registration does not ask for v2
 * (accessTokenAcceptedVersion unset), with v1's issuer
 * (https://sts.windows.net/<tenant>/) and `appid` where v2 has its issuer
 * (.../v2.0) and `azp` (Entra ID docs, access token claims reference).
 */
export class OidcStandIn {
  private readonly privateKey: KeyObject;
  private readonly jwk: Record<string, unknown>;
  private server?: http.Server;
  private address = '';
  readonly kid = 'test-key-1';
  /** The object id tokens are issued to unless a test names another principal. */
  static readonly PRINCIPAL = '6f1c2a9e-0d3b-4c1e-9a8f-2b7d5e4c3a10';

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.jwk = { ...publicKey.export({ format: 'jwk' }), kid: this.kid, use: 'sig', alg: 'RS256' };
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const send = (v: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (req.url === '/tenant/v2.0/.well-known/openid-configuration') return send({ issuer: this.issuer, jwks_uri: `${this.address}/tenant/discovery/v2.0/keys` });
      if (req.url === '/tenant/.well-known/openid-configuration') return send({ issuer: this.issuerV1, jwks_uri: `${this.address}/tenant/discovery/keys` });
      if (req.url === '/tenant/discovery/v2.0/keys' || req.url === '/tenant/discovery/keys') return send({ keys: [this.jwk] });
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.address = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The v2 issuer. */
  get issuer(): string {
    return `${this.address}/tenant/v2.0`;
  }

  /** The v1 issuer (on Entra ID, https://sts.windows.net/<tenant>/). */
  get issuerV1(): string {
    return `${this.address}/tenant/`;
  }

  /** A token for the audience, issued (by default) to the principal `oid`, as an app-only managed identity token is; v1 unless `version` is 2. */
  issue(audience: string, options: { lifetimeS?: number; issuer?: string; signWith?: KeyObject; oid?: string; version?: 1 | 2 } = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const oid = options.oid ?? OidcStandIn.PRINCIPAL;
    const v2 = options.version === 2;
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: this.kid })).toString('base64url');
    const issuedTo = v2 ? { azp: `${oid}-client`, ver: '2.0' } : { appid: `${oid}-client`, ver: '1.0' };
    const payload = Buffer.from(JSON.stringify({ iss: options.issuer ?? (v2 ? this.issuer : this.issuerV1), aud: audience, iat: now, nbf: now, exp: now + (options.lifetimeS ?? 3600), sub: oid, oid, ...issuedTo, idtyp: 'app' })).toString('base64url');
    const sig = createSign('sha256').update(`${header}.${payload}`).sign(options.signWith ?? this.privateKey).toString('base64url');
    return `${header}.${payload}.${sig}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
