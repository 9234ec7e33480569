import { ConfigProblem } from './config';
import { ProxyKeyRing } from '../core/auth';
import { splitKeys } from './config';
import { Logger, RateLimitedWarning, describeError } from '../core/log';

/** What the gateway needs of Key Vault: @azure/keyvault-secrets' SecretClient fits it. */
export interface SecretReader {
  getSecret(name: string): Promise<{ value?: string }>;
}

export interface SecretNames {
  readonly proxyKeys: string;
  readonly azureOpenAIKey: string;
}

/** An early refresh for an unknown proxy key happens at most this often per instance. */
export const EARLY_REFRESH_MS = 30_000;

/**
 * The proxy keys and the Azure OpenAI key, read from Key Vault and re-read
 * every refresh interval in the background, so a rotated secret takes effect
 * on every instance without a restart. When Key Vault cannot be read later,
 * the last good values keep serving with one warning; when it cannot be read
 * at start, nothing is served with a guessed key and /health says why.
 */
export class SecretStore {
  private ring = new ProxyKeyRing([]);
  private azureKey: string | undefined;
  private loaded = false;
  private loadedAt = -Infinity;
  private earlyAt = -Infinity;
  private pending?: Promise<void>;
  private failure?: ConfigProblem;
  private readonly warning: RateLimitedWarning;
  readonly ready: Promise<void>;

  constructor(
    private readonly reader: SecretReader,
    private readonly names: SecretNames,
    private readonly refreshMs: number,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.warning = new RateLimitedWarning(logger, 10 * 60_000, now);
    this.ready = this.refresh();
  }

  /** True once both secrets have been read at least once. */
  get usable(): boolean {
    return this.loaded;
  }

  /** Why the secrets could not be read at start, for /health; undefined once they were. */
  get problem(): ConfigProblem | undefined {
    return this.loaded ? undefined : this.failure;
  }

  get azureOpenAIKey(): string | undefined {
    return this.azureKey;
  }

  /** Whether the key is one of the current proxy keys; an unknown key may trigger one early refresh. */
  async accepts(key: string): Promise<boolean> {
    this.refreshIfDue();
    if (this.ring.matches(key)) return true;
    const now = this.now();
    if (now - this.earlyAt < EARLY_REFRESH_MS) return false;
    this.earlyAt = now;
    await this.refresh();
    return this.ring.matches(key);
  }

  refreshIfDue(): void {
    if (this.now() - this.loadedAt >= this.refreshMs) void this.refresh();
  }

  private refresh(): Promise<void> {
    this.pending ??= this.load().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async load(): Promise<void> {
    try {
      const [proxy, azure] = await Promise.all([
        this.read(this.names.proxyKeys, true),
        this.read(this.names.azureOpenAIKey, false),
      ]);
      const keys = splitKeys(proxy);
      if (keys.length === 0) throw new SecretProblem(`the secret "${this.names.proxyKeys}" holds no key. Store one or more comma-separated proxy keys in it.`);
      this.ring = new ProxyKeyRing(keys);
      this.azureKey = azure?.trim() || undefined;
      if (this.loaded && this.failure) this.logger.log('info', { msg: 'Key Vault readable again' });
      this.loaded = true;
      this.loadedAt = this.now();
      this.failure = undefined;
      this.warning.reset();
    } catch (err) {
      // Try again at the next refresh, not on every request.
      this.loadedAt = this.now();
      const message = err instanceof SecretProblem ? err.message : `could not be read (${describeError(err)}).`;
      this.failure = { setting: 'KEY_VAULT_URL', message };
      this.warning.warn({ msg: this.loaded ? 'Key Vault unreachable; serving the last secrets read' : 'Key Vault unreadable; no request can be served until it is', problem: message });
    }
  }

  /** A secret's value; a missing optional one is undefined (the managed identity is used instead). */
  private async read(name: string, required: boolean): Promise<string | undefined> {
    try {
      return (await this.reader.getSecret(name)).value;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404 && !required) return undefined;
      if (status === 404) throw new SecretProblem(`has no secret named "${name}". Create it, or name another with PROXY_API_KEY_SECRET_NAME.`);
      if (status === 401 || status === 403) {
        throw new SecretProblem(`refused to let the app read "${name}" (${status}). Grant the app's managed identity the "Key Vault Secrets User" role on the vault.`);
      }
      throw err;
    }
  }
}

class SecretProblem extends Error {}
