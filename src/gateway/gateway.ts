/** @module The gateway: every part a request needs, built once and handed to the handlers. */
import type { TokenCredential } from '@azure/core-auth';
import { ConfigProblem, GatewayConfig } from '../config/config';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { modelNotFound, unavailable } from '../core/errors';
import { Deployment } from '../azure-openai/deployment';
import { BodyBudget } from '../bodies/budget';
import { multipartLimit } from '../bodies/multipart';
import { AzureOpenAI } from '../azure-openai/upstream';
import { SecretStore } from '../config/secrets';
import { ProxyKeyRing, authenticate, presentedKey } from '../core/auth';
import { ProxyKey, UNNAMED_KEY } from '../keys/proxy-key';
import { Limiter } from '../limits/limiter';
import { LimitStore } from '../limits/store';
import { MemoryLimitStore } from '../limits/memory-store';
import { StorageGuard } from '../core/storage-guard';
import { Balancer, CursorSource, HealthPublisher, LocalCursor } from '../balancer/balancer';
import { HealthView } from '../balancer/cooldowns';
import { SharedTidy, SharedView } from '../balancer/shared-state';
import { SharedHolders, StoredHolders } from '../balancer/holders';
import { DeploymentStats } from '../balancer/stats';
import { JsonLineLogger, Logger, RateLimitedWarning } from '../core/log';
import { UndiciUpstream, UpstreamClient } from '../azure-openai/client';
import { KeyOrTokenAuth, TokenCache, UpstreamAuth } from '../azure-openai/auth';
import { Readiness } from './readiness';

/** The outside world, injectable so tests swap real things for stand-ins without mocking modules. */
export interface GatewayDeps {
  readonly config: GatewayConfig;
  readonly upstream?: UpstreamClient;
  readonly upstreamAuth?: UpstreamAuth;
  /** Used for Entra ID tokens when a deployment has no key. */
  readonly credential?: TokenCredential;
  readonly cursor?: CursorSource;
  readonly health?: HealthView;
  readonly publisher?: HealthPublisher;
  readonly stats?: DeploymentStats;
  /** Where every instance's view of the deployments is read, when they share one. */
  readonly sharedView?: SharedView;
  /** Where instances share which deployment holds each stored response. */
  readonly sharedHolders?: SharedHolders;
  /** Where the shared store's stale rows are deleted, when there is one. */
  readonly sharedTidy?: SharedTidy;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Where the keys' limits and usage are shared; this process's own memory when unset. */
  readonly limitStore?: LimitStore;
  /** The shared table's outage state, one for the balancer and the limits. */
  readonly storageGuard?: StorageGuard;
  /** Proxy keys and the Azure OpenAI key from Key Vault, when KEY_VAULT_URL is set. */
  readonly secrets?: SecretStore;
  /** Extra trust for Azure service endpoints (a test's own certificate authority). */
  readonly serviceTls?: { readonly ca: Buffer };
  /** The host also serves /v1/realtime as a direct WebSocket (the local host does; Functions cannot). */
  readonly directRealtime?: boolean;
  /** Whether the balancer's storage answers (undefined) or why not; set when storage is shared. */
  readonly probeStorage?: () => Promise<string | undefined>;
  /** Realtime sessions over Web PubSub, made from the finished gateway (bootstrap passes it when configured). */
  readonly realtime?: (gateway: Gateway) => RealtimeSessions;
}

/** A realtime session a client may now connect to. */
export interface StartedSession {
  readonly sessionId: string;
  readonly model: string;
  /** The short-lived token that lets the client connect (also in `url`). */
  readonly token: string;
  readonly url: string;
  /** When the token expires, in seconds since the epoch. */
  readonly expiresAt: number;
}

/** Realtime sessions carried by Azure Web PubSub: what the realtime routes and the sweep timer use. */
export interface RealtimeSessions {
  /**
   * A token and URL for a new session on a realtime model the key may use
   * (validated here); `settings` (a session object) is applied when its
   * client connects.
   */
  start(model: unknown, ttlSeconds: number, key: ProxyKey | undefined, settings?: Record<string, unknown>): Promise<StartedSession>;
  /** One of Web PubSub's event posts. */
  handleEvent(req: GatewayRequest): Promise<GatewayResponse>;
  /** Takes over sessions whose owning instance was lost. */
  sweep(): Promise<void>;
  /** Hands this instance's sessions over to the others; resolves once that is recorded (or after a short wait). */
  close(): Promise<void>;
}

