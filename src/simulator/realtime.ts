import http from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { AzureOpenAISimulator } from './server';
import { rawHttpResponse } from '../core/http';

/**
 * Azure's realtime WebSocket, scripted: the dated form
 * /openai/realtime?api-version=…&deployment=… and the GA form
 * /openai/v1/realtime?model=…, with the same key or Bearer checks as HTTP.
 * It answers OpenAI realtime client events with protocol-shaped server events
 * and records both directions so tests can compare them with the client's.
 */
export interface RealtimeSession {
  readonly deployment: string;
  readonly auth: 'key' | 'bearer';
  /** Client events as received, in order (raw text). */
  readonly received: string[];
  /** Server events as sent, in order (raw text). */
  readonly sent: string[];
  closed: boolean;
  socket: WebSocket;
}

export interface RealtimeOptions {
  /** Audio delta events per response (default 3). */
  deltasPerResponse: number;
  /** Refuse new sessions with this HTTP status (e.g. 429, 500). */
  refuseWith?: number;
}

export class RealtimeSimulator {
  readonly sessions: RealtimeSession[] = [];
  readonly options: RealtimeOptions = { deltasPerResponse: 3 };
  private readonly wss = new WebSocketServer({ noServer: true });
  private counter = 0;

  constructor(private readonly sim: AzureOpenAISimulator) {}

  /** Takes the upgrade if it is for the realtime path; returns false otherwise. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const dated = url.pathname === '/openai/realtime';
    if (!dated && url.pathname !== '/openai/v1/realtime') return false;
    const deployment = (dated ? url.searchParams.get('deployment') : url.searchParams.get('model')) ?? '';
    const refuse = (status: number, code: string, message: string) => {
      socket.end(rawHttpResponse(status, { 'content-type': 'application/json' }, JSON.stringify({ error: { code, message } })));
      return true;
    };
    if (dated && !url.searchParams.get('api-version')) return refuse(404, '404', 'Resource not found');
    const authorization = req.headers.authorization;
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
    if (!this.sim.isAuthorized(req.headers['api-key'], bearer)) return refuse(401, '401', 'Access denied due to invalid subscription key or wrong API endpoint.');
    if (!deployment) return refuse(400, 'BadRequest', 'No deployment named.');
    if (this.options.refuseWith) return refuse(this.options.refuseWith, String(this.options.refuseWith), 'Refused by the simulator.');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, deployment, req.headers['api-key'] !== undefined ? 'key' : 'bearer'));
    return true;
  }

  close(): void {
    for (const s of this.sessions) s.socket.terminate();
    this.wss.close();
  }

  private open(ws: WebSocket, deployment: string, auth: 'key' | 'bearer'): void {
    const session: RealtimeSession = { deployment, auth, received: [], sent: [], closed: false, socket: ws };
    this.sessions.push(session);
    const id = `sess_${++this.counter}`;
    let n = 0;
    const send = (event: Record<string, unknown>) => {
      const text = JSON.stringify({ event_id: `event_${id}_${++n}`, ...event });
      session.sent.push(text);
      ws.send(text);
    };
    ws.on('close', () => (session.closed = true));
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data);
      session.received.push(text);
      let event: { type?: string; event_id?: string; item?: unknown; session?: unknown };
      try {
        event = JSON.parse(text);
      } catch {
        return send({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_json', message: 'The event is not valid JSON.', event_id: null } });
      }
      switch (event.type) {
        case 'session.update':
          return send({ type: 'session.updated', session: { id, model: deployment, ...(event.session as object) } });
        case 'input_audio_buffer.append':
          return;
        case 'input_audio_buffer.commit':
          return send({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: `item_${n}` });
        case 'conversation.item.create':
          return send({ type: 'conversation.item.created', previous_item_id: null, item: event.item });
        case 'response.create': {
          const response = `resp_${id}_${n}`;
          send({ type: 'response.created', response: { id: response, status: 'in_progress' } });
          for (let i = 0; i < this.options.deltasPerResponse; i++) {
            send({ type: 'response.audio.delta', response_id: response, item_id: `item_${response}`, output_index: 0, content_index: 0, delta: Buffer.alloc(240, i).toString('base64') });
          }
          send({ type: 'response.audio_transcript.done', response_id: response, transcript: 'Simulated spoken reply.' });
          return send({ type: 'response.done', response: { id: response, status: 'completed', usage: { total_tokens: 42, input_tokens: 30, output_tokens: 12 } } });
        }
        case 'test.close':
          // Lets a test make the upstream go away mid-session.
          return ws.close(1011, 'closed by the simulator');
        default:
          return send({ type: 'error', error: { type: 'invalid_request_error', code: 'unknown_event', message: `Unknown event type ${event.type}.`, event_id: event.event_id ?? null } });
      }
    });
    send({ type: 'session.created', session: { id, object: 'realtime.session', model: deployment, modalities: ['audio', 'text'] } });
  }
}
