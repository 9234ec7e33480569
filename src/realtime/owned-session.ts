/** @module One realtime session held by this instance: its lease, Azure's socket, the client it waits for, and what it records. */
import { Gateway } from '../gateway/gateway';
import { Logger, describeError } from '../core/log';
import { realtimeForm } from '../azure-openai/wire';
import { TryRecord } from '../balancer/balancer';
import { ConversationRecord, RecordSink } from './conversation';
import { ClientLost, EndReason, Relay, gatewayEventId, refusalReason, refusedEvent, stoppingEvent } from './relay';
import { realtimeUsage } from '../limits/realtime-usage';
import { LeaseLost, SessionPatch, SessionRecord, SessionStore } from './session-store';
import { connectRealtime } from './upstream';
import { WebPubSubService } from './web-pubsub-service';

/** What every session of one instance shares. */
export interface SessionContext {
  readonly gateway: Gateway;
  readonly service: WebPubSubService;
  readonly store: SessionStore;
  readonly instanceId: string;
  readonly leaseMs: number;
  readonly logger: Logger;
  /** The session is no longer this instance's (ended, moved or handed over). */
  forget(session: OwnedSession): void;
  /** Stop hearing the session's client events. */
  leaveGroup(connectionId: string): void;
}

/** How long the owner waits to learn that its client is connected before it gives the session up. */
const REACHABLE_WITHIN_MS = 15_000;
/** Client events that arrive while Azure's socket is still opening, kept in order. */
const MAX_EARLY_EVENTS = 256;
/** Recent client event ids remembered, to drop the service's retried deliveries. */
const SEEN_IDS = 4096;
/**
 * Lease renewals between checks that the client is still connected (every
 * 30 s at the default 6 s lease). Its `disconnected` event is the usual word,
 * but the service does not promise to deliver it (a failed one is only
 * logged: Web PubSub docs, CloudEvents extension, "disconnected"), and sends
 * to a connection that is gone are accepted all the same (202), so without a
 * check a session whose client left unheard would keep Azure's socket open.
 */
const RENEWALS_PER_ALIVE_CHECK = 15;

type Swallow = { created: boolean; updated: boolean; items: Set<string>; events: Set<string> };

/**
 * A session owned by this instance. Until Web PubSub confirms the client is
 * connected (a send before that is accepted and dropped), Azure's events wait
 * here, in order; then they go out one at a time. The owner keeps the
 * session's lease alive in the store, records what a resume needs, and lets
 * go of the session when another instance has claimed it.
 */
export class OwnedSession {
  readonly connectionId: string;
  readonly model: string;
  private etag: string;
  private patch: SessionPatch = {};
  private writing?: Promise<void>;
  private itemWrites: Promise<void> = Promise.resolve();
  private renewTimer?: NodeJS.Timeout;
  private probeTimer?: NodeJS.Timeout;
  private reachable = false;
  private readonly reachableWaiters: (() => void)[] = [];
  private relay?: Relay;
  private early: string[] = [];
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private done = false;
  private record: ConversationRecord;
  /** The event that carried the settings the session was created with, until Azure has answered it. */
  private settingsEventId: string | undefined;
  /** Charges the tokens of each of Azure's response.done to the key that started the session. */
  private readonly countUsage: (fromAzure: boolean, type: string, text: string) => void;

  /** What every line of the session carries: its connection, the named key that started it (none for an unnamed one) and its model. */
  private readonly who: { readonly connectionId: string; readonly key: string | undefined; readonly model: string };

  constructor(private readonly ctx: SessionContext, rec: Pick<SessionRecord, 'connectionId' | 'model' | 'keyName'> & { config?: string }, etag: string) {
    this.connectionId = rec.connectionId;
    this.model = rec.model;
    this.who = { connectionId: rec.connectionId, key: rec.keyName || undefined, model: rec.model };
    this.countUsage = realtimeUsage(ctx.gateway.limits, () => ctx.gateway.keyNamed(rec.keyName), rec.model);
    this.etag = etag;
    // The settings the session was created with, as if its client had sent them first.
    this.record = rec.config ? ConversationRecord.restore(this.recordSink(), rec.config, [], '') : new ConversationRecord(this.recordSink());
    let renewals = 0;
    this.renewTimer = setInterval(() => {
      this.write({});
      if (++renewals % RENEWALS_PER_ALIVE_CHECK === 0) void this.checkAlive();
    }, Math.max(250, Math.floor(ctx.leaseMs / 3)));
  }

  get group(): string {
    return groupOf(this.connectionId);
  }