/** How long a resource has to answer the readiness check. */
const PROBE_TIMEOUT_MS = 3000;
/** The settings whose problems can leave a model out. */
const MODEL_SETTINGS = new Set(['MODEL_DEPLOYMENTS', 'AZURE_OPENAI_ENDPOINT', 'AZURE_OPENAI_URL']);
const NO_KEYS = 'The gateway cannot check proxy keys right now (none configured, or Key Vault unreadable). Its operator should check /health.';

/** Everything a request handler needs, built once per process (or per instance in tests). */
export class Gateway {
  readonly config: GatewayConfig;
  /** Request bodies in memory, all requests together. */
  readonly bodies: BodyBudget;
  /** The most any route reads of one body: a longer declared length is refused unread. */
  readonly largestBody: number;
  readonly keys: ProxyKeyRing;
  readonly balancer: Balancer;
  /** Which deployment holds each stored response. */
  readonly holders: StoredHolders;
  readonly limits: Limiter;
  readonly azure: AzureOpenAI;
  readonly logger: Logger;
  readonly now: () => number;
  readonly stats: DeploymentStats;
  readonly sharedView?: SharedView;
  readonly sharedTidy?: SharedTidy;
  readonly secrets?: SecretStore;
  readonly credential?: TokenCredential;
  readonly serviceTls?: { readonly ca: Buffer };
  /** Whether the cursor and health are shared with other instances. */
  readonly shared: boolean;
  readonly directRealtime: boolean;
  /** Whether the Azure OpenAI resources and the storage answer, checked at most every 30 s. */
  readonly readiness: Readiness;
  /** Realtime sessions over Web PubSub; undefined when Web PubSub is not configured. */
  readonly realtime?: RealtimeSessions;

  constructor(deps: GatewayDeps) {
    this.shared = deps.cursor !== undefined && !(deps.cursor instanceof LocalCursor);
    this.config = deps.config;
    this.bodies = new BodyBudget(deps.config.maxInflightBodyBytes);
    this.largestBody = Math.max(deps.config.maxRequestBodyBytes, multipartLimit(deps.config.maxAudioFileBytes), multipartLimit(deps.config.maxImageUploadBytes));
    this.now = deps.now ?? Date.now;
    this.logger = deps.logger ?? new JsonLineLogger();
    this.stats = deps.stats ?? new DeploymentStats(this.now);
    this.sharedView = deps.sharedView;
    this.sharedTidy = deps.sharedTidy;
    this.secrets = deps.secrets;
    this.credential = deps.credential;
    this.serviceTls = deps.serviceTls;
    this.directRealtime = deps.directRealtime ?? false;
    this.keys = new ProxyKeyRing(deps.config.proxyKeys, deps.config.namedKeys);
    this.holders = new StoredHolders(deps.sharedHolders);
    for (const [model, pool] of deps.config.models) {
      for (const d of pool) {
        if (!this.byId.has(d.id)) this.byId.set(d.id, d);
        this.modelsByDeployment.set(d.id, [...(this.modelsByDeployment.get(d.id) ?? []), model]);
      }
    }
    const secrets = deps.secrets;
    this.azure = new AzureOpenAI({
      client: deps.upstream ?? new UndiciUpstream({ proxy: deps.config.upstreamProxy, proxyConnectTimeoutMs: deps.config.upstreamHeadersTimeoutMs }),
      proxy: deps.config.upstreamProxy,
      auth: deps.upstreamAuth ?? new KeyOrTokenAuth(
        deps.credential ? new TokenCache(deps.credential, undefined, this.now) : undefined,
        secrets ? () => secrets.azureOpenAIKey : undefined,
      ),
      credentialWarning: new RateLimitedWarning(this.logger, 60_000, this.now),
      headersTimeoutMs: deps.config.upstreamHeadersTimeoutMs,
      idleTimeoutMs: deps.config.upstreamIdleTimeoutMs,
      now: this.now,
      onBrokeOff: (d, reason) => {
        if (reason !== 'aborted') this.balancer.brokeOff(d, reason);
      },
    });
    this.readiness = new Readiness({
      config: deps.config,
      // The credential not before Key Vault has given the key (or said why not, on /health already): it would be checked without it.
      probeUpstream: (d) => this.azure.probe(d, PROBE_TIMEOUT_MS, this.secrets === undefined || this.secrets.usable),
      probeStorage: deps.probeStorage,
      now: this.now,
    });
    this.limits = new Limiter({
      store: deps.limitStore ?? new MemoryLimitStore(),
      shared: deps.limitStore !== undefined,
      logger: this.logger,
      now: this.now,
      timeoutMs: deps.config.storageTimeoutMs,
      syncMs: deps.config.limitsSyncMs,
      guard: deps.storageGuard,
    });
    this.balancer = new Balancer({
      cursor: deps.cursor ?? new LocalCursor(),
      health: deps.health ?? new HealthView(this.now, deps.config.maxCooldownMs),
      publisher: deps.publisher,
      stats: this.stats,
      now: this.now,
      failureCooldownMs: deps.config.failureCooldownMs,
    });
    // Last: it is made from the gateway built so far.
    this.realtime = deps.realtime?.(this);
  }

