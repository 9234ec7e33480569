import { pipeline, Transform } from 'node:stream';
import { classifyReply, deploymentUrl } from '../core/azure';
import { Deployment } from '../core/config';
import { RequestContext } from '../core/context';
import { GatewayError, modelNotFound } from '../core/errors';
import { Gateway } from '../core/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';
import { UpstreamFailure, UpstreamReply } from '../core/upstream';
import { AttemptResult } from '../core/balancer';
import { UsageTap } from '../core/usage-tap';
import { describeError } from '../core/log';

/** The deployments that serve a model, or OpenAI's 404. */
export function poolFor(gateway: Gateway, model: string): readonly Deployment[] {
  const pool = gateway.config.models.get(model);
  if (pool === undefined) throw modelNotFound(model);
  return pool;
}

export interface ForwardSpec {
  /** Operation path under the deployment, e.g. "chat/completions". */
  readonly operation: string;
  readonly contentType: string;
  /** The request body for a given deployment (they differ only for the v1 form). */
  body(deployment: Deployment): Buffer | readonly Buffer[];
  /** Builds the client's response from a 2xx upstream reply. */
  respond(reply: UpstreamReply): GatewayResponse;
  readonly accept?: string;
}

/**
 * Sends one request to the model's pool through the balancer: each deployment
 * at most once, failing over on 429, 5xx, timeouts and connection errors,
 * until one answers. The response is committed only once its headers are in,
 * so a stream fails over only before its first byte.
 */
export async function forward(req: GatewayRequest, gateway: Gateway, ctx: RequestContext, model: string, spec: ForwardSpec): Promise<GatewayResponse> {
  ctx.model = model;
  const pool = poolFor(gateway, model);
  const attempt = async (deployment: Deployment): Promise<AttemptResult<GatewayResponse>> => {
    let authName: string;
    let authValue: string;
    try {
      [authName, authValue] = await gateway.upstreamAuth.header(deployment);
    } catch (err) {
      // No token for this deployment (identity not set up): another deployment may still serve.
      gateway.credentialWarning.warn({ msg: 'could not authenticate to a deployment; check the managed identity or its key', deployment: deployment.label, error: describeError(err) });
      return { kind: 'retry', reason: 'rejected' };
    }
    let reply: UpstreamReply;
    try {
      reply = await gateway.upstream.send({
        url: deploymentUrl(deployment, spec.operation),
        method: 'POST',
        headers: {
          'content-type': spec.contentType,
          accept: spec.accept ?? 'application/json',
          'x-ms-client-request-id': ctx.requestId,
          [authName]: authValue,
        },
        body: spec.body(deployment),
        signal: req.signal,
        headersTimeoutMs: gateway.config.upstreamHeadersTimeoutMs,
      });
    } catch (err) {
      if (err instanceof UpstreamFailure && err.kind !== 'aborted') return { kind: 'retry', reason: err.kind };
      throw err;
    }
    return classifyReply(reply, deployment, spec.respond, errorToResponse);
  };
  try {
    return await gateway.balancer.dispatch(model, pool, attempt, ctx.tries);
  } catch (err) {
    if (err instanceof UpstreamFailure && err.kind === 'aborted') {
      // The client left before any answer: nobody will read this.
      return jsonResponse(499, { error: { message: 'Client closed the request.', type: 'invalid_request_error', param: null, code: 'client_closed' } });
    }
    throw err;
  }
}

function errorToResponse(error: GatewayError): GatewayResponse {
  return jsonResponse(error.status, error.toBody(), { ...error.headers });
}

/**
 * A whole upstream answer passed on as it streams in: content type and length
 * kept, token usage read from a JSON body's tail when `usage` is wanted.
 */
export function passThrough(reply: UpstreamReply, ctx: RequestContext, usage = true): GatewayResponse {
  const type = reply.headers['content-type'] ?? 'application/octet-stream';
  const json = usage && type.includes('json');
  return {
    status: reply.status,
    headers: { 'content-type': type, ...passHeaders(reply, ['content-length', 'content-disposition']) },
    body: json ? through(reply, new UsageTap((u) => (ctx.usage = u))) : reply.body,
  };
}

/** Pipes the upstream body through a transform, tearing both down if either fails. */
export function through(reply: UpstreamReply, transform: Transform): Transform {
  pipeline(reply.body, transform, () => {});
  return transform;
}

/** Response headers worth passing from Azure to the client. */
export function passHeaders(reply: UpstreamReply, names: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = reply.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}
