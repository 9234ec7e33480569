import { Deployment } from '../azure-openai/deployment';
import { isStoredObjectMissing } from '../azure-openai/wire';
import { GatewayError, holderGone, holderOutsideModel, holderUnavailable, storedNotFound } from '../core/errors';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { RequestContext } from '../gateway/context';
import { Gateway } from '../gateway/gateway';
import { ForwardSpec, operationRequest, whileClientStays } from './forward';

/** A stored object a request names: its id, and how to name it in an error ("Response 'resp_1'"). */
export interface StoredObject {
  readonly id: string;
  readonly what: string;
}

/**
 * The deployment that holds a stored object, when the gateway recorded it:
 * for a request under a model (a follow-up), that model's deployment on the
 * holder's resource if the holder itself is not in its pool. Undefined when
 * nothing is recorded; an error that says why when the holder cannot serve
 * this request at all.
 */
export async function holderOf(gateway: Gateway, ctx: RequestContext, object: StoredObject, pool?: readonly Deployment[]): Promise<Deployment | undefined> {
  const holderId = await gateway.holders.find(object.id);
  if (holderId === undefined) return undefined;
  const holder = gateway.deployment(holderId);
  if (holder === undefined) throw holderGone(object.what);
  const models = gateway.modelsWith(holderId, ctx.key);
  if (models.length === 0) throw storedNotFound(object.what);
  if (pool === undefined) return holder;
  const target = pool.find((d) => d.id === holderId) ?? pool.find((d) => d.endpoint === holder.endpoint);
  if (target === undefined) throw holderOutsideModel(object.what, ctx.model ?? '', models);
  return target;
}

/** Sends the request to the deployment that holds the object, and to no other. */
export function sendToHolder(req: GatewayRequest, gateway: Gateway, ctx: RequestContext, object: StoredObject, holder: Deployment, spec: ForwardSpec): Promise<GatewayResponse> {
  const request = operationRequest(req, ctx, spec, (error) => ctx.fail(error));
  return whileClientStays(gateway.balancer.dispatchTo(holder, (d) => gateway.azure.send(d, request), ctx.tries,
    (seconds, reason) => holderUnavailable(object.what, seconds, reason === '429'), scopeOf(spec)));
}

/** An answer from a resource that does not hold the object: another one may. */
class Missing {
  constructor(readonly error: GatewayError) {}
}

/**
 * Sends a request that names a stored object to a resource that holds it,
 * when where it is stored is not known: each resource among the candidates
 * is asked in turn (on each, its deployments in order until one can answer)
 * until one has it. One call when every candidate shares a resource.
 */
export async function findAndForward(req: GatewayRequest, gateway: Gateway, ctx: RequestContext, object: StoredObject, candidates: readonly Deployment[], spec: ForwardSpec): Promise<GatewayResponse> {
  const request = operationRequest(req, ctx, spec, (error) => (isStoredObjectMissing(error) ? new Missing(error) : ctx.fail(error)));
  let missing: GatewayError | undefined;
  let unavailable: GatewayError | undefined;
  for (const resource of byResource(candidates)) {
    let unanswered: GatewayError | undefined;
    for (const d of resource) {
      let answer: GatewayResponse | Missing;
      try {
        answer = await whileClientStays(gateway.balancer.dispatchTo(d, (m) => gateway.azure.send(m, request), ctx.tries,
          (seconds, reason) => holderUnavailable(object.what, seconds, reason === '429', false), scopeOf(spec)));
      } catch (err) {
        if (!(err instanceof GatewayError) || (err.status !== 429 && err.status !== 503)) throw err;
        unanswered = err;
        continue;
      }
      if (!(answer instanceof Missing)) return answer;
      missing = answer.error;
      unanswered = undefined;
      break;
    }
    unavailable ??= unanswered;
  }
  // A resource that could not answer may be the one that holds it: "retry later" is truer than "not found".
  throw unavailable ?? missing ?? holderGone(object.what);
}

/** The operation family a cooldown of one operation covers: "responses" for every call on stored responses. */
function scopeOf(spec: ForwardSpec): string {
  return spec.operation.split('/')[0];
}

/** Deployments grouped by the resource they are on, each deployment once, in the order given. */
export function byResource(deployments: readonly Deployment[]): Deployment[][] {
  const groups = new Map<string, Deployment[]>();
  const seen = new Set<string>();
  for (const d of deployments) {
    if (seen.has(d.id)) continue;
    seen.add(d.id);
    const group = groups.get(d.endpoint);
    if (group) group.push(d);
    else groups.set(d.endpoint, [d]);
  }
  return [...groups.values()];
}
