import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';
import { modelNotFound } from '../core/errors';

/** Models are served from configuration, in OpenAI's list shape; created is fixed so lists are stable. */
const CREATED = 1_700_000_000;

function modelObject(id: string) {
  return { id, object: 'model', created: CREATED, owned_by: 'azure-openai-gateway' };
}

export async function listModels(_req: GatewayRequest, gateway: Gateway): Promise<GatewayResponse> {
  return jsonResponse(200, { object: 'list', data: [...gateway.config.models.keys()].map(modelObject) });
}

export async function retrieveModel(req: GatewayRequest, gateway: Gateway, ctx: RequestContext): Promise<GatewayResponse> {
  const id = req.params.model ?? '';
  ctx.model = id;
  if (!gateway.config.models.has(id)) throw modelNotFound(id);
  return jsonResponse(200, modelObject(id));
}
