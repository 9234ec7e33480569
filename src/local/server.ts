import http from 'node:http';
import { AddressInfo } from 'node:net';
import { Duplex, Readable, pipeline } from 'node:stream';
import { GatewayError, clip, headersTooLarge, malformedHttp, requestTimedOut, upgradeRequired } from '../core/errors';
import { refusalFor } from '../handlers/unmatched';
import { Gateway } from '../gateway/gateway';
import { ClientGone, GatewayRequest, GatewayResponse } from '../core/http';
import { serve } from '../gateway/pipeline';
import { Route, takesMethod } from '../gateway/route';
import { Router } from '../gateway/router';
import { DirectOptions, DirectRealtime } from '../realtime/direct';
import { CorsPolicy } from './cors';
import { describeError } from '../core/log';
import { timerTable } from '../timers';

/**
 * The host-less server: serves the same route table as the Functions app on
 * plain node:http, so the whole product runs and is tested without Azure.
 */
export interface LocalServerOptions {
  /** Largest request head accepted, in bytes (node's own default is 16 KiB). */
  readonly maxHeaderSize?: number;
  /** How long a client may take to send a request's head (default 66 s, past the keep-alive timeout). */
  readonly headersTimeoutMs?: number;
  readonly realtime?: DirectOptions;
}

/** The one path a connection may be upgraded on (a WebSocket); any other Upgrade is served as plain HTTP/1.1. */
const REALTIME_PATH = '/v1/realtime';

/** Whether a response of this status carries a body, and so its length: not 1xx or 204 (which must not send one, RFC 9110, 8.6), nor 304 (whose length would describe the resource, not this answer). */
function hasBody(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304;
}

/** The most of a refused body read on and dropped, and for how long, before its connection is closed instead (nginx's lingering_time is 30 s). */
const DRAIN_BYTES = 128 * 1024 * 1024;
const DRAIN_MS = 30_000;

function pathOf(url: string | undefined): string {
  return (url ?? '').split('?')[0];
}

export class LocalServer {
  readonly server: http.Server;
  readonly realtime: DirectRealtime;
  private readonly router: Router;
  private readonly cors: CorsPolicy;
  private readonly intervals: NodeJS.Timeout[];

