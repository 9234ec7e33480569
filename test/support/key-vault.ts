import https from 'node:https';
import { AddressInfo } from 'node:net';
import { selfSignedCert } from './tls';
import { tlsOptions } from '../../src/config/service-tls';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { SecretClient } from '@azure/keyvault-secrets';

/**
 * A local Key Vault that follows the documented REST protocol closely enough
 * for the real SecretClient: HTTPS with a certificate only the test trusts,
 * challenge-based auth (401 with WWW-Authenticate naming the authority and
 * the vault resource, then a Bearer token), GET /secrets/{name}, and Key
 * Vault's error bodies.
 */
export class KeyVaultStandIn {
  private readonly secrets = new Map<string, { value: string; version: number }>();
  private server?: https.Server;
  readonly cert: Buffer;
  private readonly key: Buffer;
  /** Reads of each secret that carried a valid token. */
  readonly reads = new Map<string, number>();
  /** Names the app's identity may not read (answered 403). */
  readonly forbidden = new Set<string>();
  /** Secrets disabled in the vault: a get is refused with 403 SecretDisabled. */
  readonly disabled = new Set<string>();
  /** When true, every request is answered 503, as an unreachable vault behind a gateway would. */
  down = false;
  /** When true, requests are taken and never answered: a vault whose address leads nowhere. */
  hang = false;
  readonly credential: TestCredential;

  constructor() {
    ({ cert: this.cert, key: this.key } = selfSignedCert());
    this.credential = new TestCredential('https://vault.azure.net/.default');
  }

  set(name: string, value: string): void {
    this.secrets.set(name, { value, version: (this.secrets.get(name)?.version ?? 0) + 1 });
  }

  delete(name: string): void {
    this.secrets.delete(name);
  }

  async start(): Promise<string> {
    this.server = https.createServer({ cert: this.cert, key: this.key }, (req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    return `https://localhost:${(this.server!.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The real SecretClient, trusting this stand-in's certificate and only for this client. */
  client(): SecretClient {
    return new SecretClient(this.url, this.credential, {
      // The challenge names vault.azure.net, which is not this host.
      disableChallengeResourceVerification: true,
      retryOptions: { maxRetries: 0 },
      ...tlsOptions({ ca: this.cert }),
    });
  }

  private handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    if (this.hang) return;
    if (this.down) return send(503, { error: { code: 'ServiceUnavailable', message: 'The service is unavailable.' } });
    const url = new URL(req.url ?? '/', this.url);
    if (!url.searchParams.get('api-version')) return send(400, { error: { code: 'BadParameter', message: 'The request URI contains an invalid API version.' } });
    const auth = req.headers.authorization;
    if (!auth?.startsWith('Bearer ') || !this.credential.isValid(auth.slice(7))) {
      return send(401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }, {
        'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001", resource="https://vault.azure.net"',
      });
    }
    const match = /^\/secrets\/([0-9A-Za-z-]+)\/?$/.exec(url.pathname);
    if (req.method !== 'GET' || !match) return send(404, { error: { code: 'NotFound', message: 'Not found' } });
    const name = match[1];
    if (this.forbidden.has(name)) {
      return send(403, { error: { code: 'Forbidden', message: `Caller is not authorized to perform action on resource.`, innererror: { code: 'ForbiddenByRbac' } } });
    }
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
    if (this.disabled.has(name)) {
      // What Key Vault answers a get of a disabled secret (Azure/azure-sdk-for-js#24756).
      return send(403, { error: { code: 'Forbidden', message: 'Operation get is not allowed on a disabled secret.', innererror: { code: 'SecretDisabled' } } });
    }
    const secret = this.secrets.get(name);
    if (!secret) return send(404, { error: { code: 'SecretNotFound', message: `A secret with (name/id) ${name} was not found in this key vault.` } });
    const now = Math.floor(Date.now() / 1000);
    send(200, { value: secret.value, id: `${this.url}/secrets/${name}/${secret.version.toString(16).padStart(32, '0')}`, attributes: { enabled: true, created: now, updated: now, recoveryLevel: 'Recoverable+Purgeable' } });
  }
}

/** Issues tokens for one scope, as an identity would, and lets the service it stands for check them. */
export class TestCredential implements TokenCredential {
  private readonly issued = new Map<string, number>();
  requests = 0;

  constructor(readonly scope: string, private readonly lifetimeMs = 3600_000, private readonly now: () => number = Date.now) {}

  async getToken(scopes: string | string[]): Promise<AccessToken> {
    const asked = [scopes].flat();
    if (!asked.includes(this.scope)) throw new Error(`this test identity has no access to ${asked.join(' ')}`);
    this.requests++;
    const token = `test-token-${this.requests}-${Math.random().toString(36).slice(2)}`;
    const expiresOnTimestamp = this.now() + this.lifetimeMs;
    this.issued.set(token, expiresOnTimestamp);
    return { token, expiresOnTimestamp };
  }

  isValid(token: string): boolean {
    const expires = this.issued.get(token);
    return expires !== undefined && expires > this.now();
  }
}
