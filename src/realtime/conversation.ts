/** @module What a session must keep to be resumed: its configuration and the text of its conversation, and how to replay them. */
import { gatewayEventId } from './relay';

/**
 * A conversation item reduced to what can be replayed: who said it and its
 * text (typed text, or the transcript of audio), or a function call and its
 * output. Audio itself is not kept: Azure cannot take assistant audio back
 * (conversation.item.create "cannot populate assistant audio messages").
 */
export interface ReplayItem {
  readonly id: string;
  readonly type: 'message' | 'function_call' | 'function_call_output';
  readonly role?: 'user' | 'assistant' | 'system';
  readonly text?: string;
  readonly call_id?: string;
  readonly name?: string;
  readonly arguments?: string;
  readonly output?: string;
}

/** What the record asks to be written down as it changes. */
export interface RecordSink {
  config(json: string): void;
  inFlight(responseId: string): void;
  putItem(seq: number, json: string): void;
  deleteItem(seq: number): void;
}

/** Items kept per session, and characters of text over them: beyond either, the oldest are forgotten. */
export const MAX_ITEMS = 200;
export const MAX_TEXT = 256 * 1024;

const ITEM_EVENTS = new Set(['conversation.item.created', 'conversation.item.added', 'conversation.item.done', 'response.output_item.done']);

interface Entry {
  readonly seq: number;
  item?: ReplayItem;
}

type RawItem = { id?: string; type?: string; role?: string; call_id?: string; name?: string; arguments?: string; output?: string; content?: { text?: string | null; transcript?: string | null }[] };

/**
 * The session's record, kept by its owner from the events that pass: the
 * client's session.update events merged, each item's text as it becomes
 * known (a user's audio gets its transcript later, an assistant's item its
 * text when its output is done), deletions, and the response in flight.
 * Only the few event types that matter are parsed.
 */
export class ConversationRecord {
  private config: Record<string, unknown> = {};
  private readonly entries = new Map<string, Entry>();
  private nextSeq = 0;
  private textSize = 0;
  inFlight = '';

  constructor(private readonly sink: RecordSink) {}

  /** Restores what a previous owner recorded. */
  static restore(sink: RecordSink, config: string, items: readonly { seq: number; json: string }[], inFlight: string): ConversationRecord {
    const record = new ConversationRecord(sink);
    if (config) record.config = JSON.parse(config);
    for (const { seq, json } of items) {
      const item = JSON.parse(json) as ReplayItem;
      record.entries.set(item.id, { seq, item });
      record.textSize += textOf(item);
      record.nextSeq = Math.max(record.nextSeq, seq + 1);
    }
    record.inFlight = inFlight;
    return record;
  }

  get itemCount(): number {
    return [...this.entries.values()].filter((e) => e.item).length;
  }

  observe(fromAzure: boolean, type: string, text: string): void {
    if (!fromAzure) {
      if (type === 'session.update') this.onSessionUpdate(text);
      return;
    }
    if (ITEM_EVENTS.has(type)) {
      const item = (parse(text) as { item?: RawItem } | undefined)?.item;
      if (item?.id) this.upsert(item.id, reduce(item));
    } else if (type === 'conversation.item.input_audio_transcription.completed') {
      const e = parse(text) as { item_id?: string; transcript?: string } | undefined;
      if (e?.item_id && e.transcript) this.upsert(e.item_id, { id: e.item_id, type: 'message', role: 'user', text: e.transcript });
    } else if (type === 'conversation.item.deleted') {
      const id = (parse(text) as { item_id?: string } | undefined)?.item_id;
      if (id) this.forget(id);
    } else if (type === 'response.created') {
      this.setInFlight((parse(text) as { response?: { id?: string } } | undefined)?.response?.id ?? '');
    } else if (type === 'response.done') {
      this.setInFlight('');
    }
  }

