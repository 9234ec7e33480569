import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';

/**
 * Liveness and configuration readiness, public and minimal: counts and the
 * settings that are wrong, never a value, a URL or a deployment name.
 */
export async function health(_req: GatewayRequest, gateway: Gateway): Promise<GatewayResponse> {
  const problems = gateway.problems();
  const { models } = gateway.config;
  const ok = problems.length === 0;
  return jsonResponse(ok ? 200 : 503, {
    status: ok ? 'ok' : 'misconfigured',
    models: models.size,
    problems: problems.map((p) => ({ setting: p.setting, message: p.message })),
  }, { 'cache-control': 'no-store' });
}
