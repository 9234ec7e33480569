import http from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { AzureOpenAISimulator } from './server';
import { rawHttpResponse } from '../core/http';

/**
 * Azure's realtime WebSocket, scripted, in both of Azure's forms: GA
 * (/openai/v1/realtime?model=…, no api-version, GA event names, session.type
 * required) and the deprecated preview (/openai/realtime?api-version=…&deployment=…,
 * beta event names). Auth is checked as for HTTP. Each session keeps its
 * conversation, and a reply says which user texts it heard, so a test can
 * tell a replayed history from a lost one. Both directions are recorded.
 */
export interface RealtimeSession {
  readonly deployment: string;
  readonly auth: 'key' | 'bearer';
  readonly form: 'ga' | 'preview';
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
  /** Stop a response after this many deltas, as if Azure were still speaking (it never finishes). */
  stallAfterDeltas?: number;
}

interface Item {
  id: string;
  type: string;
  role?: string;
  content?: { type: string; text?: string; transcript?: string | null }[];
  [k: string]: unknown;
}

const EVENTS = {
  ga: { itemAdded: 'conversation.item.added', audioDelta: 'response.output_audio.delta', transcriptDone: 'response.output_audio_transcript.done', assistantContent: 'output_audio' },
  preview: { itemAdded: 'conversation.item.created', audioDelta: 'response.audio.delta', transcriptDone: 'response.audio_transcript.done', assistantContent: 'audio' },
} as const;

/** Bytes Azure may have queued toward a reader that does not keep up before it waits (a flood honours TCP). */
const FLOOD_HIGH_WATER = 1024 * 1024;

/** The session settings GA's session.update takes (OpenAI's GA session object). */
const GA_SESSION_FIELDS = new Set(['type', 'model', 'instructions', 'audio', 'output_modalities', 'tools', 'tool_choice', 'max_output_tokens', 'tracing', 'truncation', 'prompt', 'include']);

export class RealtimeSimulator {
  readonly sessions: RealtimeSession[] = [];
  readonly options: RealtimeOptions = { deltasPerResponse: 3 };
  private readonly wss = new WebSocketServer({ noServer: true });
  private counter = 0;

  constructor(private readonly sim: AzureOpenAISimulator) {}

