import { Cooldown, parseScopedKey } from '../balancer/cooldowns';
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
  const byOperation = operationCooldowns(cooldowns, now);
  const data = [];
  for (const [model, pool] of gateway.config.models) {
    if (ctx.key && !ctx.key.mayUse(model)) continue;
    const affinity = gateway.config.promptCacheAffinity.has(model) ? 'prompt_cache_key' : undefined;
    for (const d of pool) {
      const cooling = cooldowns.get(d.id) ?? gateway.balancer.health.get(d.id);
      const counts = sumRecent(recent.get(d.id) ?? [], now);
      const { ok = 0, ...failed } = counts;
      const coolingNow = cooling !== undefined && cooling.until > now;
      // Azure said it has no such deployment, and it has served nothing since: a configuration problem.
      const missing = (coolingNow && cooling.reason === 'missing') || ((failed.missing ?? 0) > 0 && ok === 0);
      const operations = byOperation.get(d.id);
      data.push({
        model,
        deployment: d.label,
        weight: d.weight,
        priority: d.priority,
        ...(affinity ? { affinity } : {}),
        state: missing ? 'misconfigured' : coolingNow ? 'cooling' : 'healthy',
        ...(missing ? { problem: MISSING } : {}),
        ...(coolingNow ? { cooling_until: new Date(cooling.until).toISOString(), reason: cooling.reason } : {}),
        ...(operations ? { unavailable_operations: operations } : {}),
        recent: { window_minutes: WINDOW_MINUTES, succeeded: ok, failed },
      });
    }
  }
  return jsonResponse(200, { object: 'list', source, data }, { 'cache-control': 'no-store' });
}

const MISSING = 'Azure answers that this deployment does not exist on its resource (DeploymentNotFound). Check its name in MODEL_DEPLOYMENTS, or create the deployment.';

/** Operations cooling on one deployment only (Azure answered 404 for them there), by deployment id. */
function operationCooldowns(cooldowns: Map<string, Cooldown>, now: number): Map<string, { operation: string; until: string; reason: string }[]> {
  const result = new Map<string, { operation: string; until: string; reason: string }[]>();
  for (const [key, c] of cooldowns) {
    const scoped = parseScopedKey(key);
    if (scoped === undefined || c.until <= now) continue;
    const list = result.get(scoped.deploymentId) ?? [];
    list.push({ operation: scoped.scope, until: new Date(c.until).toISOString(), reason: c.reason });
    result.set(scoped.deploymentId, list);
  }
  return result;
}
