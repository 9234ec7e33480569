/** @module How the gateway proves itself to Azure OpenAI: a deployment's key, or the identity's Entra ID token. */
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { Deployment } from './deployment';

export const COGNITIVE_SERVICES_SCOPE = 'https://cognitiveservices.azure.com/.default';

export type AuthHeader = readonly [name: string, value: string];

/** Gives the header that authenticates the gateway to a deployment: its key at once, or an Entra ID token. */
export interface UpstreamAuth {
  header(deployment: Deployment): AuthHeader | Promise<AuthHeader>;
}

export type Clock = () => number;

/**
 * Caches one Entra ID token and renews it before it expires, with one renewal
 * in flight at a time, so a burst of requests costs one token request.
 */
export class TokenCache {
  private token?: AccessToken;
  private pending?: Promise<AccessToken>;

  constructor(
    private readonly credential: TokenCredential,
    private readonly scope: string = COGNITIVE_SERVICES_SCOPE,
    private readonly now: Clock = Date.now,
    /** Renew this long before expiry (or at the token's refreshOn, if sooner). */
    private readonly renewBeforeMs = 5 * 60_000,
  ) {}

  async get(): Promise<string> {
    const token = this.token;
    const now = this.now();
    if (token && now < this.renewAt(token)) return token.token;
    if (token && now < token.expiresOnTimestamp - 30_000) {
      // Still valid: renew in the background and serve the current one.
      void this.renew().catch(() => {});
      return token.token;
    }
    return (await this.renew()).token;
  }

  private renewAt(token: AccessToken): number {
    const early = token.expiresOnTimestamp - this.renewBeforeMs;
    return token.refreshAfterTimestamp !== undefined ? Math.min(early, token.refreshAfterTimestamp) : early;
  }

  private renew(): Promise<AccessToken> {
    this.pending ??= this.credential
      .getToken(this.scope)
      .then((token) => {
        if (!token) throw new Error('the credential returned no token');
        this.token = token;
        return token;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }
}

/**
 * The deployment's own key; else, on the default resource, the default key
 * (which Key Vault may have rotated); else the identity's Bearer token.
 */
export class KeyOrTokenAuth implements UpstreamAuth {
  constructor(
    private readonly tokens?: TokenCache,
    /** The current default key, when it is read from Key Vault. */
    private readonly defaultKey?: () => string | undefined,
  ) {}

  header(deployment: Deployment): AuthHeader | Promise<AuthHeader> {
    const key = deployment.usesDefaultKey && this.defaultKey ? this.defaultKey() : deployment.apiKey;
    if (key) return ['api-key', key];
    if (!this.tokens) throw new Error('no key and no identity for this deployment');
    return this.tokens.get().then((token) => ['authorization', `Bearer ${token}`] as const);
  }
}
