import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';

/**
 * A local Azure Web PubSub that follows the documented protocols closely
 * enough that the real @azure/web-pubsub SDK and a plain WebSocket client
 * cannot tell: the client endpoint /client/hubs/{hub} with access-token (JWT)
 * validation, the simple and json.webpubsub.azure.v1 client protocols, groups
 * from the token, CloudEvents posted to the event handler with real
 * ce-signature values (connect is synchronous and can refuse; user events are
 * posted one at a time per connection; a non-2xx answer drops the client),
 * the abuse-protection handshake, and the REST calls the gateway makes (send
 * to connection, send to group, close connection) with their JWT checked.
 */
interface Connection {
  readonly id: string;
  readonly userId?: string;
  readonly groups: Set<string>;
  readonly json: boolean;
  readonly ws: WebSocket;
  queue: Promise<void>;
}

export interface StandInOptions {
  /** Serve HTTPS and WSS with this certificate (identity mode needs TLS: SDKs send tokens over it only). */
  readonly tls?: { cert: Buffer; key: Buffer };
  /** Accept REST calls carrying this identity's Entra ID tokens (the gateway's managed identity). */
  readonly restIdentity?: { isValid(token: string): boolean };
  /** Event handler auth set to the service's managed identity: the token it sends with each event. */
  readonly eventToken?: () => string;
}

export interface EventRecord {
  readonly type: string;
  readonly connectionId: string;
  readonly handler: string;
  readonly status: number;
}

