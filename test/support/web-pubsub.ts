import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';

/**
 * A local Azure Web PubSub that is no kinder than the real service. Each rule
 * names its source; where the sources are silent it does the harsher thing.
 *
 * Sources, as cited below:
 *   [spec]     azure-rest-api-specs, specification/webpubsub/data-plane/WebPubSub/routes.tsp and its examples
 *   [#47]      Azure/azure-webpubsub issue 47 (send to a connection that does not exist: "nothing happens")
 *   [#15907]   azure-rest-api-specs PR 15907 (202 is fire-and-forget: the service does not know who received it)
 *   [#199]     Azure/azure-webpubsub issue 199 (a connection is not registered while connect/connected run)
 *   [events]   learn.microsoft.com/azure/azure-web-pubsub/reference-cloud-events
 *   [internals] learn.microsoft.com/azure/azure-web-pubsub/concept-service-internals
 *   [json]     learn.microsoft.com/azure/azure-web-pubsub/reference-json-webpubsub-subprotocol
 *   [rest]     learn.microsoft.com/azure/azure-web-pubsub/reference-rest-api-data-plane
 *   [connect]  learn.microsoft.com/azure/azure-web-pubsub/howto-websocket-connect
 *   [emulator] Azure/azure-webpubsub tools/emulator (PRs 1090, 1124, 1126, 1129), which follows the runtime
 *   [sdk]      @azure/web-pubsub-express (isWebPubSubRequest requires ce-awpsversion) and the .NET RequestValidator
 */
interface Connection {
  readonly id: string;
  readonly userId?: string;
  readonly groups: Set<string>;
  readonly roles: Set<string>;
  readonly json: boolean;
  readonly subprotocol?: string;
  readonly ws: WebSocket;
  /** Sends and HEAD see it only once this is true. */
  reachable: boolean;
  /** Blocking events (user messages) of this connection, one after another. */
  queue: Promise<void>;
  /** ce-id: a per-connection sequence, connect = 0 [emulator PR 1124]. */
  nextEventId: number;
  readonly acks: Set<number>;
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
  readonly id: string;
}

export type EventName = 'connect' | 'connected' | 'disconnected' | 'message';

const TYPES: Record<EventName, string> = {
  connect: 'azure.webpubsub.sys.connect',
  connected: 'azure.webpubsub.sys.connected',
  disconnected: 'azure.webpubsub.sys.disconnected',
  message: 'azure.webpubsub.user.message',
};
const PUBSUB_PROTOCOL = 'json.webpubsub.azure.v1';
/** "The maximum allowed message size for one WebSocket frame is 1MB" [internals]. */
const MAX_FRAME = 1024 * 1024;
/** Content types a send may carry [spec MessageContentType]. */
const SEND_TYPES = ['application/json', 'application/octet-stream', 'text/plain'];