  /**
   * The deployments that serve a model, or OpenAI's 404. A model the key may
   * not use gets the very same 404, so keys cannot find out what else exists.
   */
  pool(model: string, key?: ProxyKey): readonly Deployment[] {
    const pool = this.config.models.get(model);
    if (pool === undefined || (key !== undefined && !key.mayUse(model))) throw modelNotFound(model, this.modelsMisconfigured);
    return pool;
  }

  /** Whether a model may have been left out of the configuration for a problem (then a 404 says so). */
  private get modelsMisconfigured(): boolean {
    return this.config.problems.some((p) => MODEL_SETTINGS.has(p.setting));
  }

  private readonly byId = new Map<string, Deployment>();
  private readonly modelsByDeployment = new Map<string, string[]>();

  /** A configured deployment by its id (the first of them, when models share one name on one resource). */
  deployment(id: string): Deployment | undefined {
    return this.byId.get(id);
  }

  /** The models whose pools hold a deployment, those the key may use. */
  modelsWith(deploymentId: string, key?: ProxyKey): string[] {
    return (this.modelsByDeployment.get(deploymentId) ?? []).filter((m) => key?.mayUse(m) ?? true);
  }

  /** Settings that are wrong, Key Vault's included. */
  problems(): ConfigProblem[] {
    const problems = [...this.config.problems];
    const fromVault = this.secrets?.problem;
    if (fromVault) problems.push(fromVault);
    if (this.secrets) problems.push(...this.secrets.entryProblems);
    return problems;
  }

  private readonly identifyKey = (key: string) => this.keys.identify(key);

  /**
   * The identity of the request's proxy key: OpenAI's 401 without one (or a
   * 503 when no key can be checked). A value, not a promise, unless Key Vault
   * is in play: most requests have nothing to wait for here.
   */
  authenticate(req: GatewayRequest): ProxyKey | Promise<ProxyKey> {
    if (this.secrets !== undefined) return this.authenticateFromVault(req, this.secrets);
    if (this.keys.size === 0) throw unavailable(NO_KEYS);
    return authenticate(req, this.identifyKey);
  }

  private async authenticateFromVault(req: GatewayRequest, secrets: SecretStore): Promise<ProxyKey> {
    if (!secrets.usable && !(await secrets.whenUsable())) throw unavailable(NO_KEYS);
    const key = presentedKey(req);
    const identity = key === undefined ? undefined : await secrets.identify(key);
    return authenticate(req, () => identity);
  }

  /**
   * A key by its name as now configured (Key Vault's current secret included),
   * for a session that outlives its request: '' is the unnamed keys; a name no
   * longer configured keeps counting its usage, with no limits.
   */
  keyNamed(name: string): ProxyKey {
    if (name === '') return UNNAMED_KEY;
    return (this.secrets?.keys ?? this.keys).named(name) ?? new ProxyKey(name, undefined, {}, false);
  }

  async close(): Promise<void> {
    this.limits.close();
    this.azure.close();
    await this.realtime?.close();
  }
}