export class WebPubSubStandIn {
  readonly accessKey = randomBytes(32).toString('base64');
  /** Event handler URLs; events go to them in turn when `alternate` is set, else to the first. */
  handlers: string[] = [];
  alternate = false;
  /** Deliver every user event twice with the same ce-id, as a retry after a timeout would. */
  duplicateEvents = false;
  readonly events: EventRecord[] = [];
  readonly connections = new Map<string, Connection>();
  readonly restCalls: { method: string; path: string; status: number }[] = [];
  private next = 0;
  private server?: http.Server | https.Server;
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('json.webpubsub.azure.v1') ? 'json.webpubsub.azure.v1' : false) });

  constructor(readonly hub = 'realtime', readonly options: StandInOptions = {}) {}

  async start(): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.rest(req, res);
    this.server = this.options.tls ? https.createServer(this.options.tls, handler) : http.createServer(handler);
    this.server.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.address = `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Kept from start: posts still in flight while it closes need it. */
  private address = '';

  get endpoint(): string {
    return this.address;
  }

  get connectionString(): string {
    return `Endpoint=${this.endpoint};AccessKey=${this.accessKey};Version=1.0;`;
  }

  async close(): Promise<void> {
    for (const c of this.connections.values()) c.ws.terminate();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The abuse-protection handshake the service makes before it posts events to a handler. */
  async validate(handler: string, origin = new URL(this.endpoint).host): Promise<{ status: number; allowed: string | null }> {
    const res = await fetch(handler, { method: 'OPTIONS', headers: { 'WebHook-Request-Origin': origin } });
    return { status: res.status, allowed: res.headers.get('webhook-allowed-origin') };
  }

  signature(connectionId: string): string {
    return `sha256=${createHmac('sha256', this.accessKey).update(connectionId).digest('hex')}`;
  }

  /** Posts one CloudEvent to a handler, as the service does. */
  async post(handler: string, type: string, eventName: string, c: { id: string; userId?: string }, body: Buffer | string, contentType: string, id = randomBytes(8).toString('hex'), signature = this.signature(c.id)): Promise<{ status: number; body: Buffer; contentType: string | null }> {
    const headers: Record<string, string> = {
      'content-type': contentType,
      'ce-specversion': '1.0',
      'ce-type': type,
      'ce-source': `/hubs/${this.hub}/client/${c.id}`,
      'ce-id': id,
      'ce-time': new Date().toISOString(),
      'ce-awpsversion': '1.0',
      'ce-hub': this.hub,
      'ce-connectionId': c.id,
      'ce-eventName': eventName,
      'ce-signature': signature,
      'WebHook-Request-Origin': new URL(this.endpoint).host,
    };
    if (c.userId) headers['ce-userId'] = c.userId;
    if (this.options.eventToken) headers.authorization = `Bearer ${this.options.eventToken()}`;
    try {
      const res = await fetch(handler, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
      const out = Buffer.from(await res.arrayBuffer());
      this.events.push({ type, connectionId: c.id, handler, status: res.status });
      return { status: res.status, body: out, contentType: res.headers.get('content-type') };
    } catch {
      this.events.push({ type, connectionId: c.id, handler, status: 0 });
      return { status: 0, body: Buffer.alloc(0), contentType: null };
    }
  }

  private pickHandler(): string {
    const h = this.handlers[this.alternate ? this.next++ % this.handlers.length : 0];
    if (!h) throw new Error('no event handler configured');
    return h;
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', this.endpoint);
    const refuse = (status: number): void => void socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    if (url.pathname !== `/client/hubs/${this.hub}`) return refuse(404);
    const claims = verifyJwt(url.searchParams.get('access_token') ?? '', this.accessKey, `${this.endpoint}/client/hubs/${this.hub}`);
    if (!claims) return refuse(401);
    const id = randomBytes(9).toString('base64url');
    const userId = typeof claims.sub === 'string' ? claims.sub : undefined;
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    const connect = await this.post(this.pickHandler(), 'azure.webpubsub.sys.connect', 'connect', { id, userId },
      JSON.stringify({ claims, query: Object.fromEntries([...url.searchParams].map(([k, v]) => [k, [v]])), subprotocols: offered, clientCertificates: [] }), 'application/json; charset=utf-8');
    if (connect.status < 200 || connect.status >= 300) return refuse(connect.status === 0 ? 500 : connect.status);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const groups = new Set<string>(Array.isArray(claims['webpubsub.group']) ? (claims['webpubsub.group'] as string[]) : []);
      const c: Connection = { id, userId, groups, json: ws.protocol === 'json.webpubsub.azure.v1', ws, queue: Promise.resolve() };
      this.connections.set(id, c);
      void this.post(this.pickHandler(), 'azure.webpubsub.sys.connected', 'connected', c, '{}', 'application/json');
      ws.on('message', (data, isBinary) => {
        if (c.json) return; // the gateway's own connections only listen
        c.queue = c.queue.then(() => this.userEvent(c, Buffer.from(data as Buffer), isBinary));
      });
      ws.on('close', () => {
        this.connections.delete(id);
        void c.queue.then(() => this.post(this.pickHandler(), 'azure.webpubsub.sys.disconnected', 'disconnected', c, JSON.stringify({ reason: null }), 'application/json'));
      });
      ws.on('error', () => {});
    });
  }

  /** One client message as a user event; each waits for the one before it, as the service's do. */
  private async userEvent(c: Connection, data: Buffer, isBinary: boolean): Promise<void> {
    const id = randomBytes(8).toString('hex');
    const times = this.duplicateEvents ? 2 : 1;
    for (let i = 0; i < times; i++) {
      const res = await this.post(this.pickHandler(), 'azure.webpubsub.user.message', 'message', c, data, isBinary ? 'application/octet-stream' : 'text/plain', id);
      if (res.status < 200 || res.status >= 300) {
        // The service drops a client whose user event was refused.
        c.ws.close(1011, 'event handler failed');
        return;
      }
      if (i === 0 && res.body.length > 0) c.ws.send(res.contentType?.startsWith('text/') ? res.body.toString('utf8') : res.body);
    }
  }

  private async rest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', this.endpoint);
    const answer = (status: number, value?: unknown) => {
      this.restCalls.push({ method: req.method ?? '', path: url.pathname, status });
      res.writeHead(status, value === undefined ? {} : { 'content-type': 'application/json' }).end(value === undefined ? undefined : JSON.stringify(value));
    };
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const byIdentity = this.options.restIdentity?.isValid(token) ?? false;
    const claims = byIdentity || verifyJwt(token, this.accessKey, `${this.endpoint}${req.url}`) || verifyJwt(token, this.accessKey, `${this.endpoint}${url.pathname}`);
    if (!claims) return answer(401, { code: 'Unauthorized', message: 'Invalid token.' });
    if (!url.searchParams.get('api-version')) return answer(400, { code: 'InvalidApiVersion', message: 'api-version is required.' });
    const text = String(req.headers['content-type'] ?? '').startsWith('text/');
    const hub = `/api/hubs/${this.hub}`;
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = new RegExp(`^${hub}/connections/([^/]+)/:send$`).exec(url.pathname))) {
      const c = this.connections.get(decodeURIComponent(m[1]));
      if (!c) return answer(404, { code: 'NotFound', message: 'Connection not found.' });
      this.deliver(c, body, text, 'server');
      return answer(202);
    }
    if (req.method === 'POST' && (m = new RegExp(`^${hub}/groups/([^/]+)/:send$`).exec(url.pathname))) {
      const group = decodeURIComponent(m[1]);
      for (const c of this.connections.values()) if (c.groups.has(group)) this.deliver(c, body, text, 'group', group);
      return answer(202);
    }
    if (req.method === 'POST' && url.pathname === `${hub}/:generateToken`) {
      // What an identity-based client asks for instead of signing client tokens with a key.
      const minutes = Number(url.searchParams.get('minutesToExpire') ?? 60);
      const claims: Record<string, unknown> = { aud: `${this.endpoint}/client/hubs/${this.hub}`, exp: Math.floor(Date.now() / 1000) + minutes * 60 };
      if (url.searchParams.get('userId')) claims.sub = url.searchParams.get('userId');
      if (url.searchParams.getAll('role').length) claims.role = url.searchParams.getAll('role');
      if (url.searchParams.getAll('group').length) claims['webpubsub.group'] = url.searchParams.getAll('group');
      return answer(200, { token: signJwt(claims, this.accessKey) });
    }
    if (req.method === 'DELETE' && (m = new RegExp(`^${hub}/connections/([^/]+)$`).exec(url.pathname))) {
      this.connections.get(decodeURIComponent(m[1]))?.ws.close(1000, url.searchParams.get('reason') ?? undefined);
      return answer(204);
    }
    return answer(404, { code: 'NotFound', message: 'Unknown API.' });
  }

  private deliver(c: Connection, body: Buffer, text: boolean, from: 'server' | 'group', group?: string): void {
    if (c.json) {
      c.ws.send(JSON.stringify({ type: 'message', from, ...(group ? { group } : {}), dataType: text ? 'text' : 'binary', data: text ? body.toString('utf8') : body.toString('base64') }));
    } else {
      c.ws.send(text ? body.toString('utf8') : body);
    }
  }
}

function signJwt(claims: Record<string, unknown>, key: string): string {
  const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${h}.${p}.${createHmac('sha256', key).update(`${h}.${p}`).digest('base64url')}`;
}

/** HS256 JWT check: signature with the access key, audience and expiry. */
function verifyJwt(token: string, key: string, audience: string): Record<string, unknown> | undefined {
  const [h, p, s] = token.split('.');
  if (!h || !p || !s) return undefined;
  const expected = createHmac('sha256', key).update(`${h}.${p}`).digest();
  const given = Buffer.from(s, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    if (header.alg !== 'HS256') return undefined;
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return undefined;
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(audience)) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}
