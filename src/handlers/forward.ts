import type { OutgoingHttpHeaders } from 'node:http';
import { Readable, Transform } from 'node:stream';
import { OperationRequest } from '../azure-openai/upstream';
import { Deployment } from '../azure-openai/deployment';
import { RequestContext } from '../gateway/context';
import { GatewayError, clientClosed, upstreamBrokeOff } from '../core/errors';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { UpstreamFailure, UpstreamReply, asUpstreamFailure, pipeInto } from '../azure-openai/client';
import { UsageTap } from '../bodies/usage-tap';
import { usageOfBody } from '../bodies/usage';
import { NO_TOKENS, TokenEstimate } from '../limits/estimate';
import { UNNAMED_KEY } from '../keys/proxy-key';

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
  /** The tokens the request is admitted on by its key's limits (see limits/estimate). */
  readonly estimate?: TokenEstimate;
}

/**
 * Sends one request to the model's pool through the balancer: each deployment
 * at most once, failing over on 429, 5xx, timeouts and connection errors,
 * until one answers. The response is committed only once the first byte of
 * its body is ready, so an answer that stalls or breaks before then fails
 * over like one that never came. It throws at once, rather than rejects, for
 * a model the key may not use or limits already spent: call it from an async
 * function (every handler is one), where a throw is a rejection.
 */
export function forward(req: GatewayRequest, gateway: Gateway, ctx: RequestContext, model: string, spec: ForwardSpec): Promise<GatewayResponse> {
  ctx.model = model;
  const pool = gateway.pool(model, ctx.key);
  const admitted = admit(gateway, ctx, model, spec.estimate);
  const send = () => {
    // The deadline counts from the request's arrival: its body and its admission took time too.
    const deadline = gateway.now() + gateway.config.upstreamDeadlineMs - ctx.elapsedMs();
    const request = operationRequest(req, ctx, spec, (error) => ctx.fail(error), deadline);
    const affinityKey = spec.affinityKey !== undefined && gateway.config.promptCacheAffinity.has(model) ? spec.affinityKey : undefined;
    // An operation a deployment does not serve cools that operation there, not the deployment.
    const hint = { affinityKey, scope: spec.operation, deadline };
    return whileClientStays(gateway.balancer.dispatch(model, pool, (d) => gateway.azure.send(d, request), ctx.tries, hint));
  };
  // Not an async function: most requests wait for nothing before the upstream call, and a layer of promise per request showed in the profile.
  return admitted === undefined ? send() : admitted.then(send);
}

/**
 * Admits the request on its key's limits for a model (429 when they are
 * spent); what it used is settled when it ends. A promise only when the
 * limits had to wait for their store.
 */
export function admit(gateway: Gateway, ctx: RequestContext, model: string, estimate: TokenEstimate = NO_TOKENS): Promise<void> | undefined {
  const admitted = gateway.limits.admit(ctx.key ?? UNNAMED_KEY, model, estimate);
  if (admitted instanceof Promise) {
    return admitted.then((admission) => {
      ctx.admission = admission;
    });
  }
  ctx.admission = admitted;
  return undefined;
}

/** The upstream request a spec describes; `onClientError` answers an error that is the client's to fix. */
export function operationRequest<T>(req: GatewayRequest, ctx: RequestContext, spec: ForwardSpec, onClientError: (error: GatewayError) => T, deadline?: number): OperationRequest<GatewayResponse | T> {
  const headers: OutgoingHttpHeaders = { accept: spec.accept ?? 'application/json', 'x-ms-client-request-id': ctx.requestId };
  if (spec.contentType !== undefined) headers['content-type'] = spec.contentType;
  return {
    operation: spec.operation,
    method: spec.method,
    query: spec.query,
    headers,
    body: spec.body,
    gone: req.gone,
    deadline,
    onSuccess: (reply, deployment) => {
      const res = spec.respond(reply, deployment);
      return res instanceof Promise ? res.then(committed) : committed(res);
    },
    onClientError,
  };
}

/** The upstream answer, unless the client left before any: then nobody will read it. */
export function whileClientStays<T>(answer: Promise<T>): Promise<T> {
  return answer.catch(asClientLeaving);
}

function asClientLeaving(err: unknown): never {
  if (err instanceof UpstreamFailure && err.kind === 'aborted') throw clientClosed();
  throw err;
}

/**
 * A whole upstream answer passed on as it streams in: content type and length
 * kept, token usage read from a JSON body's tail when `usage` is wanted.
 */
