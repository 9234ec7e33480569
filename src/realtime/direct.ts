/** @module The local host's direct realtime socket: the client's handshake first, then Azure's, with flow control both ways. */
import http from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { GatewayError, badRequest, clip, realtimeStartFailed } from '../core/errors';
import { TryRecord } from '../balancer/balancer';
import { Gateway } from '../gateway/gateway';
import { ClientGone, GatewayRequest } from '../core/http';
import { connectRealtime, requireRealtimeModel } from './upstream';
import { ProxyKey } from '../keys/proxy-key';
import { NO_TOKENS } from '../limits/estimate';
import { realtimeUsage } from '../limits/realtime-usage';
import { ClientLost, HIGH_WATER, Relay, errorEvent, refusalReason, refusedEvent, stoppingEvent } from './relay';
import { newRequestId } from '../core/request-id';

const KEY_PROTOCOL = 'openai-insecure-api-key.';
/** Largest client message taken (OpenAI's own limit for an event is 15 MiB). */
const MAX_MESSAGE = 16 * 1024 * 1024;

export interface DirectOptions {
  /** How long a client may stay more than HIGH_WATER behind before it is dropped (default 10 s). */
  readonly behindLimitMs?: number;
}

/**
 * The local host's direct realtime socket, ws://localhost:7071/v1/realtime?model=…,
 * for work without Web PubSub. The proxy key comes as a header or, from
 * browsers, as the `openai-insecure-api-key.<key>` subprotocol. A bad key or
 * model is an ordinary OpenAI-shaped HTTP error; the client's handshake is
 * completed before Azure's socket is opened, so a handshake that fails or a
 * client that leaves early costs no Azure socket. Memory per session is
 * bounded: Azure's socket is not read while the client is HIGH_WATER behind
 * (a client that stays behind past the limit is dropped with an error event),
 * and the client's socket is not read while Azure's is HIGH_WATER behind.
 */
