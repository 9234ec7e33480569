/**
 * The calibration floor's front (thin-proxy.ts), shared with the ladder's
 * rungs (rungs.ts) so that they differ from the floor only where they say:
 * the key checked, the body read and parsed for `model`, a deployment picked
 * round-robin, and the call upstream left to `send`. Settings come from the
 * environment: FLOOR_KEY (the proxy key), FLOOR_UPSTREAM (the simulator's
 * origin), FLOOR_UPSTREAM_KEY (its api-key), FLOOR_MODELS (JSON: model ->
 * deployments).
 */
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';

export const upstream = new URL(process.env.FLOOR_UPSTREAM ?? '');
export const upstreamKey = process.env.FLOOR_UPSTREAM_KEY ?? '';
export const proxyKey = process.env.FLOOR_KEY ?? '';
const models = new Map<string, string[]>(Object.entries(JSON.parse(process.env.FLOOR_MODELS ?? '{}')));
const expected = Buffer.from(`Bearer ${proxyKey}`);
let cursor = 0;

/** The upstream path for a model's next deployment in turn; undefined for a model not configured. */
export function pathFor(model: unknown): string | undefined {
  const pool = typeof model === 'string' ? models.get(model) : undefined;
  if (pool === undefined) return undefined;
  return `/openai/deployments/${pool[cursor++ % pool.length]}/chat/completions?api-version=2025-04-01-preview`;
}

export function fail(res: http.ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } }));
}

/** A node:http server doing the floor's part of a request, then `send(path, body, res)`. */
export function floorServer(send: (path: string, body: Buffer, res: http.ServerResponse) => void): http.Server {
  return http.createServer((req, res) => {
    const presented = Buffer.from(req.headers.authorization ?? '');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return fail(res, 401, 'bad key');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      let model: unknown;
      try {
        model = JSON.parse(body.toString('utf8')).model;
      } catch {
        return fail(res, 400, 'bad json');
      }
      const path = pathFor(model);
      if (path === undefined) return fail(res, 404, 'unknown model');
      send(path, body, res);
    });
  });
}

/**
 * The floor's call upstream: node:http with a keep-alive agent, the answer
 * piped back. `writeLater` makes the call one turn of the event loop later,
 * as undici writes a request onto a keep-alive connection that sat idle
 * (the ladder's `wait` rung: what that wait does to a proxy, apart from
 * any client).
 */
export function nodeHttpSend(writeLater = false): (path: string, body: Buffer, res: http.ServerResponse) => void {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 256, scheduling: 'lifo' });
  return (path, body, res) => {
    const call = http.request({
      hostname: upstream.hostname, port: upstream.port, agent, method: 'POST', path,
      headers: { 'content-type': 'application/json', 'api-key': upstreamKey, 'content-length': body.length },
    }, (answer) => {
      const headers: http.OutgoingHttpHeaders = { 'content-type': answer.headers['content-type'] };
      if (answer.headers['content-length'] !== undefined) headers['content-length'] = answer.headers['content-length'];
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
    });
    call.on('error', () => (res.headersSent ? res.destroy() : fail(res, 502, 'upstream failed')));
    // A client that leaves cancels the upstream call.
    res.on('close', () => {
      if (!res.writableFinished) call.destroy();
    });
    if (writeLater) setImmediate(() => call.end(body));
    else call.end(body);
  };
}

/** Listens on a free loopback port and says where, as the bench's process starter waits for. */
export function listen(server: http.Server, name: string): void {
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    console.log(`${name} listening on http://127.0.0.1:${port}`);
  });
  process.once('SIGTERM', () => process.exit(0));
}
