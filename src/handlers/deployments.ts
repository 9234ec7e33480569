import { Cooldown } from '../balancer/cooldowns';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';
import { Buckets, sumRecent, WINDOW_MINUTES } from '../balancer/stats';
import { RequestContext } from '../gateway/context';

/**
 * GET /health/deployments (proxy key required): each deployment's state as
 * every instance sees it through the shared store, with recent counts, its
 * priority group and its model's affinity. Names of deployments only; never
 * an endpoint or a key. A named key with `models` sees only those models'
 * deployments.
 */
export async function deploymentsHealth(_req: GatewayRequest, gateway: Gateway, ctx: RequestContext): Promise<GatewayResponse> {
  const now = gateway.now();
  let cooldowns: Map<string, Cooldown>;
  let recent: Map<string, Buckets[]>;
  let source: 'shared' | 'this instance' = 'this instance';
  try {
    if (!gateway.sharedView) throw new Error('not shared');
    ({ cooldowns, recent } = await gateway.sharedView.view());
    source = 'shared';
  } catch {
    cooldowns = new Map([...gateway.balancer.health.entries()]);
    recent = new Map([...gateway.stats.snapshot()].map(([id, b]) => [id, [b]]));
  }
  const data = [];
  for (const [model, pool] of gateway.config.models) {
    if (ctx.key && !ctx.key.mayUse(model)) continue;
    const affinity = gateway.config.promptCacheAffinity.has(model) ? 'prompt_cache_key' : undefined;
    for (const d of pool) {
      const cooling = cooldowns.get(d.id) ?? gateway.balancer.health.get(d.id);
      const counts = sumRecent(recent.get(d.id) ?? [], now);
      const { ok = 0, ...failed } = counts;
      data.push({
        model,
        deployment: d.label,
        weight: d.weight,
        priority: d.priority,
        ...(affinity ? { affinity } : {}),
        state: cooling && cooling.until > now ? 'cooling' : 'healthy',
        ...(cooling && cooling.until > now ? { cooling_until: new Date(cooling.until).toISOString(), reason: cooling.reason } : {}),
        recent: { window_minutes: WINDOW_MINUTES, succeeded: ok, failed },
      });
    }
  }
  return jsonResponse(200, { object: 'list', source, data }, { 'cache-control': 'no-store' });
}
