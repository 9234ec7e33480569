import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';

/** Models are served from configuration, in OpenAI's list shape; created is fixed so lists are stable. */
const CREATED = 1_700_000_000;

function modelObject(id: string) {
  return { id, object: 'model', created: CREATED, owned_by: 'azure-openai-gateway' };
}

/** The models the request's key may use: a named key with `models` sees only those. */
export async function listModels(_req: GatewayRequest, gateway: Gateway, ctx: RequestContext): Promise<GatewayResponse> {
  const ids = [...gateway.config.models.keys()].filter((id) => ctx.key?.mayUse(id) ?? true);
  return jsonResponse(200, { object: 'list', data: ids.map(modelObject) });
}

export async function retrieveModel(req: GatewayRequest, gateway: Gateway, ctx: RequestContext): Promise<GatewayResponse> {
  const id = req.params.model ?? '';
  ctx.model = id;
  gateway.pool(id, ctx.key);
  return jsonResponse(200, modelObject(id));
}
