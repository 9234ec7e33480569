/**
 * The calibration floor for `npm run bench`: the thinnest honest proxy for the
 * same job, written the way a developer would in an afternoon on node:http with
 * a keep-alive agent. It checks the key, parses the body for `model`, picks a
 * deployment round-robin and pipes the answer back; nothing else (no request
 * id, no log line, no failover, no usage). Run in a process of its own, like
 * the gateway, so both are measured alike. Settings come from the environment:
 * FLOOR_KEY (the proxy key), FLOOR_UPSTREAM (the simulator's origin),
 * FLOOR_UPSTREAM_KEY (its api-key), FLOOR_MODELS (JSON: model -> deployments).
 */
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';

const upstream = new URL(process.env.FLOOR_UPSTREAM ?? '');
const upstreamKey = process.env.FLOOR_UPSTREAM_KEY ?? '';
const models = new Map<string, string[]>(Object.entries(JSON.parse(process.env.FLOOR_MODELS ?? '{}')));
const expected = Buffer.from(`Bearer ${process.env.FLOOR_KEY ?? ''}`);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 256, scheduling: 'lifo' });
let cursor = 0;

function fail(res: http.ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } }));
}

const server = http.createServer((req, res) => {
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
    const pool = typeof model === 'string' ? models.get(model) : undefined;
    if (pool === undefined) return fail(res, 404, 'unknown model');
    const deployment = pool[cursor++ % pool.length];
    const call = http.request({
      hostname: upstream.hostname, port: upstream.port, agent, method: 'POST',
      path: `/openai/deployments/${deployment}/chat/completions?api-version=2025-04-01-preview`,
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
    call.end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  console.log(`thin proxy listening on http://127.0.0.1:${port}`);
});
process.once('SIGTERM', () => process.exit(0));
