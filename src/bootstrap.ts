import type { TokenCredential } from '@azure/core-auth';
import { TableClient } from '@azure/data-tables';
import { GatewayConfig, StorageTarget, loadConfig } from './config/config';
import { Gateway, GatewayDeps } from './gateway/gateway';
import { HealthView } from './balancer/cooldowns';
import { JsonLineLogger, Logger } from './core/log';
import { StorageGuard } from './core/storage-guard';
import { Env } from './config/settings';
import { SharedBalancerState } from './balancer/shared-state';
import { TableBalancerStore } from './balancer/table-store';
import { tlsOptions } from './config/service-tls';
import { DeploymentStats } from './balancer/stats';
import { SecretStore, boundedReader } from './config/secrets';
import { TableLimitStore } from './limits/table-store';
import { RealtimeHub } from './realtime/hub';
import { MemorySessionStore, TableSessionStore } from './realtime/session-store';
import { WebPubSubService } from './realtime/web-pubsub-service';
import { IdentityCheck, SignatureCheck } from './realtime/web-pubsub-events';
import { EntraTokenValidator } from './realtime/event-auth';

/**
 * Builds the gateway from settings, the way both hosts start it: configuration
 * read once, problems logged once (naming the setting, never a value), an
 * Entra ID credential only where something needs it, the balancer and the
 * keys' limits shared through Table Storage when a storage account is
 * configured, and realtime sessions over Web PubSub when it is configured.
 */
export function createGateway(env: Env, overrides: Partial<GatewayDeps> = {}): Gateway {
  const config = overrides.config ?? loadConfig(env);
  const logger: Logger = overrides.logger ?? new JsonLineLogger();
  const now = overrides.now ?? Date.now;
  for (const p of config.problems) logger.log('error', { msg: 'configuration problem', setting: p.setting, problem: p.message });

  let credential = overrides.credential;
  const identity = (): TokenCredential => {
    // Loaded only when needed: @azure/identity adds to cold start.
    const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
    credential ??= new DefaultAzureCredential({ managedIdentityClientId: config.managedIdentityClientId });
    return credential;
  };
  if (config.needsIdentity) identity();

  let shared: Partial<GatewayDeps> = {};
  const storage = config.balancerStorage;
  const table = storage === undefined ? undefined : tableClient(config, storage, identity, overrides.serviceTls);
  const storageGuard = overrides.storageGuard ?? (table === undefined ? undefined : new StorageGuard({
    logger,
    now,
    timeoutMs: config.storageTimeoutMs,
    retryMs: 5000,
    downMessage: 'table storage unavailable; this instance balances and enforces key limits alone until it answers',
    upMessage: 'table storage reachable again; the cursor, health and key limits are shared again',
  }));
  if (overrides.cursor === undefined && table !== undefined) {
    const health = overrides.health ?? new HealthView(now, config.maxCooldownMs);
    const stats = overrides.stats ?? new DeploymentStats(now);
    const state = sharedState(config, table, health, stats, logger, now, storageGuard);
    shared = { cursor: state, publisher: state, sharedView: state, sharedHolders: state, sharedTidy: state, health, stats, probeStorage: () => state.probe() };
  }
  const limitStore = overrides.limitStore ?? (table === undefined ? undefined : new TableLimitStore(table));
  let secrets = overrides.secrets;
  if (secrets === undefined && config.keyVault !== undefined) {
    const { SecretClient } = require('@azure/keyvault-secrets') as typeof import('@azure/keyvault-secrets');
    const kv = config.keyVault;
    const webPubSubConnectionString = config.webPubSub?.mode === 'key' ? kv.webPubSubSecret : undefined;
    secrets = new SecretStore(boundedReader(new SecretClient(kv.url, identity())), { proxyKeys: kv.proxyKeysSecret, namedKeys: kv.namedKeysSecret, azureOpenAIKey: kv.azureOpenAIKeySecret, webPubSubConnectionString }, kv.refreshMs, logger, now, new Set(config.models.keys()));
  }
  const realtime = overrides.realtime ?? (config.webPubSub ? (g: Gateway) => realtimeHub(g, config, identity, secrets, table) : undefined);
  const gateway = new Gateway({ ...shared, ...overrides, config, logger, credential, secrets, limitStore, storageGuard, realtime });
  // The first readiness check starts now, so /health has an answer when first asked.
  void gateway.readiness.check();
  return gateway;
}

/**
 * Realtime over Web PubSub: the service by key (rotating with the vault's
 * copy of the connection string) or by identity, the check each event must
 * pass, and where sessions' leases live: the balancer's table when there is
 * storage, else this process (one instance, no resume).
 */
function realtimeHub(gateway: Gateway, config: GatewayConfig, identity: () => TokenCredential, secrets: SecretStore | undefined, table: TableClient | undefined): RealtimeHub {
  const settings = config.webPubSub!;
  const credential = settings.mode === 'identity' ? gateway.credential ?? identity() : undefined;
  const source = secrets && { current: () => secrets.webPubSubConnectionString, fresh: () => secrets.fresh() };
  const service = new WebPubSubService(settings, credential, gateway.serviceTls, source);
  const check = settings.mode === 'key'
    ? new SignatureCheck(() => service.signingKeys(), secrets ? () => secrets.refreshEarly() : undefined)
    : new IdentityCheck(new EntraTokenValidator(settings.eventIssuers, settings.eventAudience, settings.eventPrincipal, undefined, gateway.now));
  const store = table ? new TableSessionStore(table) : new MemorySessionStore();
  return new RealtimeHub(gateway, { service, check, store, leaseMs: config.realtimeLeaseMs });
}

/** The table every instance shares: the balancer's cursor and health, and the keys' limits and usage. */
function tableClient(config: GatewayConfig, target: StorageTarget, identity: () => TokenCredential, serviceTls?: { readonly ca: Buffer }): TableClient {
  return 'connectionString' in target
    ? TableClient.fromConnectionString(target.connectionString, config.balancerTable, { allowInsecureConnection: /127\.0\.0\.1|localhost|usedevelopmentstorage/i.test(target.connectionString) })
    : new TableClient(target.tableServiceUri, config.balancerTable, identity(), tlsOptions(serviceTls));
}

export function sharedState(
  config: GatewayConfig,
  table: TableClient,
  health: HealthView,
  stats: DeploymentStats,
  logger: Logger,
  now: () => number,
  guard?: StorageGuard,
): SharedBalancerState {
  return new SharedBalancerState({
    store: new TableBalancerStore(table),
    health,
    stats,
    logger,
    now,
    blockTarget: config.balancerBlockSize,
    timeoutMs: config.storageTimeoutMs,
    refreshMs: config.healthRefreshMs,
    guard,
  });
}
