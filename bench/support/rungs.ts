/**
 * The rungs of `npm run bench:ladder`: proxies for the same job as the floor
 * (support/thin-proxy.ts), each with one more part of the gateway than the
 * rung below, so that the CPU the gateway spends beyond the floor can be
 * told apart by part. RUNG picks one:
 *
 * - `wait`: the floor, its call upstream made one turn of the event loop
 *   later, as undici makes a request on a keep-alive connection that sat idle
 *   (since undici 8.4.0, GHSA-35p6-xmwp-9g52): what that wait alone does;
 * - `undici`: the floor's job with undici's Pool in place of node:http's
 *   client (its wait included), and a handler of a few lines: what the
 *   upstream client is built on;
 * - `client`: the floor's front with the gateway's own upstream client (its
 *   reply handler, timers, whole-body read) in place of that handler;
 * - `host`: the gateway's local server and request pipeline (request id,
 *   auth, body read, log line) around a handler that only sends the body on
 *   with that client and answers with the reply.
 *
 * The gateway itself is the rung above `host`: what it adds there is its
 * handlers, balancer, usage and limits. Settings come from the environment as
 * for the floor (see floor-front.ts).
 */
import http from 'node:http';
import { Dispatcher, Pool } from 'undici';
import { UndiciUpstream, UpstreamClient } from '../../src/azure-openai/client';
import { readJsonObject } from '../../src/bodies/body';
import { ClientGone, GatewayRequest, GatewayResponse } from '../../src/core/http';
import { createGateway } from '../../src/bootstrap';
import { LocalServer } from '../../src/local/server';
import { fail, floorServer, listen, nodeHttpSend, pathFor, proxyKey, upstream, upstreamKey } from './floor-front';

/** undici's Pool with a handler that writes the answer through as it comes. */
function undiciRung(): http.Server {
  const pool = new Pool(upstream.origin, { connections: 1024, pipelining: 1 });
  return floorServer((path, body, res) => {
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: () => {},
      onResponseStart(_controller, status, headers) {
        // The simulator sends each of these once: a string, as undici gives a header that is not repeated.
        const out: http.OutgoingHttpHeaders = { 'content-type': headers['content-type'] as string };
        if (headers['content-length'] !== undefined) out['content-length'] = headers['content-length'] as string;
        res.writeHead(status, out);
      },
      onResponseData: (_controller, chunk) => void res.write(chunk),
      onResponseEnd: () => void res.end(),
      onResponseError: () => (res.headersSent ? res.destroy() : fail(res, 502, 'upstream failed')),
    };
    pool.dispatch({ method: 'POST', path, headers: { 'content-type': 'application/json', 'api-key': upstreamKey, 'content-length': String(body.length) }, body }, handler);
  });
}

/** One call through the gateway's upstream client, the answer read whole as the gateway reads a small JSON one. */
async function sendOn(client: UpstreamClient, path: string, body: Buffer, gone: ClientGone): Promise<GatewayResponse & { body: Buffer }> {
  const reply = await client.send({
    origin: upstream.origin, path, method: 'POST', body, gone,
    headers: { 'content-type': 'application/json', 'api-key': upstreamKey },
    headersTimeoutMs: 60_000, idleTimeoutMs: 60_000,
  });
  return { status: reply.status, headers: { 'content-type': reply.headers['content-type'] ?? 'application/json' }, body: await reply.whole(1 << 20) };
}

function clientRung(): http.Server {
  const client = new UndiciUpstream();
  return floorServer((path, body, res) => {
    const gone = new ClientGone();
    res.on('close', () => {
      if (!res.writableFinished) gone.fire();
    });
    sendOn(client, path, body, gone).then(
      // With its length, as the floor and the undici rung answer: chunked framing is the host's step, not this one's.
      (answer) => res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) }).end(answer.body),
      () => fail(res, 502, 'upstream failed'),
    );
  });
}

function hostRung(): http.Server {
  const gateway = createGateway({ PROXY_API_KEY: proxyKey, AZURE_OPENAI_ENDPOINT: upstream.origin, AZURE_OPENAI_API_KEY: upstreamKey, MODEL_DEPLOYMENTS: process.env.FLOOR_MODELS ?? '{}' });
  const client = gateway.azure.client;
  const passOn = async (req: GatewayRequest): Promise<GatewayResponse> => {
    const { raw, value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
    const path = pathFor(value.model);
    if (path === undefined) return { status: 404, headers: { 'content-type': 'application/json' }, body: '{"error":{"message":"unknown model"}}' };
    return sendOn(client, path, raw, req.gone);
  };
  return new LocalServer(gateway, [{ name: 'chatCompletions', methods: ['POST'], route: 'v1/chat/completions', auth: true, handler: passOn }]).server;
}

const rungs: Record<string, () => http.Server> = { wait: () => floorServer(nodeHttpSend(true)), undici: undiciRung, client: clientRung, host: hostRung };
const make = rungs[process.env.RUNG ?? ''];
if (make === undefined) throw new Error(`RUNG must be one of ${Object.keys(rungs).join(', ')}`);
listen(make(), `${process.env.RUNG} rung`);
