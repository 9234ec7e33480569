import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import { EntraTokenValidator } from './event-auth';
import { tlsOptions } from '../config/service-tls';
import { WebSocket } from 'ws';
import { readBody } from '../bodies/body';
import { WebPubSubSettings } from '../config/config';
import { GatewayError, badRequest, unauthorized } from '../core/errors';
import { Gateway } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';
import { describeError } from '../core/log';
import { connectRealtime, requireRealtimeModel } from './upstream';
import { Relay, errorEvent } from './relay';
import { ProxyKey } from '../keys/proxy-key';

/**
 * Realtime sessions over Azure Web PubSub. The client's socket ends at Web
 * PubSub, which posts each of its events to /realtime/events on any instance.
 *
 * The instance that handles a client's `connect` event owns the session: it
 * opens Azure's realtime socket and, before answering, a service-side
 * connection of its own to Web PubSub that is a member of the session's group.
 * Every client event, on whichever instance it lands, is forwarded to that
 * group (the owner's own included, so all events take one path and keep
 * their order); the owner passes them to Azure, skipping any event id it has
 * seen (Web PubSub retries). Azure's events go back with send-to-connection,
 * one at a time. Either side closing ends the other.
 */
const SESSION_PREFIX = 'session.';
const RELAY_PREFIX = 'relay.';
const TOKEN_MINUTES = 5;
const RELAY_PROTOCOL = 'json.webpubsub.azure.v1';

interface Envelope {
  /** The CloudEvent id, for deduplication at the owner. */
  readonly id?: string;
  readonly data?: string;
  /** The client disconnected (seen by a non-owner). */
  readonly end?: boolean;
}

class OwnedSession {
  relay?: Relay;
  /** A send to the client has succeeded: it is connected. */
  reached = false;
  relayWs?: WebSocket;
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];

  /** True the first time an event id is seen; remembers the last 4,096. */
  firstTime(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    this.order.push(id);
    if (this.order.length > 4096) this.seen.delete(this.order.shift()!);
    return true;
  }
}

export class RealtimeHub {
  private readonly service: WebPubSubServiceClient;
  private readonly owned = new Map<string, OwnedSession>();
  private readonly origin: string;

  private readonly validator?: EntraTokenValidator;
  private readonly socketOptions: { ca?: Buffer };

  constructor(private readonly gateway: Gateway, private readonly settings: WebPubSubSettings) {
    const tls = gateway.serviceTls;
    const options = { allowInsecureConnection: settings.mode === 'key', ...tlsOptions(tls) };
    if (settings.mode === 'key') {
      this.service = new WebPubSubServiceClient(settings.connectionString, settings.hub, options);
    } else {
      if (!gateway.credential) throw new Error('Web PubSub by identity needs a credential');
      this.service = new WebPubSubServiceClient(settings.endpoint, gateway.credential, settings.hub, options);
      this.validator = new EntraTokenValidator(settings.eventIssuer, settings.eventAudience, undefined, gateway.now);
    }
    this.socketOptions = tls ? { ca: tls.ca } : {};
    this.origin = new URL(this.service.endpoint).host;
  }

  /** Sessions this instance owns now. */
  get openSessions(): number {
    return this.owned.size;
  }

  async startSession(model: unknown, key: ProxyKey | undefined): Promise<GatewayResponse> {
    const name = requireRealtimeModel(this.gateway, model, key);
    const id = `sess_${randomBytes(12).toString('base64url')}`;
    const userId = `${SESSION_PREFIX}${id}.${Buffer.from(name).toString('base64url')}`;
    const { url } = await this.service.getClientAccessToken({ userId, expirationTimeInMinutes: TOKEN_MINUTES });
    return jsonResponse(200, { id, object: 'realtime.session', model: name, url, expires_at: Math.floor(this.gateway.now() / 1000) + TOKEN_MINUTES * 60 });
  }

