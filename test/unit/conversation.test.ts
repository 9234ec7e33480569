import { describe, expect, it } from 'vitest';
import { ConversationRecord, MAX_ITEMS, RecordSink } from '../../src/realtime/conversation';

/** A sink that keeps what the record asks to be written, as the store would. */
function memorySink() {
  const written = { config: '', inFlight: '', items: new Map<number, string>() };
  const sink: RecordSink = {
    config: (json) => (written.config = json),
    inFlight: (id) => (written.inFlight = id),
    putItem: (seq, json) => written.items.set(seq, json),
    deleteItem: (seq) => written.items.delete(seq),
  };
  return { written, sink };
}

const azure = (record: ConversationRecord, event: Record<string, unknown>) => record.observe(true, event.type as string, JSON.stringify(event));
const client = (record: ConversationRecord, event: Record<string, unknown>) => record.observe(false, event.type as string, JSON.stringify(event));
const replayed = (record: ConversationRecord, form: 'ga' | 'preview') => record.replay(form).events.map((e) => JSON.parse(e));

describe('the conversation a resumed session replays', () => {
  it('keeps the client\'s session.update events merged, nested settings field by field', () => {
    const { written, sink } = memorySink();
    const r = new ConversationRecord(sink);
    client(r, { type: 'session.update', session: { type: 'realtime', instructions: 'Be brief.', audio: { input: { format: { type: 'audio/pcm' } } } } });
    client(r, { type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'verse' } } } });
    expect(JSON.parse(written.config)).toEqual({ type: 'realtime', instructions: 'Be brief.', audio: { input: { format: { type: 'audio/pcm' } }, output: { voice: 'verse' } } });
    expect(replayed(r, 'ga')[0]).toMatchObject({ type: 'session.update', session: { type: 'realtime', instructions: 'Be brief.' } });
  });

  it('records items in conversation order with their text as it becomes known, and replays them with their own ids in the new session\'s form', () => {
    const { written, sink } = memorySink();
    const r = new ConversationRecord(sink);
    // A user's audio, transcribed only after the assistant began answering.
    azure(r, { type: 'conversation.item.added', item: { id: 'u1', type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] } });
    azure(r, { type: 'conversation.item.added', item: { id: 'a1', type: 'message', role: 'assistant', content: [] } });
    azure(r, { type: 'response.output_item.done', item: { id: 'a1', type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'Hello Ada.' }] } });
    azure(r, { type: 'conversation.item.input_audio_transcription.completed', item_id: 'u1', transcript: 'I am Ada.' });
    azure(r, { type: 'conversation.item.created', item: { id: 'f1', type: 'function_call', call_id: 'c1', name: 'lookup', arguments: '{"q":1}' } });
    azure(r, { type: 'conversation.item.created', item: { id: 'f2', type: 'function_call_output', call_id: 'c1', output: '42' } });
    expect(replayed(r, 'ga').map((e) => e.item)).toEqual([
      { id: 'u1', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'I am Ada.' }] },
      { id: 'a1', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hello Ada.' }] },
      { id: 'f1', type: 'function_call', call_id: 'c1', name: 'lookup', arguments: '{"q":1}' },
      { id: 'f2', type: 'function_call_output', call_id: 'c1', output: '42' },
    ]);
    // The preview API calls an assistant's text `text`.
    expect(replayed(r, 'preview')[1].item.content).toEqual([{ type: 'text', text: 'Hello Ada.' }]);
    // What was written restores the same record on another instance.
    const restored = ConversationRecord.restore(memorySink().sink, '', [...written.items].map(([seq, json]) => ({ seq, json })), '');
    expect(replayed(restored, 'ga')).toEqual(replayed(r, 'ga').map((e) => ({ ...e, event_id: expect.any(String) })));
  });

  it('forgets deleted items, and the oldest beyond its bound', () => {
    const { written, sink } = memorySink();
    const r = new ConversationRecord(sink);
    const say = (id: string) => azure(r, { type: 'conversation.item.created', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: `text ${id}` }] } });
    say('x');
    azure(r, { type: 'conversation.item.deleted', item_id: 'x' });
    expect(r.itemCount).toBe(0);
    for (let i = 0; i < MAX_ITEMS + 5; i++) say(`i${i}`);
    expect(r.itemCount).toBe(MAX_ITEMS);
    expect(written.items.size).toBe(MAX_ITEMS);
    expect(replayed(r, 'ga')[0].item.id).toBe('i5');
  });

  it('knows the response in flight from response.created until response.done', () => {
    const { written, sink } = memorySink();
    const r = new ConversationRecord(sink);
    azure(r, { type: 'response.created', response: { id: 'resp_1', status: 'in_progress' } });
    expect(written.inFlight).toBe('resp_1');
    azure(r, { type: 'response.done', response: { id: 'resp_1', status: 'completed' } });
    expect(written.inFlight).toBe('');
  });
});
