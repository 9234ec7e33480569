import type { TokenCredential } from '@azure/core-auth';
import { GatewayConfig } from './config';
import { ProxyKeyRing } from './auth';
import { Balancer, CursorSource, HealthPublisher, LocalCursor } from './balancer';
import { HealthView } from './health';
import { SharedView } from './shared-state';
import { DeploymentStats } from './stats';
import { JsonLineLogger, Logger, RateLimitedWarning } from './log';
import { NodeHttpUpstream, UpstreamClient } from './upstream';
import { KeyOrTokenAuth, TokenCache, UpstreamAuth } from './upstream-auth';

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
  readonly logger?: Logger;
  readonly now?: () => number;
}

/** Everything a request handler needs, built once per process (or per instance in tests). */
export class Gateway {
  readonly config: GatewayConfig;
  readonly keys: ProxyKeyRing;
  readonly balancer: Balancer;
  readonly upstream: UpstreamClient;
  readonly upstreamAuth: UpstreamAuth;
  readonly logger: Logger;
  readonly now: () => number;
  readonly stats: DeploymentStats;
  readonly sharedView?: SharedView;
  /** Upstream credential failures repeat per request; one warning per minute is enough. */
  readonly credentialWarning: RateLimitedWarning;
  /** Whether the cursor and health are shared with other instances. */
  readonly shared: boolean;

  constructor(deps: GatewayDeps) {
    this.shared = deps.cursor !== undefined && !(deps.cursor instanceof LocalCursor);
    this.config = deps.config;
    this.now = deps.now ?? Date.now;
    this.logger = deps.logger ?? new JsonLineLogger();
    this.stats = deps.stats ?? new DeploymentStats(this.now);
    this.sharedView = deps.sharedView;
    this.credentialWarning = new RateLimitedWarning(this.logger, 60_000, this.now);
    this.keys = new ProxyKeyRing(deps.config.proxyKeys);
    this.upstream = deps.upstream ?? new NodeHttpUpstream();
    this.upstreamAuth = deps.upstreamAuth ?? new KeyOrTokenAuth(deps.credential ? new TokenCache(deps.credential, undefined, this.now) : undefined);
    this.balancer = new Balancer({
      cursor: deps.cursor ?? new LocalCursor(),
      health: deps.health ?? new HealthView(this.now),
      publisher: deps.publisher,
      stats: this.stats,
      now: this.now,
      failureCooldownMs: deps.config.failureCooldownMs,
    });
  }

  close(): void {
    this.upstream.close();
  }
}