  /** Web PubSub's CloudEvents HTTP protocol: abuse protection, signatures, then the event. */
  async handle(req: GatewayRequest): Promise<GatewayResponse> {
    if (req.method === 'OPTIONS') return this.abuseProtection(req);
    const connectionId = req.header('ce-connectionid') ?? '';
    if (!(await this.fromService(req, connectionId))) {
      throw unauthorized('The event is not signed by this gateway\'s Web PubSub service.');
    }
    if (req.header('ce-hub') !== this.settings.hub) throw badRequest('The event is for another hub.', null, 'wrong_hub');
    const type = req.header('ce-type') ?? '';
    const userId = req.header('ce-userid') ?? '';
    const body = await readBody(req.body, 1024 * 1024);
    if (userId.startsWith(RELAY_PREFIX)) return { status: 204, headers: {} }; // the owners' own connections
    switch (type) {
      case 'azure.webpubsub.sys.connect':
        return this.onConnect(connectionId, userId);
      case 'azure.webpubsub.sys.connected':
        return { status: 204, headers: {} };
      case 'azure.webpubsub.sys.disconnected':
        await this.toOwner(connectionId, { end: true }).catch(() => {});
        return { status: 204, headers: {} };
      case 'azure.webpubsub.user.message':
        // Always 2xx: Web PubSub drops the client when a user event gets anything else.
        await this.toOwner(connectionId, { id: req.header('ce-id'), data: body.toString('utf8') }).catch((err) => this.tellClient(connectionId, err));
        return { status: 204, headers: {} };
      default:
        return { status: 204, headers: {} };
    }
  }

  close(): void {
    for (const [connectionId, s] of this.owned) this.teardown(connectionId, s, false);
  }

  private abuseProtection(req: GatewayRequest): GatewayResponse {
    const origins = (req.header('webhook-request-origin') ?? '').split(',').map((o) => o.trim());
    if (!origins.includes(this.origin)) return { status: 400, headers: {} };
    return { status: 200, headers: { 'webhook-allowed-origin': this.origin } };
  }

  /** By access key: the ce-signature HMAC. By identity: the service's Entra ID token. */
  private async fromService(req: GatewayRequest, connectionId: string): Promise<boolean> {
    if (!connectionId) return false;
    if (this.settings.mode === 'identity') return this.validator!.valid(req.header('authorization'));
    return this.signedWith(this.settings.accessKey, connectionId, req.header('ce-signature'));
  }

  private signedWith(accessKey: string, connectionId: string, header: string | undefined): boolean {
    if (!header) return false;
    const expected = Buffer.from(`sha256=${createHmac('sha256', accessKey).update(connectionId).digest('hex')}`);
    let ok = false;
    for (const candidate of header.split(',').map((s) => Buffer.from(s.trim()))) {
      ok = (candidate.length === expected.length && timingSafeEqual(candidate, expected)) || ok;
    }
    return ok;
  }

  private async onConnect(connectionId: string, userId: string): Promise<GatewayResponse> {
    if (!userId.startsWith(SESSION_PREFIX)) return jsonResponse(401, { code: 'unauthorized', error: 'not a gateway session' });
    if (this.owned.has(connectionId)) return jsonResponse(200, {}); // a retried connect
    const model = Buffer.from(userId.slice(userId.lastIndexOf('.') + 1), 'base64url').toString('utf8');
    const session = new OwnedSession();
    this.owned.set(connectionId, session);
    try {
      session.relayWs = await this.joinGroup(connectionId, session);
    } catch (err) {
      this.owned.delete(connectionId);
      this.gateway.logger.log('error', { msg: 'realtime: could not join the session group', error: describeError(err) });
      return jsonResponse(500, { code: 'relay_unavailable' });
    }
    const tries: import('../balancer/balancer').TryRecord[] = [];
    try {
      const azure = await connectRealtime(this.gateway, model, tries);
      session.relay = new Relay(
        azure,
        (text) => this.sendToClient(connectionId, session, text),
        (reason) => {
          this.gateway.logger.log('info', { msg: 'realtime session ended', model, reason });
          this.teardown(connectionId, session, reason !== 'client closed');
        },
      );
      this.gateway.logger.log('info', { msg: 'realtime session started', model, deployment: tries.at(-1)?.deployment, tried: tries.length });
    } catch (err) {
      this.gateway.logger.log('warn', { msg: 'realtime: Azure refused the session', model, tries, error: err instanceof GatewayError ? err.code : describeError(err) });
      // The client is connected only once this answer is in: tell it, then close it, just after.
      void this.failAfterConnect(connectionId, session, err);
    }
    return jsonResponse(200, {});
  }

