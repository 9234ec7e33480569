/**
 * The calibration floor for `npm run bench`: the thinnest honest proxy for the
 * same job, written the way a developer would in an afternoon on node:http with
 * a keep-alive agent. It checks the key, parses the body for `model`, picks a
 * deployment round-robin (that front is floor-front.ts, which the ladder's
 * rungs share) and pipes the answer back; nothing else (no request id, no log
 * line, no failover, no usage). Run in a process of its own, like the
 * gateway, so both are measured alike.
 */
import http from 'node:http';
import { fail, floorServer, listen, upstream, upstreamKey } from './floor-front';

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 256, scheduling: 'lifo' });

const server = floorServer((path, body, res) => {
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
  call.end(body);
});

listen(server, 'thin proxy');