  constructor(private readonly gateway: Gateway, routes: readonly Route[], options: LocalServerOptions = {}) {
    this.router = new Router(routes);
    this.cors = new CorsPolicy(gateway.config.corsAllowedOrigins);
    const headersTimeout = options.headersTimeoutMs ?? 66_000;
    const serverOptions: http.ServerOptions & { shouldUpgradeCallback?: (req: http.IncomingMessage) => boolean } = {
      maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
      headersTimeout,
      // Node checks for late heads on this interval (30 s by default): often enough for the timeout to mean what it says.
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(headersTimeout / 4))),
      // `curl --http2` asks every request to upgrade to h2c: answer it as HTTP/1.1, as the standard allows.
      shouldUpgradeCallback: (req) => pathOf(req.url) === REALTIME_PATH,
    };
    this.server = http.createServer(serverOptions, (req, res) => void this.onRequest(req, res));
    this.realtime = new DirectRealtime(gateway, options.realtime);
    // What a timer function does on Azure, a plain interval does here.
    this.intervals = timerTable.map((t) => setInterval(() => {
      t.run(gateway).catch((err) => gateway.logger.log('error', { msg: 'timer failed', timer: t.name, error: describeError(err) }));
    }, t.everyMs).unref());
    this.server.on('upgrade', (req, socket, head) => {
      if (pathOf(req.url) === REALTIME_PATH) void this.realtime.upgrade(req, socket, head);
      else socket.destroy();
    });
    this.server.keepAliveTimeout = 65_000;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => this.onClientError(err, socket));
  }

  /** Per connection: how many responses are under way, and the last request read (a broken request behind them must not write into them). */
  private readonly underway = new WeakMap<Duplex, { count: number; last: http.IncomingMessage }>();
  /** Connections to end once their responses under way are done. */
  private readonly endWhenDone = new WeakSet<Duplex>();

  /** A request Node could not parse, or that did not arrive in time: answered in OpenAI's shape, unless a response is under way. */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const under = this.underway.get(socket);
    if (under !== undefined && under.count > 0) {
      // Garbage pipelined behind a whole request: its response finishes, then the connection closes.
      if (under.last.complete && socket.writable) return void this.endWhenDone.add(socket);
      // The request itself broke off (the client left mid-body): its handler must see it go.
      return void socket.destroy();
    }
    if (!socket.writable) return void socket.destroy();
    const error = err.code === 'HPE_HEADER_OVERFLOW' ? headersTooLarge() : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? requestTimedOut() : malformedHttp();
    socket.end(error.toRawHttp());
  }

  /**
   * Counts a response under way on its connection until it closes, and tells
   * the request if its client left first. One listener for both: a listener
   * and a once() wrapper fewer per request.
   */
  private track(req: http.IncomingMessage, res: http.ServerResponse, gone: ClientGone): void {
    const socket = req.socket;
    const under = this.underway.get(socket) ?? { count: 0, last: req };
    under.count++;
    under.last = req;
    this.underway.set(socket, under);
    res.on('close', () => {
      // Counted first: the request's listeners run after, and none of them can leave the count behind.
      if (--under.count === 0 && this.endWhenDone.has(socket)) socket.end();
      if (!res.writableFinished) gone.fire();
    });
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return this.url;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    for (const i of this.intervals) clearInterval(i);
    this.realtime.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const match = this.router.match(path);

    const gone = new ClientGone();
    this.track(req, res, gone);
    const request: GatewayRequest = {
      method: req.method ?? 'GET',
      path,
      query: q < 0 ? '' : raw.slice(q + 1),
      params: match?.params ?? {},
      header: (name) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v.join(', ') : v;
      },
      body: req,
      gone,
    };

    if (match !== undefined && CorsPolicy.isPreflight(request)) {
      const methods = match.route.methods;
      return this.write(req, res, await this.answer('preflight', async () => this.cors.preflight(request, methods), request));
    }
    let response: GatewayResponse;
    if (path === REALTIME_PATH && this.gateway.directRealtime) {
      // The direct socket's address, asked without an upgrade.
      response = await this.refuse(upgradeRequired(`${clip(request.method)} ${REALTIME_PATH} is a WebSocket endpoint: connect to it with a WebSocket client (Upgrade: websocket), as the README's realtime section shows.`), request);
    } else if (match === undefined || !takesMethod(match.route, request.method)) {
      response = await this.refuse(refusalFor(this.router, request.method, path), request);
    } else {
      response = await serve(match.route, request, this.gateway);
    }
    this.cors.decorate(request, response);
    this.write(req, res, response);
  }

  /** A request no route takes: answered by the pipeline all the same, for its request id and its log line. */
  private refuse(error: GatewayError, request: GatewayRequest): Promise<GatewayResponse> {
    return this.answer('none', () => Promise.reject(error), request);
  }

  /** An answer of the host's own (no route's), through the pipeline as every request goes: its request id and its log line. */
  private answer(name: string, handler: Route['handler'], request: GatewayRequest): Promise<GatewayResponse> {
    return serve({ name, methods: [], route: '', auth: false, handler }, request, this.gateway);
  }

  /**
   * A body refused before its end (too large, say) is read on and dropped, as
   * nginx's lingering close does: a client still sending gets to read the
   * answer only if its sending does not fail first, and the SDKs take a send
   * that fails for a broken connection and send the whole upload again. Up to
   * DRAIN_BYTES more and DRAIN_MS; past either, or when it declared more
   * than that, the connection closes instead.
   */
  private drainRefused(req: http.IncomingMessage, response: GatewayResponse): void {
    const declared = Number(req.headers['content-length']);
    if (req.destroyed || declared > DRAIN_BYTES) {
      response.headers.connection = 'close';
      return;
    }
    const socket = req.socket;
    let dropped = 0;
    const cut = setTimeout(() => socket.destroy(), DRAIN_MS).unref();
    req.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > DRAIN_BYTES) socket.destroy();
    });
    req.once('close', () => clearTimeout(cut));
    req.resume();
  }

  private write(req: http.IncomingMessage, res: http.ServerResponse, response: GatewayResponse): void {
    const body = response.body;
    if (!req.complete && response.status >= 400) this.drainRefused(req, response);
    if (res.destroyed) {
      if (body instanceof Readable) body.destroy();
      return;
    }
    if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) {
      // A whole body goes with its length: chunked framing costs every client that parses it.
      if (response.headers['content-length'] === undefined && hasBody(response.status)) {
        response.headers['content-length'] = String(body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
      }
      res.writeHead(response.status, response.headers);
      return void res.end(body);
    }
    res.writeHead(response.status, response.headers);
    if (body instanceof Readable) {
      // An upstream that breaks mid-stream must not look like a clean end to the client.
      body.once('error', () => res.destroy());
      res.once('close', () => {
        if (!body.readableEnded) body.destroy();
      });
      body.pipe(res);
    } else {
      pipeline(Readable.from(body), res, (err) => {
        if (err) res.destroy();
      });
    }
  }
}