  /** A service-side connection in the session's group: where client events reach the owner. */
  private async joinGroup(connectionId: string, session: OwnedSession): Promise<WebSocket> {
    const { url } = await this.service.getClientAccessToken({ userId: `${RELAY_PREFIX}${connectionId}`, groups: [groupOf(connectionId)], expirationTimeInMinutes: TOKEN_MINUTES });
    const ws = new WebSocket(url, RELAY_PROTOCOL, this.socketOptions);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', () => reject(new Error('relay connection refused')));
    });
    ws.on('error', () => {});
    ws.on('message', (raw) => {
      let envelope: Envelope;
      try {
        const message = JSON.parse(String(raw)) as { type?: string; from?: string; data?: unknown };
        if (message.type !== 'message' || message.from !== 'group' || typeof message.data !== 'string') return;
        envelope = JSON.parse(message.data) as Envelope;
      } catch {
        return;
      }
      if (envelope.end) return session.relay ? session.relay.end('client closed') : this.teardown(connectionId, session, false);
      if (envelope.id !== undefined && !session.firstTime(envelope.id)) return;
      if (typeof envelope.data === 'string') session.relay?.fromClient(envelope.data);
    });
    return ws;
  }

  /**
   * Azure speaks first (session.created) while Web PubSub is still waiting for
   * this instance's answer to `connect`, so until one send has gone through,
   * a send to the not-yet-connected client is retried for a few seconds.
   */
  private async sendToClient(connectionId: string, session: OwnedSession, text: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.service.sendToConnection(connectionId, text, { contentType: 'text/plain' });
        session.reached = true;
        return;
      } catch (err) {
        if (session.reached || attempt >= 50 || this.owned.get(connectionId) !== session) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async toOwner(connectionId: string, envelope: Envelope): Promise<void> {
    await this.service.group(groupOf(connectionId)).sendToAll(JSON.stringify(envelope), { contentType: 'text/plain' });
  }

  private async tellClient(connectionId: string, err: unknown): Promise<void> {
    this.gateway.logger.log('warn', { msg: 'realtime: could not relay a client event', error: describeError(err) });
    await this.service.sendToConnection(connectionId, errorEvent('relay_failed', 'The gateway could not pass this event on. Send it again.'), { contentType: 'text/plain' }).catch(() => {});
  }

  private async failAfterConnect(connectionId: string, session: OwnedSession, err: unknown): Promise<void> {
    const why = err instanceof GatewayError ? err.message : 'The realtime service could not be reached.';
    const event = errorEvent(err instanceof GatewayError && err.status === 429 ? 'rate_limit_exceeded' : 'upstream_unavailable', why);
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await this.service.sendToConnection(connectionId, event, { contentType: 'text/plain' });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.teardown(connectionId, session, true);
  }

  private teardown(connectionId: string, session: OwnedSession, closeClient: boolean): void {
    if (this.owned.get(connectionId) !== session) return;
    this.owned.delete(connectionId);
    session.relay?.end('client closed');
    session.relayWs?.close();
    if (closeClient) void this.service.closeConnection(connectionId, { reason: 'realtime session ended' }).catch(() => {});
  }
}

function groupOf(connectionId: string): string {
  return `session-${connectionId}`;
}