  /** A new session: opens Azure's socket and waits for the client to be reachable. */
  async start(): Promise<void> {
    this.probeReachable();
    const tries: TryRecord[] = [];
    try {
      const azure = await connectRealtime(this.ctx.gateway, this.model, tries);
      if (this.done) return void azure.socket.terminate();
      this.relay = new Relay(azure, this.sink(), { observe: (a, t, x) => this.observe(a, t, x), onEnd: (reason) => this.onRelayEnd(reason) });
      if (this.record.hasConfig) {
        // Sent before anything of the client's, in the deployment's protocol, as a resume replays it; Azure's session.updated reaches the client.
        for (const event of this.replay(tries).events) {
          this.settingsEventId = (JSON.parse(event) as { event_id?: string }).event_id;
          this.relay.toAzure(event);
        }
      }
      this.ctx.logger.log('info', { msg: 'realtime session started', ...this.who, deployment: tries.at(-1)?.deployment, tried: tries.length });
      this.flushEarly();
    } catch (err) {
      this.ctx.logger.log('warn', { msg: 'realtime: Azure refused the session', ...this.who, tries, error: refusalReason(err) });
      await this.failClient(err);
    }
  }

  /**
   * Takes over a session whose owner was lost: a new Azure socket, Azure's
   * new session.created kept from the client, the recorded configuration and
   * conversation replayed (and Azure's answers to them kept back too), and a
   * response that was in flight ended for the client as incomplete.
   */
  async resume(rec: SessionRecord): Promise<void> {
    const started = Date.now();
    try {
      const items = await this.ctx.store.items(this.connectionId);
      this.record = ConversationRecord.restore(this.recordSink(), rec.config, items, '');
    } catch (err) {
      this.ctx.logger.log('warn', { msg: 'realtime: could not read a session\'s record; resuming without it', error: describeError(err) });
    }
    // The client was connected under the previous owner (or it would not be sending).
    this.markReachable();
    const tries: TryRecord[] = [];
    try {
      const azure = await connectRealtime(this.ctx.gateway, this.model, tries);
      if (this.done) return void azure.socket.terminate();
      const { events, itemIds } = this.replay(tries);
      const swallow: Swallow = { created: true, updated: this.record.hasConfig, items: itemIds, events: new Set(events.map((e) => JSON.parse(e).event_id as string)) };
      this.relay = new Relay(azure, this.sink(), {
        observe: (a, t, x) => this.observe(a, t, x),
        swallow: (type, text) => swallowReplay(swallow, type, text, this.ctx.logger),
        onEnd: (reason) => this.onRelayEnd(reason),
      });
      for (const e of events) this.relay.toAzure(e);
      if (rec.inFlight) {
        this.relay.tell(JSON.stringify({ type: 'response.done', event_id: gatewayEventId(), response: { id: rec.inFlight, object: 'realtime.response', status: 'incomplete', status_details: { type: 'incomplete', reason: 'interrupted', error: { type: 'server_error', code: 'session_interrupted', message: 'The gateway instance holding this session was lost mid-response. The session goes on; ask again.' } }, output: [], usage: null } }));
        this.write({ inFlight: '' });
      }
      this.ctx.logger.log('info', { msg: 'realtime session resumed', model: this.model, deployment: tries.at(-1)?.deployment, items: this.record.itemCount, ms: Date.now() - started });
      this.flushEarly();
    } catch (err) {
      this.ctx.logger.log('warn', { msg: 'realtime: a lost session could not be resumed', model: this.model, tries, error: refusalReason(err) });
      await this.failClient(err);
    }
  }

  /** What the instance's service connection heard in the session's group. */
  receive(payload: string): void {
    if (this.done) return;
    const kind = payload[0];
    if (kind === 'e') return this.end('client closed');
    if (kind === 'c') return void this.checkReachable();
    if (kind !== 'd') return;
    const nl = payload.indexOf('\n');
    const id = payload.slice(2, nl);
    if (id && !this.firstTime(id)) return;
    // A client that sends is connected.
    this.markReachable();
    const data = payload.slice(nl + 1);
    if (this.relay) this.relay.fromClient(data);
    else if (this.early.length < MAX_EARLY_EVENTS) this.early.push(data);
  }

  /** The session is over: Azure's socket closed, the record removed; the client closed too when `closeClient`. */
  end(reason: EndReason, closeClient = false): void {
    if (this.done) return;
    this.stop();
    this.relay?.end(reason);
    if (!this.relay) this.ctx.logger.log('info', { msg: 'realtime session ended', ...this.who, reason });
    void this.ctx.store.remove(this.connectionId).catch((err) => this.ctx.logger.log('warn', { msg: 'realtime: could not remove a session record', error: describeError(err) }));
    if (closeClient) void this.ctx.service.closeConnection(this.connectionId, 'realtime session ended').catch(() => {});
  }

