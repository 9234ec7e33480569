/** @module Which realtime model a session may use, and Azure's socket for it opened through the balancer. */
import { TryRecord } from '../balancer/balancer';
import { UpstreamSocket } from '../azure-openai/realtime-socket';
import { badRequest, clip } from '../core/errors';
import { Gateway } from '../gateway/gateway';
import { ProxyKey } from '../keys/proxy-key';

/** Realtime models are named so: sessions for other models (or models the key may not use) are refused before any socket exists. */
export function requireRealtimeModel(gateway: Gateway, model: unknown, key: ProxyKey | undefined): string {
  if (typeof model !== 'string' || model === '') throw badRequest('You must provide a model parameter.', 'model', 'missing_required_parameter');
  gateway.pool(model, key);
  if (!model.includes('realtime')) throw badRequest(`The model \`${clip(model)}\` is not a realtime model; use one whose name contains "realtime".`, 'model', 'invalid_model');
  return model;
}

/**
 * Opens Azure's realtime socket for a model through the balancer: a
 * deployment that refuses the handshake with 429 or 5xx, or does not answer,
 * is skipped as for HTTP requests.
 */
export function connectRealtime(gateway: Gateway, model: string, tries: TryRecord[]): Promise<UpstreamSocket> {
  return gateway.balancer.dispatch(model, gateway.pool(model), (d) => gateway.azure.openRealtime(d), tries);
}
