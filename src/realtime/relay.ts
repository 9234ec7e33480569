import { WebSocket } from 'ws';
import { UpstreamSocket } from '../azure-openai/realtime-socket';

/** OpenAI's realtime `error` server event, as the client sees it when the session cannot go on. */
export function errorEvent(code: string, message: string): string {
  return JSON.stringify({ type: 'error', event_id: `event_gateway_${Date.now().toString(36)}`, error: { type: 'server_error', code, message, param: null, event_id: null } });
}

export type EndReason = 'client closed' | 'upstream closed' | 'client unreachable';

/**
 * Relays one realtime session between a client and Azure's socket: client
 * events go to Azure as they come; Azure's events go to the client one at a
 * time, in order. When either side ends, the other is ended too; when Azure
 * ends first, the client is told with an OpenAI-shaped error event.
 */
export class Relay {
  private chain: Promise<void> = Promise.resolve();
  private ended = false;
  private readonly azure: WebSocket;

  constructor(
    upstream: UpstreamSocket,
    private readonly toClient: (text: string) => Promise<void> | void,
    private readonly onEnd: (reason: EndReason) => void | Promise<void>,
  ) {
    const azure = (this.azure = upstream.socket);
    const forward = (text: string) => {
      this.chain = this.chain.then(() => this.toClient(text)).catch(() => this.end('client unreachable'));
    };
    for (const text of upstream.takeEarly()) forward(text);
    azure.on('message', (data, isBinary) => forward(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data)));
    azure.once('close', () => {
      if (this.ended) return;
      // What Azure sent before closing still goes out first.
      this.chain = this.chain
        .then(() => this.toClient(errorEvent('upstream_closed', 'The realtime service closed the session. Start a new one.')))
        .catch(() => {})
        .then(() => this.end('upstream closed'));
    });
    azure.on('error', () => {});
  }

  get open(): boolean {
    return !this.ended;
  }

  fromClient(text: string): void {
    if (!this.ended && this.azure.readyState === WebSocket.OPEN) this.azure.send(text);
  }

  end(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    if (this.azure.readyState === WebSocket.OPEN || this.azure.readyState === WebSocket.CONNECTING) {
      this.azure.close(1000);
      // An upstream that does not finish the closing handshake is cut off, and the timer goes with it.
      const cutOff = setTimeout(() => this.azure.terminate(), 2000);
      this.azure.once('close', () => clearTimeout(cutOff));
    }
    void this.onEnd(reason);
  }
}
