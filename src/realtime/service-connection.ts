/** @module This instance's own connection to Web PubSub: where client events reach the sessions it owns. */
import { WebSocket } from 'ws';
import { Logger, describeError } from '../core/log';
import { WebPubSubService } from './web-pubsub-service';

export const PUBSUB_PROTOCOL = 'json.webpubsub.azure.v1';
const ACK_TIMEOUT_MS = 5000;
/**
 * Longest the service may take to open the connection and say it is
 * connected. Without a bound, one open that hung would hold every join
 * after it (they wait on the same open) until the process restarted.
 */
const OPEN_TIMEOUT_MS = 5000;
const TOKEN_MINUTES = 60;

export interface ServiceConnectionOptions {
  readonly userId: string;
  readonly socketOptions: { ca?: Buffer };
  readonly logger: Logger;
  /** A group message: a client event for the session that group stands for. */
  readonly onMessage: (group: string, text: string) => void;
  /** The connection dropped and could not be restored within `restoreMs`: the sessions here cannot hear their clients. */
  readonly onLost: () => void;
  readonly restoreMs: number;
}

interface PendingAck {
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * One PubSub-protocol connection per instance, joined to the group of every
 * session the instance owns (a session costs the unit one connection, the
 * client's, not two). Group joins are acknowledged before they count. When
 * the connection drops it is reopened and every group joined again; if that
 * fails for `restoreMs`, the owner is told so that others can take over.
 */
export class ServiceConnection {
  private ws?: WebSocket;
  private opening?: Promise<WebSocket>;
  private readonly groups = new Set<string>();
  /** Groups the service has acknowledged on the current socket. */
  private readonly joined = new Set<string>();
  private readonly acks = new Map<number, PendingAck>();
  private nextAck = 1;
  private closed = false;
  private downSince?: number;
  private retry?: NodeJS.Timeout;

  constructor(private readonly service: WebPubSubService, private readonly options: ServiceConnectionOptions) {}

  /** Joins a group; resolves once the service has acknowledged it. */
  async join(group: string): Promise<void> {
    this.groups.add(group);
    const ws = await this.socket();
    await this.request(ws, { type: 'joinGroup', group });
    if (this.ws === ws) this.joined.add(group);
  }

  /** Whether this instance is in the group right now, as far as it can know. */
  isJoined(group: string): boolean {
    return this.ws?.readyState === WebSocket.OPEN && this.joined.has(group);
  }

  leave(group: string): void {
    this.joined.delete(group);
    if (!this.groups.delete(group)) return;
    const ws = this.ws;
    if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'leaveGroup', group }));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.ws?.terminate();
    for (const a of this.acks.values()) {
      clearTimeout(a.timer);
      a.reject(new Error('closed'));
    }
    this.acks.clear();
  }

  private socket(): Promise<WebSocket> {
    if (this.ws?.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async open(): Promise<WebSocket> {
    if (this.closed) throw new Error('closed');
    const { url } = await this.service.token(this.options.userId, TOKEN_MINUTES, ['webpubsub.joinLeaveGroup']);
    const ws = new WebSocket(url, PUBSUB_PROTOCOL, this.options.socketOptions);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('service connection did not open in time')), OPEN_TIMEOUT_MS);
        // Usable once the service says it is connected (it sends that first).
        ws.on('message', (raw) => this.onFrame(String(raw), resolve));
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`service connection refused (${res.statusCode})`)));
        ws.once('close', () => reject(new Error('service connection closed while opening')));
      });
    } catch (err) {
      // Closed here whatever failed: ws leaves even a refused handshake's socket open when 'unexpected-response' has a listener.
      ws.terminate();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    ws.on('error', () => {});
    ws.once('close', () => this.onClose(ws));
    this.ws = ws;
    this.downSince = undefined;
    return ws;
  }

  private onFrame(raw: string, connected: () => void): void {
    let frame: { type?: string; event?: string; from?: string; group?: string; dataType?: string; data?: unknown; ackId?: number; success?: boolean; error?: { name?: string; message?: string } };
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame.type === 'system' && frame.event === 'connected') return connected();
    if (frame.type === 'ack' && frame.ackId !== undefined) {
      const pending = this.acks.get(frame.ackId);
      if (!pending) return;
      this.acks.delete(frame.ackId);
      clearTimeout(pending.timer);
      if (frame.success) pending.resolve();
      else pending.reject(new Error(`the service refused a group request (${frame.error?.name ?? 'unknown'})`));
      return;
    }
    if (frame.type === 'message' && frame.from === 'group' && frame.group && this.groups.has(frame.group)) {
      this.options.onMessage(frame.group, typeof frame.data === 'string' ? frame.data : JSON.stringify(frame.data));
    }
  }

  private request(ws: WebSocket, body: Record<string, unknown>): Promise<void> {
    const ackId = this.nextAck++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.acks.delete(ackId);
        reject(new Error('the service did not acknowledge a group request'));
      }, ACK_TIMEOUT_MS);
      this.acks.set(ackId, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...body, ackId }));
    });
  }

  /** Dropped by the service or the network: reopen and join every group again, or give up after restoreMs. */
  private onClose(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.joined.clear();
    if (this.closed || this.groups.size === 0) return;
    this.downSince ??= Date.now();
    this.options.logger.log('warn', { msg: 'realtime: the instance\'s Web PubSub connection dropped; reopening it' });
    void this.restore();
  }

  private async restore(): Promise<void> {
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 2000)) {
      if (this.groups.size === 0) return;
      try {
        const ws = await this.socket();
        await Promise.all([...this.groups].map(async (g) => {
          await this.request(ws, { type: 'joinGroup', group: g });
          if (this.ws === ws) this.joined.add(g);
        }));
        return;
      } catch (err) {
        if (Date.now() - (this.downSince ?? Date.now()) > this.options.restoreMs) {
          this.options.logger.log('error', { msg: 'realtime: could not restore the instance\'s Web PubSub connection; handing its sessions over', error: describeError(err) });
          this.groups.clear();
          this.options.onLost();
          return;
        }
        await new Promise<void>((r) => (this.retry = setTimeout(r, delay)));
      }
    }
  }
}