  /** Takes the upgrade if it is for the realtime path; returns false otherwise. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const preview = url.pathname === '/openai/realtime';
    if (!preview && url.pathname !== '/openai/v1/realtime') return false;
    const deployment = (preview ? url.searchParams.get('deployment') : url.searchParams.get('model')) ?? '';
    const refuse = (status: number, code: string, message: string) => {
      socket.end(rawHttpResponse(status, { 'content-type': 'application/json' }, JSON.stringify({ error: { code, message } })));
      return true;
    };
    if (preview && !url.searchParams.get('api-version')) return refuse(404, '404', 'Resource not found');
    // The GA form takes no api-version: Azure answers 401 to one (realtime preview migration guide).
    if (!preview && url.searchParams.has('api-version')) return refuse(401, '401', 'Access denied due to invalid subscription key or wrong API endpoint.');
    const authorization = req.headers.authorization;
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
    if (!this.sim.isAuthorized(req.headers['api-key'], bearer)) return refuse(401, '401', 'Access denied due to invalid subscription key or wrong API endpoint.');
    if (!deployment) return refuse(400, 'BadRequest', 'No deployment named.');
    if (this.options.refuseWith) return refuse(this.options.refuseWith, String(this.options.refuseWith), 'Refused by the simulator.');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, deployment, req.headers['api-key'] !== undefined ? 'key' : 'bearer', preview ? 'preview' : 'ga'));
    return true;
  }

  close(): void {
    for (const s of this.sessions) s.socket.terminate();
    this.wss.close();
  }

  private open(ws: WebSocket, deployment: string, auth: 'key' | 'bearer', form: 'ga' | 'preview'): void {
    const session: RealtimeSession = { deployment, auth, form, received: [], sent: [], closed: false, socket: ws };
    this.sessions.push(session);
    const names = EVENTS[form];
    const id = `sess_${++this.counter}`;
    let n = 0;
    let config: Record<string, unknown> = form === 'ga'
      ? { type: 'realtime', object: 'realtime.session', id, model: deployment, output_modalities: ['audio'], audio: { output: { voice: 'alloy' } } }
      : { id, object: 'realtime.session', model: deployment, modalities: ['audio', 'text'], voice: 'alloy' };
    const items: Item[] = [];
    const send = (event: Record<string, unknown>) => {
      const text = JSON.stringify({ event_id: `event_${id}_${++n}`, ...event });
      session.sent.push(text);
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
    };
    const error = (code: string, message: string, eventId: unknown, param: string | null = null) =>
      send({ type: 'error', error: { type: 'invalid_request_error', code, message, param, event_id: eventId ?? null } });
    const addItem = (item: Item, eventId: unknown): boolean => {
      if (items.some((i) => i.id === item.id)) {
        error('item_id_already_exists', `Item with id '${item.id}' already exists.`, eventId, 'item.id');
        return false;
      }
      const previous = items.at(-1)?.id ?? null;
      items.push(item);
      send({ type: names.itemAdded, previous_item_id: previous, item });
      if (form === 'ga') send({ type: 'conversation.item.done', previous_item_id: previous, item });
      return true;
    };
    const transcribes = () => Boolean(form === 'ga' ? (config.audio as { input?: { transcription?: unknown } } | undefined)?.input?.transcription : config.input_audio_transcription);
    ws.on('close', () => (session.closed = true));
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data);
      session.received.push(text);
      let event: { type?: string; event_id?: string; item?: Item; session?: Record<string, unknown>; bytes?: number };
      try {
        event = JSON.parse(text);
      } catch {
        return error('invalid_json', 'The event is not valid JSON.', null);
      }
      switch (event.type) {
        case 'session.update': {
          const update = event.session ?? {};
          if (form === 'ga' && update.type !== 'realtime' && update.type !== 'transcription') {
            return error('missing_required_parameter', "Missing required parameter: 'session.type'.", event.event_id, 'session.type');
          }
          // GA refuses the whole update for a setting it does not know, the preview protocol's included
          // ("Unknown parameter: 'session.voice'.", code unknown_parameter: livekit/agents#3398,
          // mastra-ai/mastra#16941, rudyll/stackchan-ai-server#9).
          const unknown = form === 'ga' ? Object.keys(update).find((k) => !GA_SESSION_FIELDS.has(k)) : undefined;
          if (unknown !== undefined) return error('unknown_parameter', `Unknown parameter: 'session.${unknown}'.`, event.event_id, `session.${unknown}`);
          config = { ...config, ...update, id, model: deployment };
          return send({ type: 'session.updated', session: config });
        }
        case 'input_audio_buffer.append':
          return;
        case 'input_audio_buffer.commit': {
          const item: Item = { id: `item_${id}_${n + 1}`, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] };
          send({ type: 'input_audio_buffer.committed', previous_item_id: items.at(-1)?.id ?? null, item_id: item.id });
          addItem(item, event.event_id);
          if (transcribes()) {
            const transcript = `spoken words ${items.length}`;
            item.content = [{ type: 'input_audio', transcript }];
            send({ type: 'conversation.item.input_audio_transcription.completed', item_id: item.id, content_index: 0, transcript });
          }
          return;
        }
        case 'conversation.item.create': {
          const given = event.item ?? ({} as Item);
          return void addItem({ ...given, id: given.id ?? `item_${id}_${n + 1}`, object: 'realtime.item', status: 'completed' }, event.event_id);
        }
        case 'conversation.item.delete': {
          const at = items.findIndex((i) => i.id === (event as { item_id?: string }).item_id);
          if (at < 0) return error('item_not_found', 'No such item.', event.event_id, 'item_id');
          items.splice(at, 1);
          return send({ type: 'conversation.item.deleted', item_id: (event as { item_id?: string }).item_id });
        }
        case 'response.create':
          return this.respond(send, items, names, id, form, () => n);
        case 'test.flood':
          // Sends this many bytes of audio deltas as fast as the reader takes them.
          return void this.flood(ws, names.audioDelta, event.bytes ?? 64 * 1024 * 1024);
        case 'test.close':
          // Lets a test make the upstream go away mid-session.
          return ws.close(1011, 'closed by the simulator');
        default:
          return error('unknown_event', `Unknown event type ${event.type}.`, event.event_id, 'type');
      }
    });
    send({ type: 'session.created', session: config });
  }

  private respond(send: (e: Record<string, unknown>) => void, items: Item[], names: (typeof EVENTS)['ga' | 'preview'], id: string, form: 'ga' | 'preview', n: () => number): void {
    const response = `resp_${id}_${n() + 1}`;
    const itemId = `item_${response}`;
    const heard = items.filter((i) => i.role === 'user').map((i) => i.content?.map((c) => c.text ?? c.transcript ?? '').join(' ') ?? '').filter(Boolean);
    const transcript = `Simulated reply ${items.filter((i) => i.role === 'assistant').length + 1}. Heard: ${heard.join(' | ') || 'nothing'}.`;
    const inProgress: Item = { id: itemId, object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
    send({ type: 'response.created', response: { id: response, object: 'realtime.response', status: 'in_progress', output: [] } });
    send({ type: 'response.output_item.added', response_id: response, output_index: 0, item: inProgress });
    send({ type: names.itemAdded, previous_item_id: items.at(-1)?.id ?? null, item: inProgress });
    const stall = this.options.stallAfterDeltas;
    for (let i = 0; i < (stall ?? this.options.deltasPerResponse); i++) {
      send({ type: names.audioDelta, response_id: response, item_id: itemId, output_index: 0, content_index: 0, delta: Buffer.alloc(240, i).toString('base64') });
    }
    if (stall !== undefined) return;
    send({ type: names.transcriptDone, response_id: response, item_id: itemId, output_index: 0, content_index: 0, transcript });
    const done: Item = { ...inProgress, status: 'completed', content: [{ type: names.assistantContent, transcript }] };
    items.push(done);
    send({ type: 'response.output_item.done', response_id: response, output_index: 0, item: done });
    if (form === 'ga') send({ type: 'conversation.item.done', item: done });
    send({ type: 'response.done', response: { id: response, object: 'realtime.response', status: 'completed', output: [done], usage: { total_tokens: 42, input_tokens: 30, output_tokens: 12 } } });
  }

  /** Not recorded: a flood is for memory tests, and keeping it would be the memory. */
  private async flood(ws: WebSocket, type: string, bytes: number): Promise<void> {
    const text = JSON.stringify({ type, response_id: 'resp_flood', item_id: 'item_flood', output_index: 0, content_index: 0, delta: Buffer.alloc(48 * 1024, 7).toString('base64') });
    let sent = 0;
    while (sent < bytes && ws.readyState === WebSocket.OPEN) {
      if (ws.bufferedAmount > FLOOD_HIGH_WATER) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      ws.send(text);
      sent += text.length;
    }
  }
}
