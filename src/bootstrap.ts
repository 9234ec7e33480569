import { loadConfig } from './core/config';
import { Gateway, GatewayDeps } from './core/gateway';
import { JsonLineLogger, Logger } from './core/log';
import { Env } from './core/settings';

/**
 * Builds the gateway from settings, the way both hosts start it: configuration
 * read once, problems logged once (naming the setting, never a value), and an
 * Entra ID credential only when some deployment has no key.
 */
export function createGateway(env: Env, overrides: Partial<GatewayDeps> = {}): Gateway {
  const config = overrides.config ?? loadConfig(env);
  const logger: Logger = overrides.logger ?? new JsonLineLogger();
  for (const p of config.problems) logger.log('error', { msg: 'configuration problem', setting: p.setting, problem: p.message });
  let credential = overrides.credential;
  if (credential === undefined && config.needsIdentity) {
    // Loaded only when needed: @azure/identity adds to cold start.
    const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
    credential = new DefaultAzureCredential();
  }
  return new Gateway({ ...overrides, config, logger, credential });
}
