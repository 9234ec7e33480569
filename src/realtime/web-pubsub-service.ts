/** @module Azure Web PubSub as the gateway calls it: REST sends and checks, client tokens, and the access key that may rotate. */
import type { TokenCredential } from '@azure/core-auth';
import { AzureKeyCredential, WebPubSubServiceClient } from '@azure/web-pubsub';
import { WebPubSubSettings } from '../config/config';
import { tlsOptions } from '../config/service-tls';

export interface Token {
  readonly token: string;
  /** The client URL, the token in its query. */
  readonly url: string;
}

/** Where the current connection string comes from, when it may change (Key Vault). */
export interface ConnectionStringSource {
  /** The latest value read. */
  current(): string | undefined;
  /** Resolves once the value is no older than the source's refresh interval. */
  fresh(): Promise<void>;
}

/**
 * The service as the gateway uses it, by access key or by identity. By key,
 * the key can rotate without a restart: before each call the connection
 * string is taken from its source, read again if it is older than the
 * source's refresh interval, and the previous key still checks event
 * signatures until the next change (Web PubSub signs every event with both
 * of its keys, so holding either one is enough).
 */
export class WebPubSubService {
  readonly client: WebPubSubServiceClient;
  readonly origin: string;
  private readonly keyCredential?: AzureKeyCredential;
  private keys: string[] = [];
  private lastConnectionString?: string;

  constructor(readonly settings: WebPubSubSettings, credential: TokenCredential | undefined, serviceTls: { readonly ca: Buffer } | undefined, private readonly source?: ConnectionStringSource) {
    const options = { allowInsecureConnection: settings.mode === 'key', ...tlsOptions(serviceTls) };
    if (settings.mode === 'key') {
      this.keyCredential = new AzureKeyCredential(settings.accessKey);
      this.keys = [settings.accessKey];
      this.lastConnectionString = settings.connectionString;
      this.client = new WebPubSubServiceClient(settings.endpoint, this.keyCredential, settings.hub, options);
    } else {
      if (!credential) throw new Error('Web PubSub by identity needs a credential');
      this.client = new WebPubSubServiceClient(settings.endpoint, credential, settings.hub, options);
    }
    this.origin = new URL(this.client.endpoint).host;
  }

  /** The access keys an event's signature may be made with: the current one first. */
  signingKeys(): readonly string[] {
    this.follow();
    return this.keys;
  }

  async sendToConnection(connectionId: string, text: string): Promise<void> {
    await this.fresh();
    await this.client.sendToConnection(connectionId, text, { contentType: 'text/plain' });
  }

  async sendToGroup(group: string, text: string): Promise<void> {
    await this.fresh();
    await this.client.group(group).sendToAll(text, { contentType: 'text/plain' });
  }

  async groupExists(group: string): Promise<boolean> {
    await this.fresh();
    return this.client.groupExists(group);
  }

  async connectionExists(connectionId: string): Promise<boolean> {
    await this.fresh();
    return this.client.connectionExists(connectionId);
  }

  async closeConnection(connectionId: string, reason: string): Promise<void> {
    await this.fresh();
    await this.client.closeConnection(connectionId, { reason });
  }

  async token(userId: string, minutes: number, roles?: string[]): Promise<Token> {
    await this.fresh();
    const { token, url } = await this.client.getClientAccessToken({ userId, roles, expirationTimeInMinutes: minutes });
    return { token, url };
  }

  private async fresh(): Promise<void> {
    if (!this.keyCredential || !this.source) return;
    await this.source.fresh();
    this.follow();
  }

  /** Takes a rotated key from the source; the endpoint cannot change without a restart. */
  private follow(): void {
    if (!this.keyCredential || !this.source) return;
    const current = this.source.current();
    if (!current || current === this.lastConnectionString) return;
    this.lastConnectionString = current;
    const key = /(?:^|;)\s*AccessKey=([^;]+)/i.exec(current)?.[1]?.trim();
    if (!key || key === this.keys[0]) return;
    this.keyCredential.update(key);
    this.keys = [key, this.keys[0]];
  }
}
