import http from 'node:http';
import net from 'node:net';
import { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';

/** What the proxy was asked for: a tunnel (CONNECT host:port) or a forwarded request (its absolute URL). */
export interface ProxiedCall {
  readonly kind: 'connect' | 'forward';
  /** host:port for a tunnel, the absolute URL for a forwarded request. */
  readonly target: string;
  /** The Proxy-Authorization header the client sent, if any. */
  readonly authorization?: string;
}

export interface ForwardProxy {
  /** http://[user:password@]127.0.0.1:<port> */
  readonly url: string;
  readonly calls: ProxiedCall[];
  /** Connections open to the proxy now (from clients, and its own onward ones). */
  openSockets(): number;
  close(): Promise<void>;
}

/**
 * A corporate forward proxy, as RFC 9110 and RFC 9112 describe one:
 *
 * - CONNECT host:port opens a tunnel: `200` and then the bytes both ways,
 *   unchanged (RFC 9110, 9.3.6); the client's TLS runs inside it.
 * - A request in absolute form (`GET http://host/path`) is forwarded (RFC 9112,
 *   3.2.2), its Proxy-Authorization consumed here and never sent on (RFC 9110,
 *   11.7.2: it is for the proxy).
 * - With credentials set, a call without the right Basic credentials gets
 *   `407` with `Proxy-Authenticate: Basic` (RFC 9110, 15.5.8, 11.7.1), and a
 *   CONNECT that is refused opens no tunnel.
 * - An origin it cannot reach is `502` (RFC 9110, 15.6.3).
 * - `stall`: it takes the connection and then says nothing, as an overloaded
 *   or firewalled proxy does; nothing bounds that wait but the client's own timer.
 */
export async function startForwardProxy(credentials?: { user: string; password: string }, options: { stall?: boolean } = {}): Promise<ForwardProxy> {
  const calls: ProxiedCall[] = [];
  const expected = credentials === undefined ? undefined : `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`;
  const admitted = (authorization: string | undefined) => expected === undefined || authorization === expected;
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  const server = http.createServer((req, res) => {
    const authorization = req.headers['proxy-authorization'];
    calls.push({ kind: 'forward', target: req.url ?? '', authorization });
    if (options.stall) return;
    if (!admitted(authorization)) return void res.writeHead(407, { 'proxy-authenticate': 'Basic realm="proxy"', 'content-length': '0' }).end();
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      return void res.writeHead(400, { 'content-length': '0' }).end();
    }
    const { 'proxy-authorization': _consumed, 'proxy-connection': _hop, ...headers } = req.headers;
    const onward = http.request({ hostname: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    onward.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502, { 'content-length': '0' }).end()));
    req.pipe(onward);
  });
  server.on('connection', track);
  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    const authorization = req.headers['proxy-authorization'];
    calls.push({ kind: 'connect', target: req.url ?? '', authorization });
    // Says nothing, but reads on and closes when the client does, as a real proxy's socket does (Node's server sockets are half-open).
    if (options.stall) return void client.resume().once('end', () => client.destroy());
    if (!admitted(authorization)) return void client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n');
    const [host, port] = splitAuthority(req.url ?? '');
    const origin = net.connect(port, host);
    track(origin);
    origin.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) origin.write(head);
      origin.pipe(client);
      client.pipe(origin);
    });
    origin.on('error', () => (client.writable && origin.connecting ? client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n') : client.destroy()));
    client.on('error', () => origin.destroy());
    client.once('close', () => origin.destroy());
    origin.once('close', () => client.destroy());
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const userinfo = credentials === undefined ? '' : `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@`;
  return {
    url: `http://${userinfo}127.0.0.1:${port}`,
    calls,
    openSockets: () => sockets.size,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function splitAuthority(authority: string): [string, number] {
  const at = authority.lastIndexOf(':');
  return [authority.slice(0, at).replace(/^\[(.+)\]$/, '$1'), Number(authority.slice(at + 1))];
}
