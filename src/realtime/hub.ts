/** @module Realtime sessions over Azure Web PubSub across instances: who owns a session, how client events reach it, and who takes over when it is lost. */
import { randomBytes } from 'node:crypto';
import { badRequest, unauthorized, unavailable } from '../core/errors';
import { Gateway, RealtimeSessions, StartedSession } from '../gateway/gateway';
import { GatewayRequest, GatewayResponse } from '../core/http';
import { RateLimitedWarning, describeError } from '../core/log';
import { OwnedSession, SessionContext, groupOf } from './owned-session';
import { PUBSUB_PROTOCOL, ServiceConnection } from './service-connection';
import { LeaseLost, SessionExists, SessionRecord, SessionStore } from './session-store';
import { requireRealtimeModel } from './upstream';
import { ProxyKey } from '../keys/proxy-key';
import { ClientEvent, ConnectAnswer, ConnectEvent, EventCheck, EventHandlers, MessageEvent, WebPubSubEvents } from './web-pubsub-events';
import { WebPubSubService } from './web-pubsub-service';

const SESSION_PREFIX = 'session.';
const INSTANCE_PREFIX = 'instance.';
/** Longest a shutting-down instance waits for its sessions' hand-over to be recorded. */
const CLOSE_WAIT_MS = 2000;
/** Lapsed sessions one sweep takes on at most. */
const SWEEP_BATCH = 50;
/** The most characters of JSON kept of a session's settings until its client connects. */
const MAX_SETTINGS_CHARS = 200_000;

export interface HubOptions {
  readonly service: WebPubSubService;
  readonly check: EventCheck;
  readonly store: SessionStore;
  /** How long a session's lease lasts without renewal (renewed every third of it). */
  readonly leaseMs: number;
}

/**
 * Realtime sessions over Web PubSub. The client's socket ends at Web PubSub,
 * which posts each of its events to /realtime/events on any instance, one
 * event at a time per client.
 *
 * The instance that answers a client's `connect` owns the session: it records
 * a lease in the store, joins the session's group with its one service
 * connection, and opens Azure's socket. A client event landing on any
 * instance is sent to that group (so all of a session's events take one path
 * and keep their order) and, at the same moment, the group is asked whether
 * anyone is in it. Nobody there means the owner is gone or reconnecting: the
 * event is held (the next one waits with it, as Web PubSub waits for our
 * answer) until the owner is back or its lease lapses, when this instance
 * claims the session, resumes it, and delivers the event itself. A sweep
 * (a timer function on Azure, an interval locally) finds lapsed sessions
 * whose clients are silent.
 */
export class RealtimeHub implements RealtimeSessions, EventHandlers {
  readonly instanceId = `${INSTANCE_PREFIX}${randomBytes(6).toString('hex')}`;
  private readonly owned = new Map<string, OwnedSession>();
  private readonly claiming = new Map<string, Promise<OwnedSession | undefined>>();
  private readonly events: WebPubSubEvents;
  private readonly link: ServiceConnection;
  private readonly context: SessionContext;
  private readonly storeWarning: RateLimitedWarning;
  private sweeping?: Promise<void>;

  constructor(private readonly gateway: Gateway, private readonly options: HubOptions) {
    const service = options.service;
    this.events = new WebPubSubEvents(service.settings.hub, service.origin, options.check, this);
    this.link = new ServiceConnection(service, {
      userId: this.instanceId,
      socketOptions: gateway.serviceTls ? { ca: gateway.serviceTls.ca } : {},
      logger: gateway.logger,
      onMessage: (group, text) => this.owned.get(group.slice('session-'.length))?.receive(text),
      onLost: () => void this.handOverAll(),
      restoreMs: options.leaseMs,
    });
    this.context = {
      gateway, service, store: options.store, instanceId: this.instanceId, leaseMs: options.leaseMs, logger: gateway.logger,
      forget: (s) => {
        if (this.owned.get(s.connectionId) === s) this.owned.delete(s.connectionId);
      },
      leaveGroup: (connectionId) => this.link.leave(groupOf(connectionId)),
    };
    this.storeWarning = new RateLimitedWarning(gateway.logger, 60_000, gateway.now);
  }

  private settingsSweptAt = -Infinity;

  /** Sessions this instance owns now. */
  get openSessions(): number {
    return this.owned.size;
  }