  /**
   * The gateway is stopping and no other instance can take the session over
   * (its record is this process's own): the client is told, then closed,
   * rather than left on a socket nobody will serve again.
   */
  async stopServing(): Promise<void> {
    if (this.done) return;
    const { reachable, relay } = this;
    // Azure's socket closes and its queued events are dropped; the one being sent goes first, so the client hears this last.
    this.end('gateway stopping');
    await relay?.idle();
    // A client not connected yet cannot be told; waiting for it would outlast the shutdown.
    if (reachable) await this.ctx.service.sendToConnection(this.connectionId, stoppingEvent()).catch(() => {});
    // Awaited: the process exits once the gateway has closed, and an unsent close would leave the client open.
    await this.ctx.service.closeConnection(this.connectionId, 'realtime session ended').catch(() => {});
  }

  /**
   * Lets go without ending the session (shutting down, or this instance's
   * service connection is gone): Azure's socket closes, and the lease is
   * lapsed at once so another instance resumes the session without waiting.
   */
  async handOver(): Promise<void> {
    if (this.done) return;
    this.stop();
    this.relay?.end('moved');
    await this.writing?.catch(() => {});
    await this.ctx.store.update(this.connectionId, this.etag, { expiresAt: 0 }).catch(() => {});
  }

  private stop(): void {
    this.done = true;
    clearInterval(this.renewTimer);
    clearTimeout(this.probeTimer);
    this.reachableWaiters.splice(0).forEach((w) => w());
    this.ctx.leaveGroup(this.connectionId);
    this.ctx.forget(this);
  }

  private onRelayEnd(reason: EndReason): void {
    this.ctx.logger.log('info', { msg: 'realtime session ended', ...this.who, reason });
    if (reason === 'moved' || this.done) return;
    this.end(reason, reason !== 'client closed');
  }

  /** Tells the client why there is no session, once it can hear it, then closes it. */
  private async failClient(err: unknown): Promise<void> {
    try {
      await this.sink().deliver(refusedEvent(err));
    } catch {
      // The client is gone or never came: nothing to tell.
    }
    this.end('upstream closed', true);
  }

  /** Azure's events to the client: only once it is reachable, then one REST send at a time. */
  private sink() {
    return {
      deliver: async (text: string): Promise<void> => {
        if (!this.reachable) await new Promise<void>((r) => this.reachableWaiters.push(r));
        if (this.done) throw new ClientLost('client closed');
        try {
          await this.ctx.service.sendToConnection(this.connectionId, text);
        } catch {
          throw new ClientLost('client unreachable');
        }
      },
    };
  }

  /**
   * Asks Web PubSub whether the client is connected yet: soon and often at
   * first, since the client usually is within milliseconds; the `connected`
   * event and the client's first event cut the wait short.
   */
  private probeReachable(): void {
    const started = Date.now();
    let delay = 20;
    const probe = async () => {
      if (this.reachable || this.done) return;
      await this.checkReachable();
      if (this.reachable || this.done) return;
      if (Date.now() - started > REACHABLE_WITHIN_MS) return this.end('client unreachable', true);
      delay = Math.min(delay * 2, 500);
      this.probeTimer = setTimeout(() => void probe(), delay);
    };
    this.probeTimer = setTimeout(() => void probe(), delay);
  }

  private async checkReachable(): Promise<void> {
    if (this.reachable || this.done) return;
    try {
      if (await this.ctx.service.connectionExists(this.connectionId)) this.markReachable();
    } catch {
      // Asked again at the next probe.
    }
  }

  /** Ends the session when Web PubSub says its client is no longer connected; an unanswered check is asked again later. */
  private async checkAlive(): Promise<void> {
    if (!this.reachable || this.done) return;
    let connected: boolean;
    try {
      connected = await this.ctx.service.connectionExists(this.connectionId);
    } catch {
      return;
    }
    if (!connected) this.end('client closed');
  }

  private markReachable(): void {
    if (this.reachable) return;
    this.reachable = true;
    clearTimeout(this.probeTimer);
    this.reachableWaiters.splice(0).forEach((w) => w());
  }

  private flushEarly(): void {
    const early = this.early;
    this.early = [];
    for (const data of early) this.relay!.fromClient(data);
  }

