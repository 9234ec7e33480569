import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';
import { isCredentialProblem, refusalProblems } from '../gateway/refusals';
import { sumRecent } from '../balancer/stats';

/**
 * Liveness and readiness, public and minimal: counts, the settings that are
 * wrong, and the Azure OpenAI resources or storage that do not answer (named
 * by their setting), never a value, a URL or a deployment name.
 */
export async function health(_req: GatewayRequest, gateway: Gateway): Promise<GatewayResponse> {
  // This instance's own counts: a public route makes no storage call for them.
  const counts = gateway.stats.snapshot();
  const now = gateway.now();
  const checked = await gateway.readiness.problems();
  // A refused credential is a setting to fix, found by the readiness check or by requests: said once.
  const refusedByCheck = checked.filter(isCredentialProblem);
  const fromRequests = refusalProblems(gateway.config, (d) => sumRecent([counts.get(d.id) ?? {}], now))
    .filter((p) => !(isCredentialProblem(p) && refusedByCheck.some((c) => c.setting === p.setting)));
  const misconfigured = [...gateway.problems(), ...refusedByCheck, ...fromRequests];
  const unreachable = checked.filter((p) => !isCredentialProblem(p));
  const problems = [...misconfigured, ...unreachable];
  const status = misconfigured.length > 0 ? 'misconfigured' : unreachable.length > 0 ? 'unreachable' : 'ok';
  return jsonResponse(problems.length === 0 ? 200 : 503, {
    status,
    models: gateway.config.models.size,
    problems: problems.map((p) => ({ setting: p.setting, message: p.message })),
  }, { 'cache-control': 'no-store' });
}