  async start(model: unknown, ttlSeconds: number, key: ProxyKey | undefined, settings: Record<string, unknown> = {}): Promise<StartedSession> {
    const name = requireRealtimeModel(this.gateway, model, key);
    const sessionId = `sess_${randomBytes(12).toString('base64url')}`;
    const minutes = Math.max(1, Math.ceil(ttlSeconds / 60));
    // The key's name rides with the session (the connect event may reach any instance): its tokens count on that key.
    const userId = `${SESSION_PREFIX}${sessionId}.${Buffer.from(key?.name ?? '').toString('base64url')}.${Buffer.from(name).toString('base64url')}`;
    const { token, url } = await this.options.service.token(userId, minutes);
    // Kept by session id, for whichever instance the client's connect reaches.
    if (Object.keys(settings).length > 0) {
      const json = JSON.stringify(settings);
      // Table Storage takes 1 MiB per entity, strings counted in UTF-16: a quarter of that leaves room.
      if (json.length > MAX_SETTINGS_CHARS) throw badRequest(`The session's settings are ${json.length} characters of JSON; the gateway keeps up to ${MAX_SETTINGS_CHARS} until the client connects. Send the larger ones (instructions, tools) in a session.update once connected.`, null, 'settings_too_large');
      try {
        await this.options.store.putSettings(sessionId, json, this.gateway.now() + minutes * 60_000);
      } catch (err) {
        this.gateway.logger.log('error', { msg: 'realtime: could not keep a session\'s settings', error: describeError(err) });
        throw unavailable('The gateway could not keep the realtime session\'s settings. Try again.');
      }
    }
    return { sessionId, model: name, token, url, expiresAt: Math.floor(this.gateway.now() / 1000) + minutes * 60 };
  }

  handleEvent(req: GatewayRequest): Promise<GatewayResponse> {
    return this.events.handle(req);
  }

  // ---- Web PubSub's events ----

  async connect(e: ConnectEvent): Promise<ConnectAnswer> {
    if (e.userId.startsWith(INSTANCE_PREFIX)) return { subprotocol: e.subprotocols.includes(PUBSUB_PROTOCOL) ? PUBSUB_PROTOCOL : undefined };
    const session = parseSessionUser(e.userId);
    if (!session) throw unauthorized('This connection was not started by the gateway: call POST /v1/realtime/sessions for a URL.');
    // A client that offers OpenAI's `realtime` subprotocol (OpenAIRealtimeWebSocket does) must get it back.
    const answer = { subprotocol: e.subprotocols.includes('realtime') ? 'realtime' : undefined };
    if (this.owned.has(e.connectionId)) return answer;
    let etag: string;
    let config: string;
    try {
      config = await this.options.store.settingsOf(session.sessionId);
      etag = await this.options.store.create({ connectionId: e.connectionId, sessionId: session.sessionId, model: session.model, keyName: session.keyName, owner: this.instanceId, expiresAt: this.gateway.now() + this.options.leaseMs, ended: false, config, inFlight: '' });
    } catch (err) {
      // Another instance answered this connect before and its answer was lost: the session is theirs.
      if (err instanceof SessionExists) return answer;
      this.gateway.logger.log('error', { msg: 'realtime: could not record a new session', error: describeError(err) });
      throw unavailable('The gateway could not start the realtime session. Try again.');
    }
    const owned = new OwnedSession(this.context, { connectionId: e.connectionId, model: session.model, keyName: session.keyName, config }, etag);
    this.owned.set(e.connectionId, owned);
    try {
      // Joined before the answer: the client's first event may follow it at once.
      await this.link.join(groupOf(e.connectionId));
    } catch (err) {
      this.gateway.logger.log('error', { msg: 'realtime: could not join the session group', error: describeError(err) });
      owned.end('client unreachable');
      throw unavailable('The gateway could not start the realtime session. Try again.');
    }
    void owned.start();
    return answer;
  }

  async connected(e: ClientEvent): Promise<void> {
    if (e.userId.startsWith(INSTANCE_PREFIX)) return;
    // The owner may be elsewhere: tell it, so Azure's held events can go out.
    await this.options.service.sendToGroup(groupOf(e.connectionId), 'c').catch(() => {});
  }

  async disconnected(e: ClientEvent): Promise<void> {
    if (e.userId.startsWith(INSTANCE_PREFIX)) return;
    const local = this.owned.get(e.connectionId);
    if (local) return local.end('client closed');
    const group = groupOf(e.connectionId);
    const [, present] = await Promise.all([this.options.service.sendToGroup(group, 'e'), this.options.service.groupExists(group)]).catch(() => [undefined, false]);
    // No owner heard it: leave a mark, so the session is cleaned up by whoever finds it.
    if (!present) await this.options.store.markEnded(e.connectionId).catch((err) => this.storeWarning.warn({ msg: 'realtime: could not mark a session ended', error: describeError(err) }));
  }

  async message(e: MessageEvent): Promise<void> {
    if (e.userId.startsWith(INSTANCE_PREFIX)) return;
    const group = groupOf(e.connectionId);
    const payload = `d ${e.eventId}\n${e.data}`;
    // The owner itself, still in the group: no need to ask whether anyone is.
    if (this.owned.has(e.connectionId) && this.link.isJoined(group)) return this.options.service.sendToGroup(group, payload);
    const [, present] = await Promise.all([this.options.service.sendToGroup(group, payload), this.options.service.groupExists(group)]);
    if (!present) await this.rescue(e.connectionId, payload);
  }

  // ---- owner loss ----

