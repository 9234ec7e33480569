/** @module What every route shares: request id, auth, OpenAI-shaped errors, one log line per request. */
import { Readable } from 'node:stream';
import { RequestContext } from './context';
import { GatewayError, clip, internalError } from '../core/errors';
import { Gateway } from './gateway';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { Logger, describeError } from '../core/log';
import { Route } from './route';
import { UpstreamFailure } from '../azure-openai/client';
import { newRequestId } from '../core/request-id';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * What every route shares: a request id, auth, OpenAI-shaped errors and one
 * log line per request, written when the response body has been sent.
 */
export async function serve(route: Route, req: GatewayRequest, gateway: Gateway, logger: Logger = gateway.logger): Promise<GatewayResponse> {
  const incoming = req.header('x-request-id');
  const ctx = new RequestContext(incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : newRequestId(), route.name);
  let res: GatewayResponse;
  let release: (() => void) | undefined;
  try {
    if (route.auth) {
      const key = gateway.authenticate(req);
      ctx.key = key instanceof Promise ? await key : key;
    }
    const admitted = gateway.bodies.admit(req, gateway.largestBody);
    release = admitted.release;
    res = await route.handler(admitted.req, gateway, ctx);
  } catch (err) {
    res = errorResponse(err, ctx, logger);
  } finally {
    // The body has been read and sent on by now; what still streams is the answer.
    release?.();
  }
  ctx.headersMs = ctx.elapsedMs();
  res.headers['x-request-id'] = ctx.requestId;
  if (ctx.key?.limited) gateway.limits.writeHeaders(ctx.key, res.headers);
  const body = res.body;
  if (route.logSuccess === false && res.status < 400) return res;
  if (body instanceof Readable) {
    body.once('close', () => finish(gateway, logger, req, ctx, res.status, streamEnd(body)));
  } else {
    finish(gateway, logger, req, ctx, res.status, null);
  }
  return res;
}

/** The request is over: its tokens are settled with the key's limits and counted, and its line is logged. */
function finish(gateway: Gateway, logger: Logger, req: GatewayRequest, ctx: RequestContext, status: number, streamError: unknown): void {
  if (ctx.admission !== undefined) gateway.limits.finish(ctx.admission, ctx.usage, ctx.streamedEvents);
  logRequest(logger, req, ctx, status, streamError);
}

/** How a streamed answer ended: null when whole, else why not; the client's leaving is named as such, however the stream heard of it. */
function streamEnd(body: Readable): unknown {
  const err = body.errored;
  if (err instanceof UpstreamFailure && err.kind === 'aborted') return 'client closed';
  return err ?? (body.readableEnded ? null : 'client closed');
}

export function errorResponse(err: unknown, ctx: RequestContext, logger: Logger): GatewayResponse {
  const error = err instanceof GatewayError ? err : internalError(err);
  if (!(err instanceof GatewayError)) {
    logger.log('error', { msg: 'unhandled error', requestId: ctx.requestId, route: ctx.route, error: describeError(err) });
  }
  return ctx.fail(error);
}

function logRequest(logger: Logger, req: GatewayRequest, ctx: RequestContext, status: number, streamError: unknown): void {
  const answered = ctx.tries.find((t) => t.outcome === 'ok' || t.outcome === 'answered');
  logger.log(status >= 500 ? 'error' : 'info', {
    msg: 'request',
    requestId: ctx.requestId,
    route: ctx.route,
    method: req.method,
    key: ctx.key?.name,
    model: ctx.model === undefined ? undefined : clip(ctx.model),
    deployment: answered?.deployment,
    // Which priority group served, and whether the pool's best group could not (PTU overflow).
    priority: answered?.priority,
    spilled: answered === undefined ? undefined : answered.spilled === true,
    tried: ctx.tries.length,
    tries: ctx.tries.length > 1 || (ctx.tries.length === 1 && !answered) ? ctx.tries : undefined,
    status,
    error: ctx.errorCode,
    streamError: streamError === null ? undefined : streamError === 'client closed' ? 'client closed' : describeError(streamError),
    firstByteMs: round(ctx.headersMs),
    totalMs: round(ctx.elapsedMs()),
    usage: ctx.usage,
  });
}

function round(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms * 100) / 100;
}
