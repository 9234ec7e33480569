import { promptCacheKey, readJsonObject, requestModel } from '../bodies/body';
import { modelRewriter } from '../bodies/json-model';
import { ResponseTap } from '../bodies/response-tap';
import { Usage } from '../bodies/usage';
import { UpstreamReply } from '../azure-openai/client';
import { Deployment } from '../azure-openai/deployment';
import { GatewayError } from '../core/errors';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { Handler } from '../gateway/route';
import { ForwardSpec, admit, forward, passHeaders, passThrough, through } from './forward';
import { estimateTokens } from '../limits/estimate';
import { StoredObject, byResource, findAndForward, holderOf, sendToHolder } from './stored';

/**
 * The Responses API. Azure stores a response on the resource that made it,
 * so a request that names one (previous_response_id, a conversation, the {id}
 * routes) goes to the deployment that made it: recorded, before the client
 * can see the new id, in the gateway's holders (this instance's memory and
 * the shared table). Events and bodies pass through as Azure sends them.
 */

/** POST /v1/responses: whole or streamed; a follow-up goes where the response it continues is stored. */
export const createResponse: Handler = async (req, gateway, ctx) => {
  const { raw, value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  const model = requestModel(req, value);
  const withModel = modelRewriter(raw);
  const pool = gateway.pool(model, ctx.key);
  ctx.model = model;
  const streamed = value.stream === true;
  const stored = value.store !== false;
  const estimate = estimateTokens(raw, value);
  /** `found`: a named object the gateway had no record of, recorded where it turned out to be. */
  const spec = (found?: StoredObject): ForwardSpec => ({
    operation: 'responses',
    contentType: 'application/json',
    accept: streamed ? 'text/event-stream' : 'application/json',
    // Azure takes the deployment in `model` on every form of this call.
    body: (d) => withModel(d.deployment),
    respond: (reply, d) => responseBody(reply, ctx, true, stored || found ? (id) => Promise.all([
      stored ? gateway.holders.remember(id, d.id) : undefined,
      found ? gateway.holders.remember(found.id, d.id) : undefined,
    ]) : undefined),
    affinityKey: promptCacheKey(value),
    estimate,
  });
  const named = namedObject(value);
  if (named === undefined) return forward(req, gateway, ctx, model, spec());
  const holder = await holderOf(gateway, ctx, named, pool);
  // Nothing recorded (made before the gateway kept records, or while storage was out): ask where it is.
  if (holder === undefined && byResource(pool).length === 1) return forward(req, gateway, ctx, model, spec(named));
  await admit(gateway, ctx, model, estimate);
  if (holder !== undefined) return sendToHolder(req, gateway, ctx, named, holder, spec());
  return findAndForward(req, gateway, ctx, named, pool, spec(named));
};

/** GET (retrieve, or resume a stream with ?stream=true) and DELETE /v1/responses/{id}. */
export const responseById: Handler = (req, gateway, ctx) =>
  onStoredResponse(gateway, req, ctx, '', req.method === 'DELETE' ? 'DELETE' : 'GET');

/** POST /v1/responses/{id}/cancel: stops a background response. */
export const cancelResponse: Handler = (req, gateway, ctx) => onStoredResponse(gateway, req, ctx, '/cancel', 'POST');

/** GET /v1/responses/{id}/input_items, paging parameters passed on. */
export const listResponseInputItems: Handler = (req, gateway, ctx) => onStoredResponse(gateway, req, ctx, '/input_items', 'GET');

async function onStoredResponse(gateway: Gateway, req: GatewayRequest, ctx: RequestContext, action: string, method: 'GET' | 'POST' | 'DELETE'): Promise<GatewayResponse> {
  const id = req.params.id ?? '';
  const object: StoredObject = { id, what: `Response '${id}'` };
  const holder = await holderOf(gateway, ctx, object);
  const spec: ForwardSpec = {
    operation: `responses/${encodeURIComponent(id)}${action}`,
    method,
    query: req.query,
    accept: 'application/json, text/event-stream',
    respond: (reply, d) => {
      if (method === 'DELETE') gateway.holders.forget(id);
      // Found where the gateway had no record of it: record it for next time; the client already knows the id.
      else if (holder === undefined) void gateway.holders.remember(id, d.id);
      // Reading a stored response again uses no tokens: its usage is not this request's.
      return responseBody(reply, ctx, false);
    },
  };
  const candidates = holder === undefined ? reachable(gateway, ctx) : [holder];
  // Counted on the key's limits under the model of the deployment asked first; it uses no tokens.
  ctx.model = candidates.length > 0 ? gateway.modelsWith(candidates[0].id, ctx.key)[0] : undefined;
  if (ctx.model !== undefined) await admit(gateway, ctx, ctx.model);
  if (holder !== undefined) return sendToHolder(req, gateway, ctx, object, holder, spec);
  return findAndForward(req, gateway, ctx, object, candidates, spec);
}

/**
 * The stored object a create names, if any: the response it continues, the
 * conversation it adds to, or else the first stored item its input refers to
 * (the Vercel AI SDK sends earlier turns as item references).
 */
function namedObject(body: Record<string, unknown>): StoredObject | undefined {
  const previous = body.previous_response_id;
  if (typeof previous === 'string' && previous) return { id: previous, what: `Response '${previous}'` };
  const conversation = body.conversation;
  const id = typeof conversation === 'string' ? conversation : (conversation as { id?: unknown } | null | undefined)?.id;
  if (typeof id === 'string' && id) return { id, what: `Conversation '${id}'` };
  const reference = Array.isArray(body.input)
    ? (body.input as { type?: unknown; id?: unknown }[]).find((item) => item?.type === 'item_reference' && typeof item.id === 'string' && item.id)
    : undefined;
  return reference ? { id: reference.id as string, what: `Item '${reference.id as string}'` } : undefined;
}

/** Every deployment of the models the request's key may use. */
function reachable(gateway: Gateway, ctx: RequestContext): Deployment[] {
  return [...gateway.config.models].filter(([model]) => ctx.key?.mayUse(model) ?? true).flatMap(([, pool]) => pool);
}

/**
 * Azure's answer as it comes: events one by one, JSON whole. With `record`,
 * the new response's id is recorded before any byte of it is passed on.
 */
function responseBody(reply: UpstreamReply, ctx: RequestContext, countUsage: boolean, record?: (id: string) => Promise<unknown>): GatewayResponse | Promise<GatewayResponse> {
  const type = reply.headers['content-type'] ?? 'application/json';
  const events = type.startsWith('text/event-stream');
  if (!events && record === undefined) return passThrough(reply, ctx, countUsage);
  if (countUsage && events) ctx.streamedEvents = 0;
  const tap = new ResponseTap(record, countUsage ? (u: Usage) => (ctx.usage = u) : undefined, countUsage && events ? (n) => (ctx.streamedEvents = n) : undefined);
  // A stream Azure breaks off or stalls after its first event ends with an error event the client can see.
  const endWith = events ? (error: GatewayError) => {
    ctx.errorCode = error.code ?? error.type;
    tap.endWith((n) => error.toResponsesEvent(n));
  } : undefined;
  return {
    status: reply.status,
    headers: events ? { 'content-type': type, 'cache-control': 'no-cache' } : { 'content-type': type, ...passHeaders(reply, ['content-length']) },
    body: through(reply, tap, endWith),
  };
}