  /**
   * A client event reached a group with nobody in it. Wait for the owner to
   * come back, or claim the session once its lease lapses; either way the
   * event is delivered. Gives up (the event is lost, the client told) only
   * after the lease time and a margin have passed without either.
   */
  private async rescue(connectionId: string, payload: string): Promise<void> {
    const deadline = this.gateway.now() + this.options.leaseMs + 5000;
    const group = groupOf(connectionId);
    while (this.gateway.now() < deadline) {
      const local = this.owned.get(connectionId);
      if (local) return local.receive(payload);
      const rec = await this.options.store.read(connectionId).catch(() => undefined);
      if (rec === undefined || rec.ended) {
        // No session behind this connection any more.
        await this.options.service.closeConnection(connectionId, 'realtime session ended').catch(() => {});
        return;
      }
      if (rec.expiresAt <= this.gateway.now() || rec.owner === this.instanceId) {
        const claimed = await this.claim(rec);
        if (claimed) return claimed.receive(payload);
      }
      await new Promise((r) => setTimeout(r, 200));
      if (await this.options.service.groupExists(group).catch(() => false)) {
        await this.options.service.sendToGroup(group, payload);
        return;
      }
    }
    this.gateway.logger.log('warn', { msg: 'realtime: a client event found no owner for its session and was dropped' });
  }

  /** Takes a lapsed session over (at most once at a time per session on this instance) and resumes it here. */
  private claim(rec: SessionRecord): Promise<OwnedSession | undefined> {
    let pending = this.claiming.get(rec.connectionId);
    if (!pending) {
      pending = this.takeOver(rec).finally(() => this.claiming.delete(rec.connectionId));
      this.claiming.set(rec.connectionId, pending);
    }
    return pending;
  }

  private async takeOver(rec: SessionRecord): Promise<OwnedSession | undefined> {
    let etag: string;
    try {
      etag = await this.options.store.update(rec.connectionId, rec.etag, { owner: this.instanceId, expiresAt: this.gateway.now() + this.options.leaseMs });
    } catch (err) {
      if (!(err instanceof LeaseLost)) this.storeWarning.warn({ msg: 'realtime: could not claim a lapsed session', error: describeError(err) });
      return undefined;
    }
    const owned = new OwnedSession(this.context, rec, etag);
    this.owned.set(rec.connectionId, owned);
    try {
      await this.link.join(groupOf(rec.connectionId));
    } catch (err) {
      this.gateway.logger.log('error', { msg: 'realtime: could not join a resumed session\'s group', error: describeError(err) });
      void owned.handOver();
      return undefined;
    }
    void owned.resume(rec);
    return owned;
  }

  /** Finds sessions whose owner is gone: resumes those whose client is still there, removes the rest. */
  sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    let lapsed: SessionRecord[];
    const now = this.gateway.now();
    // Settings of tokens that have expired: a minute's lapse costs nothing, so not every sweep looks.
    if (now - this.settingsSweptAt >= 60_000) {
      this.settingsSweptAt = now;
      await this.options.store.dropLapsedSettings(now, SWEEP_BATCH).catch((err) => this.storeWarning.warn({ msg: 'realtime: could not drop lapsed session settings', error: describeError(err) }));
    }
    try {
      lapsed = await this.options.store.lapsed(now, SWEEP_BATCH);
    } catch (err) {
      this.storeWarning.warn({ msg: 'realtime: could not look for lapsed sessions', error: describeError(err) });
      return;
    }
    await Promise.all(lapsed.filter((rec) => !this.owned.has(rec.connectionId)).map(async (rec) => {
      try {
        if (rec.ended || !(await this.options.service.connectionExists(rec.connectionId))) {
          await this.options.store.remove(rec.connectionId, rec.etag).catch(() => {});
          return;
        }
        await this.claim(rec);
      } catch (err) {
        this.storeWarning.warn({ msg: 'realtime: could not take over a lapsed session', error: describeError(err) });
      }
    }));
  }

  /** This instance's service connection is gone for good: let every session go to another instance. */
  private handOverAll(): Promise<void[]> {
    return Promise.all([...this.owned.values()].map((s) => s.handOver()));
  }

  /**
   * Shutting down (a scale-in, a deployment): the sessions are handed over
   * rather than ended, so their clients stay connected and another instance
   * resumes them at once instead of after the lease. Without shared storage
   * no other instance can, and each client is told and closed instead. The
   * wait is short: the platform does not wait long either.
   */
  async close(): Promise<void> {
    const letGo = this.options.store.shared ? this.handOverAll() : Promise.all([...this.owned.values()].map((s) => s.stopServing()));
    await Promise.race([letGo, new Promise((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
    this.link.close();
  }
}

/**
 * `session.<id>.<key name>.<model>`, name and model base64url-encoded (neither
 * the id nor base64url holds a dot). The model stays last, where instances
 * that predate key names look for it; `session.<id>.<model>` is theirs.
 */
function parseSessionUser(userId: string): { sessionId: string; model: string; keyName: string } | undefined {
  if (!userId.startsWith(SESSION_PREFIX)) return undefined;
  const parts = userId.slice(SESSION_PREFIX.length).split('.');
  if (parts.length < 2 || parts.length > 3 || !parts[0]) return undefined;
  const decode = (part: string) => Buffer.from(part, 'base64url').toString('utf8');
  return { sessionId: parts[0], keyName: parts.length === 3 ? decode(parts[1]) : '', model: decode(parts[parts.length - 1]) };
}
