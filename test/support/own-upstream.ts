import http from 'node:http';
import { AddressInfo } from 'node:net';

export interface OwnUpstream {
  readonly url: string;
  /** Requests it received, in order. */
  readonly requests: { method: string; path: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/**
 * A small upstream of a test's own, for answers the simulator has no switch
 * for (malformed streams, compressed bodies, odd error texts): `answer` gets
 * every request, its body already read. `keepAliveTimeoutMs` is how long it
 * keeps an idle connection (and says so in Keep-Alive); Node's 5 s otherwise.
 */
export async function startOwnUpstream(answer: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void | Promise<void>, options: { keepAliveTimeoutMs?: number } = {}): Promise<OwnUpstream> {
  const requests: OwnUpstream['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
      void answer(req, res, Buffer.concat(chunks));
    });
  });
  if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