export class DirectRealtime {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE, handleProtocols: (offered) => (offered.has('realtime') ? 'realtime' : false) });
  /** Sessions open now (for tests that check nothing outlives its session). */
  readonly sessions = new Set<Relay>();
  private readonly behindLimitMs: number;
  /** Set by close(): a session still reaching Azure then is told and closed as it arrives. */
  private stopping = false;

  constructor(private readonly gateway: Gateway, options: DirectOptions = {}) {
    this.behindLimitMs = options.behindLimitMs ?? 10_000;
  }

  async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    const fromProtocol = protocols.find((p) => p.startsWith(KEY_PROTOCOL))?.slice(KEY_PROTOCOL.length);
    const request: GatewayRequest = {
      method: 'GET', path: url.pathname, query: url.search.slice(1), params: {},
      header: (name) => (name === 'authorization' && fromProtocol && !req.headers.authorization ? `Bearer ${fromProtocol}` : (req.headers[name] as string | undefined)),
      body: (async function* () {})(), gone: new ClientGone(),
    };
    // One id for the session's lines, as a request has one for its line.
    const requestId = newRequestId();
    let model: string;
    let key: ProxyKey | undefined;
    try {
      // A client that offers subprotocols must get one back, or it drops the socket: refused here, before Azure's is opened.
      if (protocols.length > 0 && !protocols.includes('realtime')) {
        throw badRequest("Offer the 'realtime' WebSocket subprotocol beside the key's, as OpenAI's browser example does: new WebSocket(url, ['realtime', 'openai-insecure-api-key.' + key]).", null, 'missing_subprotocol');
      }
      key = await this.gateway.authenticate(request);
      model = requireRealtimeModel(this.gateway, url.searchParams.get('model'), key);
      // A session is one request on the key's limits; its tokens are counted as its responses finish.
      this.gateway.limits.finish(await this.gateway.limits.admit(key, model, NO_TOKENS), undefined, undefined);
    } catch (err) {
      const refusal = err instanceof GatewayError ? err : realtimeStartFailed(err);
      // The one line this attempt gets, as an HTTP request's refusal gets its request line.
      this.gateway.logger.log('info', { msg: 'realtime session refused', requestId, key: key?.name, model: clip(url.searchParams.get('model') ?? ''), status: refusal.status, error: refusal.code ?? refusal.type });
      return void socket.end(refusal.toRawHttp());
    }
    // ws calls back only for a valid handshake on a socket still open: anything else never reaches Azure.
    const admitted = key;
    this.wss.handleUpgrade(req, socket, head, (client) => void this.open(client, model, admitted, { requestId, key: admitted.name }));
  }

  close(): void {
    this.stopping = true;
    for (const r of this.sessions) r.end('gateway stopping');
    this.wss.close();
  }

  /** `who`: the fields every line of the session carries (its id, and the key's name). */
  private async open(client: WebSocket, model: string, key: ProxyKey, who: { requestId: string; key: string | undefined }): Promise<void> {
    // What the client says before Azure is there waits in its socket, not here.
    client.pause();
    let gone = false;
    client.once('close', () => (gone = true));
    client.on('error', () => {});
    let relay: Relay;
    const tries: TryRecord[] = [];
    const logger = this.gateway.logger;
    try {
      const azure = await connectRealtime(this.gateway, model, tries);
      if (gone || this.stopping) {
        azure.socket.terminate();
        logger.log('info', { msg: 'realtime session ended', ...who, model, reason: gone ? 'client closed' : 'gateway stopping' });
        if (!gone) stopClient(client);
        return;
      }
      relay = new Relay(azure, new DirectSink(client, this.behindLimitMs), {
        observe: realtimeUsage(this.gateway.limits, () => key, model),
        onEnd: (reason) => {
          logger.log('info', { msg: 'realtime session ended', ...who, model, reason });
          this.sessions.delete(relay);
          if (reason === 'client behind') dropBehind(client);
          else if (reason === 'gateway stopping') stopClient(client);
          else if (client.readyState === WebSocket.OPEN) client.close(1011, 'upstream closed');
        },
      });
      logger.log('info', { msg: 'realtime session started', ...who, model, deployment: tries.at(-1)?.deployment, tried: tries.length });
    } catch (err) {
      logger.log('warn', { msg: 'realtime: Azure refused the session', ...who, model, tries, error: refusalReason(err) });
      logger.log('info', { msg: 'realtime session ended', ...who, model, reason: 'upstream closed' });
      // Read again, or the client's answer to the close frame is never heard and the close takes ws's 30 s timeout.
      client.resume();
      if (client.readyState === WebSocket.OPEN) client.send(refusedEvent(err), () => client.close(1011, 'upstream unavailable'));
      return;
    }
    this.sessions.add(relay);
    let paused = true;
    client.on('message', (data, isBinary) => {
      relay.fromClient(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data), () => {
        if (paused && relay.azureBacklog < HIGH_WATER / 4) {
          paused = false;
          client.resume();
        }
      });
      // Azure not keeping up: stop reading the client until it does.
      if (!paused && relay.azureBacklog > HIGH_WATER) {
        paused = true;
        client.pause();
      }
    });
    client.on('close', () => relay.end('client closed'));
    paused = false;
    client.resume();
  }
}

/**
 * Azure's events to a direct client: sent at once while the client keeps up;
 * once more than HIGH_WATER waits in its socket, the next waits until that
 * has gone out, and a client that stays behind for the limit is given up.
 */
class DirectSink {
  constructor(private readonly client: WebSocket, private readonly behindLimitMs: number) {}

  deliver(text: string): Promise<void> | void {
    const client = this.client;
    if (client.readyState !== WebSocket.OPEN) throw new ClientLost('client closed');
    if (client.bufferedAmount <= HIGH_WATER) {
      client.send(text);
      return;
    }
    return new Promise<void>((resolve, reject) => {
      const limit = setTimeout(() => reject(new ClientLost('client behind')), this.behindLimitMs);
      client.send(text, (err) => {
        clearTimeout(limit);
        if (err) reject(new ClientLost('client closed'));
        else resolve();
      });
    });
  }
}

/** The gateway is stopping: the event, then the close (1001, going away), in order on the socket. */
function stopClient(client: WebSocket): void {
  if (client.readyState !== WebSocket.OPEN) return;
  client.resume();
  client.send(stoppingEvent());
  client.close(1001, 'gateway stopping');
}

/** A client that does not read will not read a close either: tell it, close, and cut it off shortly after. */
function dropBehind(client: WebSocket): void {
  if (client.readyState !== WebSocket.OPEN) return;
  client.send(errorEvent('client_too_slow', 'The client did not read the session\'s events fast enough and was disconnected. Read events as they arrive.'));
  client.close(1008, 'client too slow');
  setTimeout(() => client.terminate(), 1000).unref();
}
