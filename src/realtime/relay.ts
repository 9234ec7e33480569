/** @module One realtime session's relay between a client and Azure's socket, with bounded buffers both ways. */
import { WebSocket } from 'ws';
import { UpstreamSocket } from '../azure-openai/realtime-socket';
import { GatewayError } from '../core/errors';
import { describeError } from '../core/log';

/** OpenAI's realtime `error` server event, as the client sees it when the session cannot go on. */
export function errorEvent(code: string, message: string): string {
  return JSON.stringify({ type: 'error', event_id: gatewayEventId(), error: { type: 'server_error', code, message, param: null, event_id: null } });
}

/** The client's error event when Azure's socket could not be had: OpenAI's rate-limit code for a 429, else unavailable. */
export function refusedEvent(err: unknown): string {
  const why = err instanceof GatewayError ? err.message : 'The realtime service could not be reached.';
  return errorEvent(err instanceof GatewayError && err.status === 429 ? 'rate_limit_exceeded' : 'upstream_unavailable', why);
}

/** Why Azure's socket could not be had, for the log: the gateway's error code, or the error described. */
export function refusalReason(err: unknown): unknown {
  return err instanceof GatewayError ? err.code : describeError(err);
}

let eventCounter = 0;
/** An id for an event the gateway itself writes, in the shape of Azure's. */
export function gatewayEventId(): string {
  return `event_gateway_${Date.now().toString(36)}${(++eventCounter).toString(36)}`;
}

/**
 * The event's type, read from the front of its text without parsing the rest:
 * audio deltas are large and most events need no more than their type. Azure
 * writes `type` before any nested object (after `event_id` at most).
 */
export function eventType(text: string): string {
  const m = /"type"\s*:\s*"([^"]{1,100})"/.exec(text.length > 200 ? text.slice(0, 200) : text);
  return m ? m[1] : '';
}

export type EndReason = 'client closed' | 'upstream closed' | 'client unreachable' | 'client behind' | 'moved' | 'gateway stopping';

/** What a client hears when the gateway stops under its session and no other instance can take it over. */
export function stoppingEvent(): string {
  return errorEvent('gateway_stopping', 'The gateway is shutting down, and this realtime session has ended with it. Start a new session.');
}

/** Where Azure's events go: resolves when the next may be given, rejects when the client is gone or hopelessly behind. */
export interface ClientSink {
  deliver(text: string): Promise<void> | void;
}

export interface RelayOptions {
  /** Sees every event that passes, each way (the conversation record). */
  readonly observe?: (fromAzure: boolean, type: string, text: string) => void;
  /** Azure events the client must not see (what a resumed session's replay makes Azure say). */
  readonly swallow?: (type: string, text: string) => boolean;
  readonly onEnd: (reason: EndReason) => void;
}

/** Bytes of Azure's events waiting for the client before Azure's socket is no longer read, and when it is again. */
export const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/**
 * Relays one realtime session: client events go to Azure as they come; Azure's
 * events go to the client one at a time, in order. At most HIGH_WATER bytes of
 * Azure's events wait for a slow client: beyond that, Azure's socket is not
 * read until the client catches up. When either side ends, the other is ended
 * too; when Azure ends first, the client is told with an OpenAI-shaped error.
 */
export class Relay {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private draining = false;
  private paused = false;
  private ended = false;
  private readonly azure: WebSocket;

  constructor(upstream: UpstreamSocket, private readonly sink: ClientSink, private readonly options: RelayOptions) {
    const azure = (this.azure = upstream.socket);
    for (const text of upstream.takeEarly()) this.fromAzure(text);
    azure.on('message', (data, isBinary) => this.fromAzure(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data)));
    azure.once('close', () => {
      if (this.ended) return;
      // What Azure sent before closing still goes out first.
      this.tell(errorEvent('upstream_closed', 'The realtime service closed the session. Start a new one.'));
      this.afterQueue(() => this.end('upstream closed'));
    });
    azure.on('error', () => {});
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Bytes written to Azure's socket and not yet sent. */
  get azureBacklog(): number {
    return this.azure.bufferedAmount;
  }

  /** Passes a client event to Azure; `written` runs once the socket has taken it. */
  fromClient(text: string, written?: () => void): void {
    if (this.ended || this.azure.readyState !== WebSocket.OPEN) return;
    this.options.observe?.(false, eventType(text), text);
    this.azure.send(text, written);
  }

  /** Sends Azure a message the client did not write (a resumed session's replay), unobserved. */
  toAzure(text: string): void {
    if (!this.ended && this.azure.readyState === WebSocket.OPEN) this.azure.send(text);
  }

  /** An event the gateway itself writes to the client, in order with Azure's. */
  tell(text: string): void {
    this.enqueue(text);
  }

  end(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    if (this.azure.readyState === WebSocket.OPEN || this.azure.readyState === WebSocket.CONNECTING) {
      this.azure.resume();
      this.azure.close(1000);
      // An upstream that does not finish the closing handshake is cut off, and the timer goes with it.
      const cutOff = setTimeout(() => this.azure.terminate(), 2000);
      this.azure.once('close', () => clearTimeout(cutOff));
    }
    this.options.onEnd(reason);
  }

  private fromAzure(text: string): void {
    if (this.ended) return;
    const type = eventType(text);
    if (this.options.swallow?.(type, text)) return;
    this.options.observe?.(true, type, text);
    this.enqueue(text);
  }

  private enqueue(text: string): void {
    if (this.ended) return;
    this.queue.push(text);
    this.queuedBytes += text.length;
    if (!this.paused && this.queuedBytes > HIGH_WATER) {
      this.paused = true;
      this.azure.pause();
    }
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.ended) {
        const text = this.queue.shift()!;
        this.queuedBytes -= text.length;
        if (this.paused && this.queuedBytes < LOW_WATER) {
          this.paused = false;
          this.azure.resume();
        }
        await this.sink.deliver(text);
      }
    } catch (err) {
      this.end((err as { reason?: EndReason }).reason ?? 'client unreachable');
    } finally {
      this.draining = false;
      this.whenDrained.splice(0).forEach((fn) => fn());
    }
  }

  private readonly whenDrained: (() => void)[] = [];

  /** Resolves once the event being sent to the client, if any, has gone (after end(), nothing else is). */
  idle(): Promise<void> {
    return new Promise((resolve) => this.afterQueue(resolve));
  }

  /** Runs `fn` once everything queued so far has been delivered (or the relay ended). */
  private afterQueue(fn: () => void): void {
    if (!this.draining && this.queue.length === 0) fn();
    else this.whenDrained.push(fn);
  }
}

/** A sink's refusal that says why, so the relay ends with the right reason. */
export class ClientLost extends Error {
  constructor(readonly reason: EndReason) {
    super(reason);
  }
}
