import type { OutgoingHttpHeaders } from 'node:http';
import { Transform } from 'node:stream';
import { OperationRequest } from '../azure-openai/upstream';
import { Deployment } from '../azure-openai/deployment';
import { RequestContext } from '../gateway/context';
import { GatewayError, clientClosed } from '../core/errors';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { UpstreamFailure, UpstreamReply } from '../azure-openai/client';
import { UsageTap } from '../bodies/usage-tap';
import { readBody } from '../bodies/body';
import { extractUsage } from '../bodies/usage';

export interface ForwardSpec {
  /** Operation path, e.g. "chat/completions" (under the deployment) or "responses/resp_1" (on the resource). */
  readonly operation: string;
  readonly method?: 'GET' | 'POST' | 'DELETE';
  /** The client's query string, for operations that take one. */
  readonly query?: string;
  readonly contentType?: string;
  /** The request body for a given deployment (they differ only where the body names the deployment). */
  body?(deployment: Deployment): Buffer | readonly Buffer[];
  /** Builds the client's response from a 2xx upstream reply of this deployment. */
  respond(reply: UpstreamReply, deployment: Deployment): GatewayResponse | Promise<GatewayResponse>;
  readonly accept?: string;
  /** Keeps requests that share it on one deployment, for models that opt in to prompt-cache affinity. */
  readonly affinityKey?: string;
}

/**
 * Sends one request to the model's pool through the balancer: each deployment
 * at most once, failing over on 429, 5xx, timeouts and connection errors,
 * until one answers. The response is committed only once its headers are in,
 * so a stream fails over only before its first byte.
 */
export async function forward(req: GatewayRequest, gateway: Gateway, ctx: RequestContext, model: string, spec: ForwardSpec): Promise<GatewayResponse> {
  ctx.model = model;
  const pool = gateway.pool(model, ctx.key);
  const request = operationRequest(req, ctx, spec, (error) => ctx.fail(error));
  const hint = spec.affinityKey !== undefined && gateway.config.promptCacheAffinity.has(model) ? { affinityKey: spec.affinityKey } : undefined;
  return whileClientStays(gateway.balancer.dispatch(model, pool, (d) => gateway.azure.send(d, request), ctx.tries, hint));
}

/** The upstream request a spec describes; `onClientError` answers an error that is the client's to fix. */
export function operationRequest<T>(req: GatewayRequest, ctx: RequestContext, spec: ForwardSpec, onClientError: (error: GatewayError) => T): OperationRequest<GatewayResponse | T> {
  const headers: OutgoingHttpHeaders = { accept: spec.accept ?? 'application/json', 'x-ms-client-request-id': ctx.requestId };
  if (spec.contentType !== undefined) headers['content-type'] = spec.contentType;
  return {
    operation: spec.operation,
    method: spec.method,
    query: spec.query,
    headers,
    body: spec.body,
    gone: req.gone,
    onSuccess: spec.respond,
    onClientError,
  };
}

/** The upstream answer, unless the client left before any: then nobody will read it. */
export async function whileClientStays<T>(answer: Promise<T>): Promise<T> {
  try {
    return await answer;
  } catch (err) {
    if (err instanceof UpstreamFailure && err.kind === 'aborted') throw clientClosed();
    throw err;
  }
}

/**
 * A whole upstream answer passed on as it streams in: content type and length
 * kept, token usage read from a JSON body's tail when `usage` is wanted.
 */
export async function passThrough(reply: UpstreamReply, ctx: RequestContext, usage = true): Promise<GatewayResponse> {
  const type = reply.headers['content-type'] ?? 'application/octet-stream';
  const json = usage && type.includes('json');
  const length = Number(reply.headers['content-length']);
  if (json && length <= SMALL_RESPONSE) {
    // A small whole answer costs less read in one piece than piped through a stream per request.
    const body = await readUpstream(reply);
    const counted = extractUsage(body.toString('utf8', Math.max(0, body.length - 4096)));
    if (counted) ctx.usage = counted;
    return { status: reply.status, headers: { 'content-type': type }, body };
  }
  return {
    status: reply.status,
    headers: { 'content-type': type, ...passHeaders(reply, ['content-length', 'content-disposition']) },
    body: json ? through(reply, new UsageTap((u) => (ctx.usage = u))) : reply.body,
  };
}

const SMALL_RESPONSE = 256 * 1024;

/** Reads a whole upstream body; a connection that breaks midway is an upstream failure, not the client's. */
async function readUpstream(reply: UpstreamReply): Promise<Buffer> {
  try {
    // Only called when content-length is within the limit, so the limit cannot trip here.
    return await readBody(reply.body, SMALL_RESPONSE);
  } catch (err) {
    throw new UpstreamFailure('connect', { cause: err });
  }
}

/**
 * Pipes the upstream body through a transform, tearing both down if either
 * fails. Plain pipe() plus two listeners: pipeline() costs a few kilobytes
 * more per open stream.
 */
export function through(reply: UpstreamReply, transform: Transform): Transform {
  const upstream = reply.body;
  upstream.once('error', (err) => transform.destroy(err));
  // Node marks a cut-off response as aborted and may end it quietly: that end is an error here.
  upstream.once('aborted', () => transform.destroy(new UpstreamFailure('connect')));
  transform.once('close', () => {
    if (!upstream.readableEnded) upstream.destroy();
  });
  return upstream.pipe(transform);
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