export class WebPubSubStandIn {
  /** Both access keys: events are signed with each, REST tokens may be signed with either [events, rest]. */
  readonly keys: [string, string] = [newKey(), newKey()];
  /** Event handler URLs. Which one gets an event is `route`'s choice: the service has no affinity [internals]. */
  handlers: string[] = [];
  /** Round-robin over the handlers instead of always the first. */
  alternate = false;
  /** Overrides the handler choice per event (e.g. `connected` to another instance than `connect`). */
  route?: (event: EventName, connectionId: string) => string | undefined;
  /** How long after `connected` is posted the connection becomes reachable (sends before that are dropped). */
  reachableDelayMs = 0;
  /**
   * When true, a PubSub-protocol connection is accepted but never told it is
   * connected: a service that stops answering midway through an open (the
   * docs give no bound on how long one may take, so none is assumed).
   */
  withholdConnected = false;
  /** Retry delays after a network error, 408 or 5xx, with the same ce-id and body [emulator PR 1126: 1, 3, 5 s]. */
  retryDelaysMs: number[] = [1000, 3000, 5000];
  /** Deliver every user event twice with the same ce-id, as a retry after a lost answer would. */
  duplicateEvents = false;
  readonly events: EventRecord[] = [];
  readonly connections = new Map<string, Connection>();
  readonly restCalls: { method: string; path: string; status: number }[] = [];
  private next = 0;
  private server?: http.Server | https.Server;
  private readonly validated = new Map<string, number>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME,
    // The handshake answers with what the connect handler chose, and nothing else [events: connect response].
    handleProtocols: (_offered, req) => (req as http.IncomingMessage & { chosenProtocol?: string }).chosenProtocol ?? false,
  });

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

  get accessKey(): string {
    return this.keys[0];
  }

  /** The connection string the portal shows for a key (primary by default). */
  connectionString(which: 0 | 1 = 0): string {
    return `Endpoint=${this.endpoint};AccessKey=${this.keys[which]};Version=1.0;`;
  }

  /** Regenerates one key: tokens and signatures made with the old one stop working at once. */
  regenerateKey(which: 0 | 1): void {
    this.keys[which] = newKey();
  }

  async close(): Promise<void> {
    for (const c of this.connections.values()) c.ws.terminate();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The abuse-protection handshake the service makes before it posts events to a handler [events: abuse protection]. */
  async validate(handler: string, origin = new URL(this.endpoint).host): Promise<{ status: number; allowed: string | null }> {
    const res = await fetch(handler, { method: 'OPTIONS', headers: { 'WebHook-Request-Origin': origin, 'ce-awpsversion': '1.0' } });
    return { status: res.status, allowed: res.headers.get('webhook-allowed-origin') };
  }

  /** `sha256=<primary>,sha256=<secondary>`: one signature per access key [events: ce-signature]. */
  signature(connectionId: string): string {
    return this.keys.map((k) => `sha256=${createHmac('sha256', k).update(connectionId).digest('hex')}`).join(',');
  }

  /** Posts one CloudEvent to a handler once, as the service does (no retries: see `deliver`). */
  async post(handler: string, event: EventName, c: { id: string; userId?: string; subprotocol?: string }, body: Buffer | string, contentType: string, id = randomBytes(8).toString('hex'), signature = this.signature(c.id)): Promise<{ status: number; body: Buffer; contentType: string | null }> {
    const headers: Record<string, string> = {
      'content-type': contentType,
      'ce-specversion': '1.0',
      'ce-type': TYPES[event],
      'ce-source': `/hubs/${this.hub}/client/${c.id}`,
      'ce-id': id,
      'ce-time': new Date().toISOString(),
      // Not in the doc, but the SDKs require it and the emulator sends it [sdk, emulator].
      'ce-awpsversion': '1.0',
      // Lower-cased, as the service sends it whatever case the hub was named in (Azure/azure-sdk-for-js#22134).
      'ce-hub': this.hub.toLowerCase(),
      'ce-connectionId': c.id,
      'ce-eventName': event,
      'ce-signature': signature,
      'WebHook-Request-Origin': new URL(this.endpoint).host,
    };
    // Only when there is one [events].
    if (c.userId) headers['ce-userId'] = c.userId;
    if (c.subprotocol) headers['ce-subprotocol'] = c.subprotocol;
    if (this.options.eventToken) headers.authorization = `Bearer ${this.options.eventToken()}`;
    try {
      const res = await fetch(handler, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
      const out = Buffer.from(await res.arrayBuffer());
      this.events.push({ type: TYPES[event], connectionId: c.id, handler, status: res.status, id });
      return { status: res.status, body: out, contentType: res.headers.get('content-type') };
    } catch {
      this.events.push({ type: TYPES[event], connectionId: c.id, handler, status: 0, id });
      return { status: 0, body: Buffer.alloc(0), contentType: null };
    }
  }

  /**
   * Posts an event with the service's retry policy: a network error, 408 or
   * 5xx is retried after 1, 3 and 5 seconds with the same id and body, each
   * time to whichever instance the route picks [emulator PR 1126]. The
   * handler must first pass abuse protection [events], which blocks delivery.
   */
  private async deliver(event: EventName, c: Connection | { id: string; userId?: string; subprotocol?: string }, body: Buffer | string, contentType: string, id: string): Promise<{ status: number; body: Buffer; contentType: string | null }> {
    let res: { status: number; body: Buffer; contentType: string | null } = { status: 0, body: Buffer.alloc(0), contentType: null };
    for (let attempt = 0; attempt <= this.retryDelaysMs.length; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, this.retryDelaysMs[attempt - 1]));
      const handler = this.pickHandler(event, c.id);
      if (!handler) continue;
      if (!(await this.passesAbuseProtection(handler))) {
        res = { status: 0, body: Buffer.alloc(0), contentType: null };
        continue;
      }
      res = await this.post(handler, event, c, body, contentType, id);
      if (res.status !== 0 && res.status !== 408 && res.status < 500) return res;
    }
    return res;
  }

  /** The validation result is cached per URL for 60 s on success [emulator AbuseProtector]. */
  private async passesAbuseProtection(handler: string): Promise<boolean> {
    if ((this.validated.get(handler) ?? 0) > Date.now()) return true;
    const host = new URL(this.endpoint).host;
    const { status, allowed } = await this.validate(handler).catch(() => ({ status: 0, allowed: null }));
    const ok = status === 200 && (allowed === '*' || (allowed ?? '').split(',').map((s) => s.trim()).includes(host));
    if (ok) this.validated.set(handler, Date.now() + 60_000);
    return ok;
  }

  private pickHandler(event: EventName, connectionId: string): string | undefined {
    const chosen = this.route?.(event, connectionId);
    if (chosen) return chosen;
    if (this.handlers.length === 0) return undefined;
    return this.handlers[this.alternate ? this.next++ % this.handlers.length : 0];
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', this.endpoint);
    const refuse = (status: number, body = ''): void => void socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    if (url.pathname !== `/client/hubs/${this.hub}`) return refuse(404);
    // The token comes in access_token, or in the Authorization header [connect]; the query wins [emulator].
    const token = url.searchParams.get('access_token') ?? /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const claims = this.verifyAny(token, `${this.endpoint}/client/hubs/${this.hub}`);
    if (!claims) return refuse(401);
    const id = randomBytes(9).toString('base64url');
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'access_token').map(([k, v]) => [k, [v]]));
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== 'authorization').map(([k, v]) => [k, [v].flat()]));
    const claimUser = typeof claims.sub === 'string' ? claims.sub : undefined;
    // connect is blocking: the handshake waits for its answer [events: connect].
    const connect = await this.deliver('connect', { id, userId: claimUser }, JSON.stringify({ claims, query, headers, subprotocols: offered, clientCertificates: [] }), 'application/json; charset=utf-8', '0');
    if (connect.status < 200 || connect.status >= 300) {
      // A 4xx answer is returned to the client as it is [events]; anything else is the service's own failure.
      return connect.status >= 400 && connect.status < 500 ? refuse(connect.status, connect.body.toString('utf8')) : refuse(500);
    }
    let answer: { userId?: string; groups?: string[]; roles?: string[]; subprotocol?: string } = {};
    if (connect.status === 200 && connect.body.length > 0) {
      try {
        answer = JSON.parse(connect.body.toString('utf8'));
      } catch {
        return refuse(500);
      }
    }
    const userId = answer.userId ?? claimUser;
    // "The connection is dropped if the userId can be read from neither" [events].
    if (!userId) return refuse(401);
    let chosen = answer.subprotocol;
    // A chosen protocol must be one the client offered [events]; with none chosen, the
    // service keeps its own PubSub protocol if offered [emulator PR 1129].
    if (chosen !== undefined && !offered.includes(chosen)) return refuse(500);
    if (chosen === undefined && offered.includes(PUBSUB_PROTOCOL)) chosen = PUBSUB_PROTOCOL;
    (req as http.IncomingMessage & { chosenProtocol?: string }).chosenProtocol = chosen;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const roles = new Set<string>([...[claims.role ?? []].flat(), ...(answer.roles ?? [])] as string[]);
      const groups = new Set<string>([...[claims['webpubsub.group'] ?? []].flat(), ...(answer.groups ?? [])] as string[]);
      const c: Connection = { id, userId, groups, roles, json: chosen === PUBSUB_PROTOCOL, subprotocol: chosen, ws, reachable: false, queue: Promise.resolve(), nextEventId: 1, acks: new Set() };
      this.connections.set(id, c);
      // connected is an unblocking notification: posted, not awaited, possibly to another instance [events, internals].
      void this.deliver('connected', c, '{}', 'application/json', String(c.nextEventId++));
      // Registered only now, and later still if a test says so: until then, sends are dropped and HEAD says 404 [#199].
      const register = () => {
        if (this.connections.get(id) !== c) return;
        c.reachable = true;
        if (c.json && !this.withholdConnected) ws.send(JSON.stringify({ type: 'system', event: 'connected', userId, connectionId: id }));
      };
      // Frames wait for registration: the service's receive loop starts after it [emulator ClientConnectionHandler].
      const registered = this.reachableDelayMs > 0 ? new Promise<void>((r) => setTimeout(() => (register(), r()), this.reachableDelayMs)) : (register(), Promise.resolve());
      c.queue = registered;
      ws.on('message', (data, isBinary) => {
        const frame = Buffer.from(data as Buffer);
        c.queue = c.queue.then(() => (c.json ? this.pubsubRequest(c, frame) : this.userEvent(c, frame, isBinary)));
      });
      ws.on('close', () => {
        c.reachable = false;
        if (this.connections.get(id) === c) this.connections.delete(id);
        // Always sent after a successful connect [events], after the events before it.
        void c.queue.then(() => this.deliver('disconnected', c, JSON.stringify({ reason: null }), 'application/json', String(c.nextEventId++)));
      });
      ws.on('error', () => {});
    });
  }

  /**
   * One client frame as a user event. User events are blocking: the next is
   * not posted until this one is answered [events]. A 2xx body goes to the
   * client; anything else, after retries, drops the client [events, internals].
   */
  private async userEvent(c: Connection, data: Buffer, isBinary: boolean): Promise<void> {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    const id = String(c.nextEventId++);
    const times = this.duplicateEvents ? 2 : 1;
    for (let i = 0; i < times; i++) {
      const res = await this.deliver('message', c, data, isBinary ? 'application/octet-stream' : 'text/plain', id);
      if (res.status < 200 || res.status >= 300) {
        c.ws.close(1011, 'event handler failed');
        return;
      }
      if (i === times - 1 && res.body.length > 0 && c.ws.readyState === WebSocket.OPEN) {
        c.ws.send(res.contentType?.startsWith('application/octet-stream') ? res.body : res.body.toString('utf8'));
      }
    }
  }

  /** A request on the json.webpubsub.azure.v1 protocol: groups need the matching role [json, internals]. */
  private async pubsubRequest(c: Connection, frame: Buffer): Promise<void> {
    let request: { type?: string; group?: string; ackId?: number; dataType?: string; data?: unknown; noEcho?: boolean };
    try {
      request = JSON.parse(frame.toString('utf8'));
    } catch {
      return;
    }
    const ack = (success: boolean, error?: { name: string; message: string }) => {
      if (request.ackId !== undefined && c.ws.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify({ type: 'ack', ackId: request.ackId, success, ...(error ? { error } : {}) }));
    };
    if (request.ackId !== undefined) {
      // The same ackId twice is answered Duplicate [json].
      if (c.acks.has(request.ackId)) return ack(false, { name: 'Duplicate', message: 'Message with ack-id has been processed.' });
      c.acks.add(request.ackId);
    }
    const group = request.group ?? '';
    const may = (role: string) => c.roles.has(role) || c.roles.has(`${role}.${group}`);
    switch (request.type) {
      case 'joinGroup':
      case 'leaveGroup':
        if (!validGroup(group) || !may('webpubsub.joinLeaveGroup')) return ack(false, { name: 'Forbidden', message: 'The connection has no permission to join or leave this group.' });
        if (request.type === 'joinGroup') c.groups.add(group);
        else c.groups.delete(group);
        return ack(true);
      case 'sendToGroup': {
        if (!validGroup(group) || !may('webpubsub.sendToGroup')) return ack(false, { name: 'Forbidden', message: 'The connection has no permission to send to this group.' });
        const text = request.dataType === 'binary' ? Buffer.from(String(request.data), 'base64') : request.dataType === 'json' ? JSON.stringify(request.data) : String(request.data);
        for (const member of this.connections.values()) {
          if (member.reachable && member.groups.has(group) && !(request.noEcho && member === c)) this.send(member, Buffer.from(text), request.dataType === 'binary' ? 'application/octet-stream' : request.dataType === 'json' ? 'application/json' : 'text/plain', 'group', group);
        }
        return ack(true);
      }
      default:
        return ack(false, { name: 'InternalServerError', message: `Unsupported request type ${request.type}.` });
    }
  }

  private async rest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', this.endpoint);
    const answer = (status: number, value?: unknown) => {
      this.restCalls.push({ method: req.method ?? '', path: url.pathname, status });
      res.writeHead(status, value === undefined ? {} : { 'content-type': 'application/json' }).end(value === undefined || req.method === 'HEAD' ? undefined : JSON.stringify(value));
    };
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const byIdentity = this.options.restIdentity?.isValid(token) ?? false;
    // aud is the request URL; the SDK signs it with the query, so the query is left out of both sides [rest, sdk].
    if (!byIdentity && !this.verifyAny(token, `${this.endpoint}${url.pathname}`)) return answer(401, { code: 'Unauthorized', message: 'Invalid token.' });
    if (!url.searchParams.get('api-version')) return answer(400, { code: 'InvalidApiVersion', message: 'api-version is required.' });
    const contentType = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const hub = `/api/hubs/${this.hub}`;
    const path = (pattern: string) => new RegExp(`^${hub}${pattern}$`).exec(url.pathname)?.slice(1).map(decodeURIComponent);
    let m: string[] | undefined;
    if (req.method === 'POST' && (m = path('/connections/([^/]+)/:send'))) {
      if (!SEND_TYPES.includes(contentType)) return answer(415, { code: 'UnsupportedMediaType', message: 'Use application/json, application/octet-stream or text/plain.' });
      // 202 whether or not the connection exists or is reachable yet: the message is simply dropped [spec, #47, #15907].
      const c = this.connections.get(m[0]);
      if (c?.reachable) this.send(c, body, contentType, 'server');
      return answer(202);
    }
    if (req.method === 'POST' && (m = path('/groups/([^/]+)/:send'))) {
      if (!SEND_TYPES.includes(contentType)) return answer(415, { code: 'UnsupportedMediaType', message: 'Use application/json, application/octet-stream or text/plain.' });
      if (!validGroup(m[0])) return answer(400, { code: 'InvalidGroup', message: 'Group names are 1 to 1024 characters.' });
      const excluded = new Set(url.searchParams.getAll('excluded'));
      for (const c of this.connections.values()) if (c.reachable && c.groups.has(m[0]) && !excluded.has(c.id)) this.send(c, body, contentType, 'group', m[0]);
      return answer(202);
    }
    if (req.method === 'HEAD' && (m = path('/connections/([^/]+)'))) {
      return answer(this.connections.get(m[0])?.reachable ? 200 : 404);
    }
    if (req.method === 'HEAD' && (m = path('/groups/([^/]+)'))) {
      // "Check if there are any client connections inside the given group" [spec GroupExists].
      return answer([...this.connections.values()].some((c) => c.reachable && c.groups.has(m![0])) ? 200 : 404);
    }
    if (req.method === 'PUT' && (m = path('/groups/([^/]+)/connections/([^/]+)'))) {
      const c = this.connections.get(m[1]);
      if (!c?.reachable) return answer(404, { code: 'NotFound', message: 'Connection not found.' });
      c.groups.add(m[0]);
      return answer(200);
    }
    if (req.method === 'DELETE' && (m = path('/groups/([^/]+)/connections/([^/]+)'))) {
      this.connections.get(m[1])?.groups.delete(m[0]);
      return answer(204);
    }
    if (req.method === 'POST' && url.pathname === `${hub}/:generateToken`) {
      // What an identity-based client asks for instead of signing client tokens with a key.
      const minutes = Number(url.searchParams.get('minutesToExpire') ?? 60);
      const claims: Record<string, unknown> = { aud: `${this.endpoint}/client/hubs/${this.hub}`, exp: Math.floor(Date.now() / 1000) + minutes * 60 };
      if (url.searchParams.get('userId')) claims.sub = url.searchParams.get('userId');
      if (url.searchParams.getAll('role').length) claims.role = url.searchParams.getAll('role');
      if (url.searchParams.getAll('group').length) claims['webpubsub.group'] = url.searchParams.getAll('group');
      return answer(200, { token: signJwt(claims, this.keys[0]) });
    }
    if (req.method === 'DELETE' && (m = path('/connections/([^/]+)'))) {
      // 204 even for an unknown connection [spec, emulator].
      this.connections.get(m[0])?.ws.close(1000, url.searchParams.get('reason') ?? undefined);
      return answer(204);
    }
    return answer(404, { code: 'NotFound', message: 'Unknown API.' });
  }

  /** What a client receives for a send: raw frames for simple clients, envelopes for PubSub clients [json, events]. */
  private send(c: Connection, body: Buffer, contentType: string, from: 'server' | 'group', group?: string): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.json) {
      const dataType = contentType === 'application/octet-stream' ? 'binary' : contentType === 'application/json' ? 'json' : 'text';
      const data = dataType === 'binary' ? body.toString('base64') : dataType === 'json' ? JSON.parse(body.toString('utf8')) : body.toString('utf8');
      c.ws.send(JSON.stringify({ type: 'message', from, ...(group ? { group } : {}), dataType, data }));
    } else {
      c.ws.send(contentType === 'application/octet-stream' ? body : body.toString('utf8'));
    }
  }

  /** A token signed with either access key. */
  private verifyAny(token: string, audience: string): Record<string, unknown> | undefined {
    for (const key of this.keys) {
      const claims = verifyJwt(token, key, audience);
      if (claims) return claims;
    }
    return undefined;
  }
}

function newKey(): string {
  // The emulator requires at least 32 bytes [emulator EmulatorOptions].
  return randomBytes(32).toString('base64');
}

/** 1 to 1024 characters, not only whitespace [spec]. */
function validGroup(name: string): boolean {
  return name.length >= 1 && name.length <= 1024 && name.trim().length > 0;
}

function signJwt(claims: Record<string, unknown>, key: string): string {
  const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${h}.${p}.${createHmac('sha256', key).update(`${h}.${p}`).digest('base64url')}`;
}

/** HS256 JWT check: signature with the access key, audience (query ignored on both sides) and expiry. */
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
    const strip = (u: unknown) => String(u).split('?')[0].replace(/\/$/, '');
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.map(strip).includes(strip(audience))) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}