export function passThrough(reply: UpstreamReply, ctx: RequestContext, usage = true): GatewayResponse | Promise<GatewayResponse> {
  const type = reply.headers['content-type'] ?? 'application/octet-stream';
  const json = usage && type.includes('json');
  const declared = reply.headers['content-length'];
  const length = declared === undefined ? NaN : Number(declared);
  if (json && length <= SMALL_RESPONSE) {
    // A small whole answer costs less read in one piece than piped through a stream per request.
    // A break, a stall or the client leaving midway fails it as the upstream call it is.
    return reply.whole(SMALL_RESPONSE).then((body) => wholeJson(reply, ctx, type, body));
  }
  if (json && Number.isNaN(length)) {
    // Chunked: most such answers are small too, and one that breaks before its end should fail over
    // as unseen as one with a length. Only what outgrows the small size streams on.
    return wholeOrInto(reply.body, SMALL_RESPONSE, () => new UsageTap((u) => (ctx.usage = u))).then((body) => (Buffer.isBuffer(body) ? wholeJson(reply, ctx, type, body) : { status: reply.status, headers: { 'content-type': type }, body }));
  }
  return {
    status: reply.status,
    headers: { 'content-type': type, ...passHeaders(reply, ['content-length', 'content-disposition']) },
    body: json ? through(reply, new UsageTap((u) => (ctx.usage = u))) : reply.body,
  };
}

function wholeJson(reply: UpstreamReply, ctx: RequestContext, type: string, body: Buffer): GatewayResponse {
  const counted = usageOfBody(body);
  if (counted) ctx.usage = counted;
  return { status: reply.status, headers: { 'content-type': type }, body };
}

/**
 * A body of unknown length read whole when it ends within `limit` bytes;
 * past them, what was read goes into a sink made then and the rest follows,
 * piped (and the sink is the answer). Fails as the upstream call when the
 * body breaks before either.
 */
function wholeOrInto(body: Readable, limit: number, makeSink: () => Transform): Promise<Buffer | Transform> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      body.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      stop();
      body.pause();
      const sink = makeSink();
      for (const c of chunks) sink.write(c);
      pipeInto(body, sink, (failure) => sink.destroy(failure));
      resolve(sink);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: unknown) => {
      stop();
      reject(failureOf(body, err));
    };
    const onClose = () => {
      if (!body.readableEnded) onError(undefined);
    };
    body.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  });
}

const SMALL_RESPONSE = 256 * 1024;

/**
 * Why an upstream body failed: the failure it was destroyed with (a stall,
 * the client leaving), else a broken connection.
 */
function failureOf(body: Readable, err?: unknown): UpstreamFailure {
  return asUpstreamFailure(body.errored ?? err);
}

/** Waits for a streamed body's first byte before the response is handed on; a failure before it is the upstream's. */
function committed(res: GatewayResponse): GatewayResponse | Promise<GatewayResponse> {
  return res.body instanceof Readable ? firstByteOf(res, res.body) : res;
}

async function firstByteOf(res: GatewayResponse, body: Readable): Promise<GatewayResponse> {
  try {
    await firstChunk(body);
  } catch (err) {
    body.destroy();
    throw err instanceof UpstreamFailure ? err : failureOf(body, err);
  }
  return res;
}

/**
 * Resolves once a stream has its first chunk buffered (unread) or has ended;
 * rejects if it fails first. Waits on 'readable' without reading, so the
 * stream stays undisturbed for the host (the Functions host refuses a body
 * that was read from).
 */
function firstChunk(body: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (err?: unknown) => {
      body.off('readable', onReadable).off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onReadable = () => settle();
    const onClose = () => settle(failureOf(body));
    // Kept for good: an error between here and the host's own listener must not go unheard.
    body.on('error', (err) => settle(err));
    body.on('readable', onReadable).once('close', onClose);
  });
}

/**
 * The upstream body through a transform, written into it as it arrives. If
 * the upstream breaks or stalls before the transform's first byte went out,
 * the transform fails too (forward then tries the next deployment); after
 * it, a stream that can say so (`endWith`) ends with an error the client
 * sees, and any other is cut off.
 */
export function through(reply: UpstreamReply, transform: Transform, endWith?: (error: GatewayError) => void): Transform {
  reply.into(transform, (failure) => {
    if (transform.destroyed) return;
    // Once the transform has a first byte out, forward has committed the response to it.
    const committed = transform.readableDidRead || transform.readableLength > 0;
    if (endWith !== undefined && committed && failure.kind !== 'aborted') endWith(upstreamBrokeOff(failure.kind === 'timeout'));
    else transform.destroy(failure);
  });
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
