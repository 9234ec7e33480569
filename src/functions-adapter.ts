import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createGateway } from './bootstrap';
import { Gateway } from './gateway/gateway';
import { ClientGone, GatewayRequest, GatewayResponse, ResponseBody } from './core/http';
import { RequestContext } from './gateway/context';
import { newRequestId } from './core/request-id';
import { Level, Logger } from './core/log';
import { errorResponse, serve } from './gateway/pipeline';
import { Route, Timer } from './gateway/route';
import { describeError } from './core/log';

/**
 * The only module that knows the Functions host: it registers a route-table
 * entry as an HTTP function (translating requests and responses) and a timer
 * as a timer-triggered function.
 */
let gateway: Gateway | undefined;

/** One gateway per worker process, built at the first invocation from app settings. */
function instance(): Gateway {
  gateway ??= createGateway(process.env);
  return gateway;
}

export function register(route: Route): void {
  app.http(route.name, {
    methods: [...route.methods],
    route: route.route,
    // The gateway checks proxy keys itself; function keys would break OpenAI clients.
    authLevel: 'anonymous',
    handler: (request, context) => handle(route, request, context),
  });
}

/** A timer-triggered function: the host runs one at a time across all instances. */
export function registerTimer(timer: Timer): void {
  app.timer(timer.name, {
    schedule: timer.schedule,
    handler: async (_info, context) => {
      try {
        await timer.run(instance());
      } catch (err) {
        context.error(JSON.stringify({ level: 'error', msg: 'timer failed', timer: timer.name, error: describeError(err) }));
      }
    },
  });
}

/**
 * The worker is shutting down (a scale-in, a deployment): its realtime
 * sessions are handed over at once rather than after their lease. Only
 * those: a response still streaming to a client goes on to its end (the
 * connections to Azure are left for the process's exit to close).
 */
export function registerShutdown(): void {
  app.hook.appTerminate(async () => {
    await gateway?.realtime?.close();
  });
}

const noBody: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };

/**
 * The host's HTTP request behind each invocation, by invocation id. With HTTP
 * streaming the host forwards the client's request to a server the library
 * runs in the worker, tagged `x-ms-invocation-id`, and relays the answer
 * (Azure/azure-functions-host, DefaultHttpProxyService). The library keeps
 * that exchange to itself (@azure/functions 4.x, http/httpProxy.ts): it
 * neither tells the function that the client left nor ends the exchange when
 * a body fails midway, which leaves the client waiting for bytes that never
 * come until the host's 240 s activity timeout. Node announces every request
 * its HTTP servers start on this channel, the library's among them, so the
 * gateway can do both itself.
 */
const exchanges = new Map<string, ServerResponse>();
subscribe('http.server.request.start', (message) => {
  const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
  const id = request.headers['x-ms-invocation-id'];
  if (typeof id !== 'string' || id === '') return;
  exchanges.set(id, response);
  response.once('close', () => {
    if (exchanges.get(id) === response) exchanges.delete(id);
  });
});

/**
 * Ties a request to its exchange with the host: the client leaving (the host
 * closes the exchange before its answer was sent) cancels the request's
 * upstream call, as on the local host.
 */
function goneWith(exchange: ServerResponse | undefined): ClientGone {
  const gone = new ClientGone();
  exchange?.once('close', () => {
    if (!exchange.writableFinished) gone.fire();
  });
  return gone;
}

/**
 * A streamed body as the library should take it. A body that fails midway
 * breaks the exchange, so the host breaks the client's response (as the local
 * host destroys its socket): ended quietly, a cut-off answer would look
 * whole, or hang on its unmet Content-Length. And the body is held back while
 * the exchange is full: the library writes each chunk without waiting for the
 * host to take the last (Azure/azure-functions-nodejs-library#294), so a slow
 * client would otherwise have the whole answer read from Azure into memory.
 */
function forHost(exchange: ServerResponse | undefined, body: ResponseBody | undefined): ResponseBody | undefined {
  if (exchange === undefined || !(body instanceof Readable)) return body;
  return heldBack(body, exchange);
}

async function* heldBack(body: Readable, exchange: ServerResponse): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of body) {
      if (exchange.writableNeedDrain) await drained(exchange);
      yield chunk as Uint8Array;
    }
  } catch (err) {
    // The client left first (its body was cancelled for it): ended quietly, since the request's log line
    // says so and the invocation did nothing wrong; failing it would count every hang-up as a failure.
    if (exchange.destroyed) return;
    exchange.destroy();
    throw err;
  }
}

/** The exchange took what it was given, or closed (its client left: the body then fails, as it is cancelled). */
function drained(exchange: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      exchange.off('drain', done).off('close', done);
      resolve();
    };
    exchange.on('drain', done).on('close', done);
  });
}

async function handle(route: Route, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const url = new URL(request.url);
  const exchange = exchanges.get(context.invocationId);
  const req: GatewayRequest = {
    method: request.method,
    path: url.pathname,
    query: url.search.slice(1),
    params: request.params,
    header: (name) => request.headers.get(name) ?? undefined,
    body: (request.body as AsyncIterable<Uint8Array> | null) ?? noBody,
    gone: goneWith(exchange),
  };
  const logger = new InvocationLogger(context);
  let res: GatewayResponse;
  try {
    res = await serve(route, req, instance(), logger);
  } catch (err) {
    // serve() answers every error of a request; this is the gateway failing to start. Unanswered, the
    // invocation would leave the client waiting on the host (Azure/azure-functions-nodejs-library#324).
    const ctx = new RequestContext(newRequestId(), route.name);
    res = errorResponse(err, ctx, logger);
    res.headers['x-request-id'] = ctx.requestId;
  }
  logger.invocationDone = true;
  return { status: res.status, headers: res.headers, body: forHost(exchange, res.body) };
}

/**
 * Logs through the invocation's logger (Application Insights traces) while the
 * invocation runs, and through the console once a streamed response outlives
 * it, where the context logger would only warn.
 */
class InvocationLogger implements Logger {
  invocationDone = false;

  constructor(private readonly context: InvocationContext) {}

  log(level: Level, fields: Record<string, unknown>): void {
    const line = JSON.stringify({ level, ...fields });
    const sink = this.invocationDone ? console : this.context;
    if (level === 'error') sink.error(line);
    else if (level === 'warn') sink.warn(line);
    else sink.info(line);
  }
}
