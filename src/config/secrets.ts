import { ConfigProblem } from './config';
import { ProxyKeyRing } from '../core/auth';
import { splitKeys } from './config';
import { Logger, RateLimitedWarning, whyUnreachable } from '../core/log';
import { parseNamedKeys } from '../keys/parse';
import { ProxyKey } from '../keys/proxy-key';

/** What the gateway needs of Key Vault: @azure/keyvault-secrets' SecretClient fits it. */
export interface SecretReader {
  getSecret(name: string): Promise<{ value?: string }>;
}

/**
 * Longest one read of a secret may take, the SDK's retries included. The
 * SDK's defaults back off for a minute and more and set no timeout (a vault
 * that never answers, say a private endpoint's name resolving to nowhere,
 * holds a read for minutes), and requests wait on a first read.
 */
export const VAULT_READ_TIMEOUT_MS = 15_000;

/** Key Vault's SecretClient (or anything shaped like it), each read given up after `timeoutMs`. */
export function boundedReader(client: { getSecret(name: string, options?: { abortSignal?: AbortSignal }): Promise<{ value?: string }> }, timeoutMs = VAULT_READ_TIMEOUT_MS): SecretReader {
  return { getSecret: (name) => client.getSecret(name, { abortSignal: AbortSignal.timeout(timeoutMs) }) };
}

export interface SecretNames {
  /** Unnamed proxy keys, comma-separated. */
  readonly proxyKeys: string;
  readonly azureOpenAIKey: string;
  /** Named keys, as PROXY_KEYS; unset = not read. */
  readonly namedKeys?: string;
  /** The Web PubSub connection string, when realtime uses it by access key; unset = not read. */
  readonly webPubSubConnectionString?: string;
}

/** An early refresh for an unknown proxy key happens at most this often per instance. */
export const EARLY_REFRESH_MS = 30_000;
/** How often requests try the vault again while it has never been read. */
const RETRY_UNREAD_MS = 5_000;

/**
 * The proxy keys (unnamed and named) and the Azure OpenAI key, read from Key
 * Vault and re-read every refresh interval in the background, so a rotated
 * secret takes effect on every instance without a restart. When Key Vault
 * cannot be read later, the last good values keep serving with one warning;
 * when it cannot be read at start, nothing is served with a guessed key and
 * /health says why. Bad named-key entries are left out and named on /health.
 */
export class SecretStore {
  private ring = new ProxyKeyRing([]);
  private azureKey: string | undefined;
  private webPubSub: string | undefined;
  private badEntries: readonly ConfigProblem[] = [];
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
    /** The models the gateway serves, to flag named keys that list others. */
    private readonly servedModels?: ReadonlySet<string>,
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

  /** Named-key entries of the last secret read that were left out, by name and field. */
  get entryProblems(): readonly ConfigProblem[] {
    return this.badEntries;
  }

  get azureOpenAIKey(): string | undefined {
    return this.azureKey;
  }

  get keys(): ProxyKeyRing {
    return this.ring;
  }

  /** The Web PubSub connection string from the vault, when it holds one. */
  get webPubSubConnectionString(): string | undefined {
    this.refreshIfDue();
    return this.webPubSub;
  }

  /** The identity of one of the current proxy keys; an unknown key may trigger one early refresh. */
  async identify(key: string): Promise<ProxyKey | undefined> {
    this.refreshIfDue();
    const known = this.ring.identify(key);
    if (known !== undefined) return known;
    return (await this.refreshEarly()) ? this.ring.identify(key) : undefined;
  }

  /**
   * Reads the vault again now, unless that was done in the last
   * EARLY_REFRESH_MS (a key nothing matches yet may mean one just rotated);
   * true when it did.
   */
  async refreshEarly(): Promise<boolean> {
    const now = this.now();
    if (now - this.earlyAt < EARLY_REFRESH_MS) return false;
    this.earlyAt = now;
    await this.refresh();
    return true;
  }

  /**
   * Whether the secrets have been read, trying the vault again first when
   * they never were and the last try is RETRY_UNREAD_MS old (or the refresh
   * interval, if shorter): a first read that failed (a role assignment not
   * yet in effect, as after a first deployment, or the vault briefly down)
   * is retried by the requests that wait on it, not left until a restart.
   */
  async whenUsable(): Promise<boolean> {
    if (this.loaded) return true;
    if (this.pending !== undefined) await this.pending;
    else if (this.now() - this.loadedAt >= Math.min(RETRY_UNREAD_MS, this.refreshMs)) await this.refresh();
    return this.loaded;
  }

  /** Resolves once the secrets are no older than the refresh interval (reading the vault first if they are). */
  async fresh(): Promise<void> {
    if (this.now() - this.loadedAt >= this.refreshMs) await this.refresh();
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
      const namedSecret = this.names.namedKeys;
      const webPubSubSecret = this.names.webPubSubConnectionString;
      const [proxy, named, azure, webPubSub] = await Promise.all([
        this.read(this.names.proxyKeys, namedSecret === undefined),
        namedSecret === undefined ? undefined : this.read(namedSecret, false),
        this.read(this.names.azureOpenAIKey, false),
        webPubSubSecret === undefined ? undefined : this.read(webPubSubSecret, false),
      ]);
      if (proxy === undefined && named === undefined) {
        throw new SecretProblem(`has neither a secret named "${this.names.proxyKeys}" nor one named "${namedSecret}". Create one (comma-separated keys, or named keys as in PROXY_KEYS).`);
      }
      const keys = splitKeys(proxy);
      const parsed = named?.trim() ? parseNamedKeys(named, 'PROXY_KEYS', `(Key Vault secret "${namedSecret}") `, this.servedModels) : { entries: [], problems: [] };
      this.badEntries = parsed.problems;
      if (keys.length === 0 && parsed.entries.length === 0) {
        throw new SecretProblem(`holds no usable proxy key in "${this.names.proxyKeys}"${namedSecret ? ` or "${namedSecret}"` : ''}. Store comma-separated keys, or named keys as in PROXY_KEYS.`);
      }
      this.ring = new ProxyKeyRing(keys, parsed.entries);
      this.azureKey = azure?.trim() || undefined;
      this.webPubSub = webPubSub?.trim() || undefined;
      if (this.loaded && this.failure) this.logger.log('info', { msg: 'Key Vault readable again' });
      this.loaded = true;
      this.loadedAt = this.now();
      this.failure = undefined;
      this.warning.reset();
    } catch (err) {
      // Try again at the next refresh, not on every request.
      this.loadedAt = this.now();
      const message = err instanceof SecretProblem ? err.message : `could not be read (${whyUnreachable(err)}).`;
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
      if (status === 403 && isDisabled(err)) {
        // A disabled secret is one taken out of use: an optional one is as if absent (the identity is used instead).
        if (!required) return undefined;
        throw new SecretProblem(`has the secret "${name}" disabled. Enable it, or name another with PROXY_API_KEY_SECRET_NAME.`);
      }
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

/** Key Vault's 403 for a get of a disabled secret, innererror SecretDisabled (Azure/azure-sdk-for-js#24756), as the SDK's RestError carries it. */
function isDisabled(err: unknown): boolean {
  const error = (err as { details?: { error?: { innerError?: { code?: unknown }; innererror?: { code?: unknown } } } }).details?.error;
  return (error?.innerError ?? error?.innererror)?.code === 'SecretDisabled';
}
