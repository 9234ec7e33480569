import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { createGateway } from './bootstrap';
import { Gateway } from './gateway/gateway';
import { ClientGone, GatewayRequest } from './core/http';
import { Level, Logger } from './core/log';
import { serve } from './gateway/pipeline';
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

async function handle(route: Route, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const url = new URL(request.url);
  const req: GatewayRequest = {
    method: request.method,
    path: url.pathname,
    query: url.search.slice(1),
    params: request.params,
    header: (name) => request.headers.get(name) ?? undefined,
    body: (request.body as AsyncIterable<Uint8Array> | null) ?? noBody,
    // The host does not tell a worker that the client left; streams end when the host stops reading.
    gone: new ClientGone(),
  };
  const logger = new InvocationLogger(context);
  const res = await serve(route, req, instance(), logger);
  logger.invocationDone = true;
  return { status: res.status, headers: res.headers, body: res.body };
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