  /**
   * The events that give a fresh Azure session this one's state: the merged
   * configuration (GA needs its session.type), then each item with its own
   * id, so later client events that name an item still find it.
   */
  replay(form: 'ga' | 'preview'): { events: string[]; itemIds: Set<string> } {
    const events: string[] = [];
    if (Object.keys(this.config).length > 0) {
      const session = form === 'ga' ? { type: 'realtime', ...this.config } : this.config;
      events.push(JSON.stringify({ type: 'session.update', event_id: gatewayEventId(), session }));
    }
    const itemIds = new Set<string>();
    for (const { item } of [...this.entries.values()].sort((a, b) => a.seq - b.seq)) {
      if (!item) continue;
      const created = toCreatable(item, form);
      if (!created) continue;
      itemIds.add(item.id);
      events.push(JSON.stringify({ type: 'conversation.item.create', event_id: gatewayEventId(), item: created }));
    }
    return { events, itemIds };
  }

  get hasConfig(): boolean {
    return Object.keys(this.config).length > 0;
  }

  private onSessionUpdate(text: string): void {
    const session = (parse(text) as { session?: Record<string, unknown> } | undefined)?.session;
    if (!session || typeof session !== 'object') return;
    // Nested settings (GA's audio.input, audio.output) are updated field by field, as Azure applies them.
    this.config = merge(this.config, session);
    this.sink.config(JSON.stringify(this.config));
  }

  private setInFlight(id: string): void {
    if (id === this.inFlight) return;
    this.inFlight = id;
    this.sink.inFlight(id);
  }

  private upsert(id: string, item: ReplayItem | undefined): void {
    let entry = this.entries.get(id);
    if (!entry) {
      entry = { seq: this.nextSeq++ };
      this.entries.set(id, entry);
    }
    if (!item) return;
    const before = entry.item;
    // A later event may know less (an item added before its text): keep the text already known.
    const merged = before && !item.text && before.text ? { ...item, text: before.text } : item;
    if (before && JSON.stringify(before) === JSON.stringify(merged)) return;
    this.textSize += textOf(merged) - (before ? textOf(before) : 0);
    entry.item = merged;
    this.sink.putItem(entry.seq, JSON.stringify(merged));
    this.trim();
  }

  private forget(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    if (entry.item) {
      this.textSize -= textOf(entry.item);
      this.sink.deleteItem(entry.seq);
    }
  }

  private trim(): void {
    while (this.entries.size > MAX_ITEMS || this.textSize > MAX_TEXT) {
      const oldest = [...this.entries.entries()].sort((a, b) => a[1].seq - b[1].seq)[0];
      if (!oldest) return;
      this.forget(oldest[0]);
    }
  }
}

type Json = Record<string, unknown>;

function merge(base: Json, update: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(update)) {
    const before = out[k];
    out[k] = isObject(before) && isObject(v) ? merge(before, v) : v;
  }
  return out;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function textOf(item: ReplayItem): number {
  return (item.text?.length ?? 0) + (item.arguments?.length ?? 0) + (item.output?.length ?? 0);
}

/** Azure's item (either form) as a replayable item, or undefined when it holds nothing replayable yet. */
function reduce(raw: RawItem): ReplayItem | undefined {
  const id = raw.id!;
  if (raw.type === 'function_call' && raw.call_id && raw.name) return { id, type: 'function_call', call_id: raw.call_id, name: raw.name, arguments: raw.arguments ?? '' };
  if (raw.type === 'function_call_output' && raw.call_id) return { id, type: 'function_call_output', call_id: raw.call_id, output: raw.output ?? '' };
  if (raw.type !== 'message' || (raw.role !== 'user' && raw.role !== 'assistant' && raw.role !== 'system')) return undefined;
  const text = (raw.content ?? []).map((c) => c.text ?? c.transcript ?? '').filter(Boolean).join(' ');
  return text ? { id, type: 'message', role: raw.role, text } : undefined;
}

/** The item as conversation.item.create takes it in the form of the new session. */
function toCreatable(item: ReplayItem, form: 'ga' | 'preview'): Record<string, unknown> | undefined {
  if (item.type === 'function_call') return { id: item.id, type: 'function_call', call_id: item.call_id, name: item.name, arguments: item.arguments };
  if (item.type === 'function_call_output') return { id: item.id, type: 'function_call_output', call_id: item.call_id, output: item.output };
  if (!item.text) return undefined;
  const contentType = item.role === 'assistant' ? (form === 'ga' ? 'output_text' : 'text') : 'input_text';
  return { id: item.id, type: 'message', role: item.role, content: [{ type: contentType, text: item.text }] };
}