  private firstTime(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    this.seenOrder.push(id);
    if (this.seenOrder.length > SEEN_IDS) this.seen.delete(this.seenOrder.shift()!);
    return true;
  }

  /** The record as events for the deployment the session's tries ended on, in its protocol. */
  private replay(tries: readonly TryRecord[]): ReturnType<ConversationRecord['replay']> {
    const deployment = this.ctx.gateway.pool(this.model).find((d) => d.label === tries.at(-1)?.deployment);
    return this.record.replay(deployment ? realtimeForm(deployment) : 'ga');
  }

  /** Every event that passes, each way: kept for a resume, and counted on the key. */
  private observe(fromAzure: boolean, type: string, text: string): void {
    if (fromAzure && type === 'error' && this.settingsEventId !== undefined) this.noteSettingsRefused(text);
    this.record.observe(fromAzure, type, text);
    this.countUsage(fromAzure, type, text);
  }

  /** Azure's error for the settings the session was created with, if this is it: the client sees it, and so does the operator. */
  private noteSettingsRefused(text: string): void {
    let error: { event_id?: string; code?: string; param?: string } | undefined;
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error;
    } catch {
      return;
    }
    if (error?.event_id !== this.settingsEventId) return;
    this.settingsEventId = undefined;
    this.ctx.logger.log('warn', { msg: 'realtime: Azure refused the settings the session was created with', model: this.model, code: error?.code, param: error?.param });
  }

  private recordSink(): RecordSink {
    const items = (fn: () => Promise<void>) => {
      this.itemWrites = this.itemWrites.then(fn).catch((err) => this.ctx.logger.log('warn', { msg: 'realtime: could not record a conversation item', error: describeError(err) }));
    };
    return {
      config: (json) => this.write({ config: json }),
      inFlight: (id) => this.write({ inFlight: id }),
      putItem: (seq, json) => items(() => this.ctx.store.putItem(this.connectionId, { seq, json })),
      deleteItem: (seq) => items(() => this.ctx.store.deleteItem(this.connectionId, seq)),
    };
  }

  /**
   * Renews the lease with any pending change, one write at a time; changes
   * that arrive meanwhile go with the next. A lost conditional write means
   * someone else wrote the record: the client ended the session, or another
   * instance claimed it, and either way this instance lets go.
   */
  private write(change: SessionPatch): void {
    if (this.done) return;
    this.patch = { ...this.patch, ...change };
    if (this.writing) return;
    this.writing = (async () => {
      while (!this.done) {
        const patch = { ...this.patch, expiresAt: Date.now() + this.ctx.leaseMs };
        this.patch = {};
        try {
          this.etag = await this.ctx.store.update(this.connectionId, this.etag, patch);
        } catch (err) {
          if (err instanceof LeaseLost) return this.lost();
          this.patch = { ...patch, ...this.patch };
          this.ctx.logger.log('warn', { msg: 'realtime: could not renew a session lease', error: describeError(err) });
          return;
        }
        if (Object.keys(this.patch).length === 0) return;
      }
    })().finally(() => (this.writing = undefined));
  }

  private async lost(): Promise<void> {
    const rec = await this.ctx.store.read(this.connectionId).catch(() => undefined);
    if (rec && !rec.ended && rec.owner === this.ctx.instanceId) {
      // Only our own record changed (nothing else writes an owned record but the owner): carry on.
      this.etag = rec.etag;
      return;
    }
    if (!rec || rec.ended) return this.end('client closed');
    this.ctx.logger.log('info', { msg: 'realtime: another instance took the session over', model: this.model });
    this.stop();
    this.relay?.end('moved');
  }
}

export function groupOf(connectionId: string): string {
  return `session-${connectionId}`;
}

/** During a resume: Azure's answers to the replay, which the client already had from the first session. */
function swallowReplay(s: Swallow, type: string, text: string, logger: Logger): boolean {
  if (type === 'session.created' && s.created) return !(s.created = false);
  if (type === 'session.updated' && s.updated) return !(s.updated = false);
  if (type === 'conversation.item.created' || type === 'conversation.item.added' || type === 'conversation.item.done') {
    const id = (JSON.parse(text) as { item?: { id?: string } }).item?.id;
    return id !== undefined && s.items.has(id);
  }
  if (type === 'error') {
    const error = (JSON.parse(text) as { error?: { event_id?: string; code?: string } }).error;
    if (error?.event_id && s.events.has(error.event_id)) {
      logger.log('warn', { msg: 'realtime: Azure refused part of a resumed session\'s replay', code: error.code });
      return true;
    }
  }
  return false;
}
