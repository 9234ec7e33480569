import http from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { GatewayError, realtimeStartFailed } from '../core/errors';
import { Gateway } from '../gateway/gateway';
import { ClientGone, GatewayRequest } from '../core/http';
import { UpstreamSocket } from '../azure-openai/realtime-socket';
import { connectRealtime, requireRealtimeModel } from './upstream';
import { Relay } from './relay';

const KEY_PROTOCOL = 'openai-insecure-api-key.';

/**
 * The local host's direct realtime socket, ws://localhost:7071/v1/realtime?model=…,
 * for work without Web PubSub. The proxy key comes as a header or, from
 * browsers, as the `openai-insecure-api-key.<key>` subprotocol. Azure's
 * socket is opened before the client's is accepted, so a bad key, model or
 * upstream is an ordinary OpenAI-shaped HTTP error.
 */
export class DirectRealtime {
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has('realtime') ? 'realtime' : false) });
  /** Sessions open now (for tests that check nothing outlives its session). */
  readonly sessions = new Set<Relay>();

  constructor(private readonly gateway: Gateway) {}

  async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const fromProtocol = protocols.find((p) => p.startsWith(KEY_PROTOCOL))?.slice(KEY_PROTOCOL.length);
    const request: GatewayRequest = {
      method: 'GET', path: url.pathname, query: url.search.slice(1), params: {},
      header: (name) => (name === 'authorization' && fromProtocol && !req.headers.authorization ? `Bearer ${fromProtocol}` : (req.headers[name] as string | undefined)),
      body: (async function* () {})(), gone: new ClientGone(),
    };
    let azure: UpstreamSocket;
    try {
      const key = await this.gateway.authenticate(request);
      const model = requireRealtimeModel(this.gateway, url.searchParams.get('model'), key);
      azure = await connectRealtime(this.gateway, model, []);
    } catch (err) {
      return refuse(socket, err);
    }
    this.wss.handleUpgrade(req, socket, head, (client) => {
      const relay: Relay = new Relay(azure, (text) => new Promise<void>((resolve, reject) => client.send(text, (e) => (e ? reject(e) : resolve()))), () => {
        this.sessions.delete(relay);
        if (client.readyState === WebSocket.OPEN) client.close(1011, 'upstream closed');
      });
      this.sessions.add(relay);
      client.on('message', (data, isBinary) => relay.fromClient(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data)));
      client.on('close', () => relay.end('client closed'));
      client.on('error', () => relay.end('client closed'));
    });
  }

  close(): void {
    for (const r of this.sessions) r.end('client closed');
    this.wss.close();
  }
}

function refuse(socket: Duplex, err: unknown): void {
  socket.end((err instanceof GatewayError ? err : realtimeStartFailed(err)).toRawHttp());
}
