import { promptCacheKey, readJsonObject, requireModel } from '../bodies/body';
import { UsageTap } from '../bodies/usage-tap';
import { UpstreamReply } from '../azure-openai/client';
import { Deployment } from '../azure-openai/deployment';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { Handler } from '../gateway/route';
import { ForwardSpec, forward, passThrough, through } from './forward';
import { StoredObject, byResource, findAndForward } from './stored';

/**
 * The Responses API. Azure stores responses on the resource that made them,
 * so a request that names one (previous_response_id, the {id} routes) must
 * reach that resource; events and bodies pass through as Azure sends them.
 */

/** POST /v1/responses: whole or streamed; a follow-up goes where the response it continues is stored. */
export const createResponse: Handler = async (req, gateway, ctx) => {
  const { value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  const model = requireModel(value);
  const streamed = value.stream === true;
  const spec: ForwardSpec = {
    operation: 'responses',
    contentType: 'application/json',
    accept: streamed ? 'text/event-stream' : 'application/json',
    // Azure takes the deployment in `model` on every form of this call.
    body: (d) => Buffer.from(JSON.stringify({ ...value, model: d.deployment })),
    respond: (reply) => responseBody(reply, ctx, true),
    affinityKey: promptCacheKey(value),
  };
  const named = namedObject(value);
  const pool = gateway.pool(model, ctx.key);
  if (named === undefined || byResource(pool).length === 1) return forward(req, gateway, ctx, model, spec);
  ctx.model = model;
  return findAndForward(req, gateway, ctx, named, pool, spec);
};

/** GET (retrieve, or resume a stream with ?stream=true) and DELETE /v1/responses/{id}. */
export const responseById: Handler = (req, gateway, ctx) =>
  onStoredResponse(gateway, req, ctx, '', req.method === 'DELETE' ? 'DELETE' : 'GET');

/** POST /v1/responses/{id}/cancel: stops a background response. */
export const cancelResponse: Handler = (req, gateway, ctx) => onStoredResponse(gateway, req, ctx, '/cancel', 'POST');

/** GET /v1/responses/{id}/input_items, paging parameters passed on. */
export const listResponseInputItems: Handler = (req, gateway, ctx) => onStoredResponse(gateway, req, ctx, '/input_items', 'GET');

function onStoredResponse(gateway: Gateway, req: GatewayRequest, ctx: RequestContext, action: string, method: 'GET' | 'POST' | 'DELETE'): Promise<GatewayResponse> {
  const id = req.params.id ?? '';
  const spec: ForwardSpec = {
    operation: `responses/${encodeURIComponent(id)}${action}`,
    method,
    query: req.query,
    accept: 'application/json, text/event-stream',
    // Reading a stored response again uses no tokens: its usage is not this request's.
    respond: (reply) => responseBody(reply, ctx, false),
  };
  return findAndForward(req, gateway, ctx, { id, what: `Response '${id}'` }, reachable(gateway, ctx), spec);
}

/** The stored object a create names, if any. */
function namedObject(body: Record<string, unknown>): StoredObject | undefined {
  const previous = body.previous_response_id;
  return typeof previous === 'string' && previous ? { id: previous, what: `Response '${previous}'` } : undefined;
}

/** Every deployment of the models the request's key may use. */
function reachable(gateway: Gateway, ctx: RequestContext): Deployment[] {
  return [...gateway.config.models].filter(([model]) => ctx.key?.mayUse(model) ?? true).flatMap(([, pool]) => pool);
}

/** Azure's answer as it comes: events pass through one by one, JSON whole or piped. */
function responseBody(reply: UpstreamReply, ctx: RequestContext, countUsage: boolean): GatewayResponse | Promise<GatewayResponse> {
  const type = reply.headers['content-type'] ?? 'application/json';
  if (!type.startsWith('text/event-stream')) return passThrough(reply, ctx, countUsage);
  return {
    status: reply.status,
    headers: { 'content-type': type, 'cache-control': 'no-cache' },
    // Usage is in response.completed, the last event.
    body: countUsage ? through(reply, new UsageTap((u) => (ctx.usage = u))) : reply.body,
  };
}
