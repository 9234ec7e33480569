import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { AzureOpenAISimulator, SimCall } from './server';
import { SIM_MODEL, countTokens, functionCallTokens, replyWords, textPieces } from './content';
import { chooseTools, invalid, missing, typeName, typesProblem } from './requests';
import { sampleOf } from './schema';

/**
 * Azure's Responses API on one resource, as its docs and captures describe it
 * (Azure responses.md; openai-openapi for shapes; sources beside each rule).
 * Stored responses belong to the resource, not to a deployment: the retrieve,
 * delete, cancel and input_items paths carry none. So a simulator is one
 * resource, and a pool spread over two simulators behaves as Azure does when a
 * follow-up lands on the wrong one: previous_response_not_found.
 */
type Json = Record<string, unknown>;

interface StoredResponse {
  /** The response object as a retrieve returns it now. */
  value: Json;
  readonly input: Json[];
  readonly background: boolean;
  /** Created with stream: true: only then can a background response's stream be resumed (Azure responses.md). */
  readonly streamed: boolean;
  timer?: NodeJS.Timeout;
}

/** Enough to keep a busy `npm start` or benchmark from growing without bound. */
const MAX_STORED = 10_000;

/** The resource's stored responses and their items, oldest dropped first past the limit. */
class ResponseStore {
  private readonly responses = new Map<string, StoredResponse>();
  private readonly items = new Map<string, Json>();

  get(id: string): StoredResponse | undefined {
    return this.responses.get(id);
  }

  item(id: string): Json | undefined {
    return this.items.get(id);
  }

  put(stored: StoredResponse): void {
    const id = stored.value.id as string;
    this.responses.set(id, stored);
    for (const item of [...stored.input, ...(stored.value.output as Json[])]) this.items.set(item.id as string, item);
    if (this.responses.size > MAX_STORED) this.delete(this.responses.keys().next().value!);
  }

  /** The response reached a new state (completed, cancelled): its output items become referable. */
  update(stored: StoredResponse, value: Json): void {
    stored.value = value;
    for (const item of value.output as Json[]) this.items.set(item.id as string, item);
  }

  delete(id: string): boolean {
    const stored = this.responses.get(id);
    if (!stored) return false;
    clearTimeout(stored.timer);
    this.responses.delete(id);
    for (const item of [...stored.input, ...(stored.value.output as Json[])]) this.items.delete(item.id as string);
    return true;
  }

  clear(): void {
    for (const id of [...this.responses.keys()]) this.delete(id);
  }
}

export function installResponses(sim: AzureOpenAISimulator): void {
  const store = new ResponseStore();
  sim.handle('responses', (s, call, _req, res) => create(s, store, call, res));
  sim.handle('responses/', (s, call, _req, res) => onStored(s, store, call, res));
  sim.onClose(() => store.clear());
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
/** Azure's ids: resp_ and msg_ followed by 32 hex digits (Azure responses.md samples). */
const newId = (prefix: 'resp' | 'msg' | 'fc') => `${prefix}_${hex(16)}`;

/** OpenAI's and Azure's answer for an unknown id on retrieve, delete, cancel and input_items. */
const responseNotFound = (id: string) => invalid(`Response with id '${id}' not found.`);

async function create(sim: AzureOpenAISimulator, store: ResponseStore, call: SimCall, res: http.ServerResponse): Promise<void> {
  if (call.method !== 'POST') return sim.send(call, res, 404, { error: { code: '404', message: 'Resource not found' } });
  const body = parseObject(call.body);
  if (!body) return sim.send(call, res, 400, invalid('We could not parse the JSON body of your request.'));
  if (!call.deployment) return sim.send(call, res, 400, invalid("Missing required parameter: 'model'.", 'model', 'missing_required_parameter'));
  if (!sim.serves(call, res, 'responses')) return;
  const mistyped = typeProblem(body);
  if (mistyped) return sim.send(call, res, 400, mistyped);
  const previousId = body.previous_response_id;
  if (previousId !== undefined && previousId !== null && body.conversation !== undefined && body.conversation !== null) {
    return sim.send(call, res, 400, invalid("Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or 'conversation'.", null, 'mutually_exclusive_parameters'));
  }
  let previous: StoredResponse | undefined;
  if (typeof previousId === 'string') {
    previous = store.get(previousId);
    // Azure and OpenAI alike (microsoft/agent-framework#6419; dotnet/extensions#7704).
    if (!previous) return sim.send(call, res, 400, invalid(`Previous response with id '${previousId}' not found.`, 'previous_response_id', 'previous_response_not_found'));
  }
  if (body.conversation !== undefined && body.conversation !== null) {
    // This simulator serves no Conversations API, so no conversation exists on it. Undocumented shape: OpenAI's not-found form.
    const conversationId = typeof body.conversation === 'string' ? body.conversation : String((body.conversation as Json).id ?? '');
    return sim.send(call, res, 404, invalid(`Conversation with id '${conversationId}' not found.`, 'conversation'));
  }
  const stored = body.store !== false;
  const background = body.background === true;
  // "Background mode requires store=true" (Azure responses.md, Limitations); the wording is ours.
  if (background && !stored) return sim.send(call, res, 400, invalid('Background mode requires `store` to be true.', 'background'));

  const input: Json[] = [];
  for (const item of inputItems(body.input)) {
    if (item.type === 'item_reference') {
      const found = typeof item.id === 'string' ? store.item(item.id) : undefined;
      // openclaw/openclaw#21782 (Azure, a store:false chain).
      if (!found) return sim.send(call, res, 400, invalid(`Item with id '${String(item.id)}' not found. Items are not persisted when \`store\` is set to false. Try again with \`store\` set to true, or remove this item from your input.`, 'input'));
      input.push(found);
    } else input.push(item);
  }

  const unpaired = callsProblem(input, previous);
  if (unpaired) return sim.send(call, res, 400, unpaired);
  const format = (body.text as { format?: Json } | undefined)?.format;
  if (format?.type === 'json_schema' && typeof format.name !== 'string') return sim.send(call, res, 400, missing('text.format.name'));
  // Only the input's messages count, not the instructions (as pydantic/pydantic-ai's OpenAI client found).
  if (format?.type === 'json_object' && !/json/i.test(input.filter((i) => i.type === 'message').map((i) => JSON.stringify(i.content)).join(' '))) {
    return sim.send(call, res, 400, invalid("Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.", 'input'));
  }

  const final = responseObject(body, input, previous);
  if (background) {
    const queued = { ...final, status: 'queued', output: [], usage: null, completed_at: null };
    const entry: StoredResponse = { value: queued, input, background, streamed: body.stream === true };
    store.put(entry);
    if (body.stream === true) return void (await streamResponse(sim, store, call, res, entry, final));
    entry.timer = setTimeout(() => store.update(entry, final), sim.options.backgroundMs ?? 1000);
    entry.timer.unref();
    return sim.send(call, res, 200, queued);
  }
  if (body.stream === true) {
    const entry: StoredResponse = { value: { ...final, status: 'in_progress', output: [], usage: null }, input, background, streamed: true };
    if (stored) store.put(entry);
    return void (await streamResponse(sim, store, call, res, entry, final));
  }
  if (stored) store.put({ value: final, input, background, streamed: false });
  sim.send(call, res, 200, final, { 'x-ratelimit-remaining-requests': '99' });
}

/**
 * Function calls and their outputs must pair up, in the input and the
 * response it follows: an output for a call never made, and a call left
 * without its output, are refused with OpenAI's words and param 'input'
 * (github/copilot-cli#4572 for an unanswered call; public captures of the
 * 400 for an output without its call show the same param).
 */
function callsProblem(input: readonly Json[], previous: StoredResponse | undefined) {
  const calls = [...((previous?.value.output as Json[] | undefined) ?? []), ...input].filter((i) => i.type === 'function_call');
  const outputs = new Set(input.filter((i) => i.type === 'function_call_output').map((i) => i.call_id));
  const orphan = input.find((i) => i.type === 'function_call_output' && !calls.some((c) => c.call_id === i.call_id));
  if (orphan) return invalid(`No tool call found for function call output with call_id ${String(orphan.call_id)}.`, 'input');
  const unanswered = calls.find((c) => !outputs.has(c.call_id));
  if (unanswered) return invalid(`No tool output found for function call ${String(unanswered.call_id)}.`, 'input');
  return undefined;
}

/** The parameters Azure's v1 spec types as strings or booleans (createResponse), checked as OpenAI's validator words it. */
const STRING_PARAMS = ['previous_response_id'];
const BOOLEAN_PARAMS = ['stream', 'background', 'store', 'parallel_tool_calls'];

function typeProblem(body: Json) {
  return typesProblem(body, STRING_PARAMS, 'string') ?? typesProblem(body, BOOLEAN_PARAMS, 'boolean') ?? flatToolsProblem(body);
}

/**
 * The Responses API's function tools are flat ({ type: 'function', name,
 * parameters }, openai-openapi FunctionTool), unlike chat's; other tool types
 * (web search, file search, MCP...) are taken and not used here. The wording
 * is OpenAI's validator's, as for chat.
 */
function flatToolsProblem(body: Json) {
  const tools = body.tools;
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) return invalid(`Invalid type for 'tools': expected an array of objects, but got ${typeName(tools)} instead.`, 'tools', 'invalid_type');
    for (let i = 0; i < tools.length; i++) {
      const t = tools[i] as Json | null;
      if (typeof t?.type !== 'string') return missing(`tools[${i}].type`);
      if (t.type === 'function' && typeof t.name !== 'string') return missing(`tools[${i}].name`);
    }
  }
  const named = (body.tool_choice as Json | null | undefined)?.name;
  // OpenAI's words, param tool_choice, as captured in clients that met them (a tool_choice naming image_generation without the tool).
  if (typeof named === 'string' && !flatFunctionTools(body).some((t) => t.name === named)) {
    return invalid(`Tool choice '${named}' not found in 'tools' parameter.`, 'tool_choice');
  }
  return undefined;
}

interface FlatFunctionTool {
  readonly name: string;
  readonly parameters?: unknown;
}

function flatFunctionTools(body: Json): FlatFunctionTool[] {
  return Array.isArray(body.tools) ? (body.tools as Json[]).filter((t) => t?.type === 'function') as unknown as FlatFunctionTool[] : [];
}

/**
 * The function calls a model would make: none when tool_choice is "none" or
 * the input ends on a call's output; else those chooseTools picks, as chat's.
 */
function functionCalls(body: Json, input: readonly Json[]): Json[] {
  const tools = flatFunctionTools(body);
  const choice = body.tool_choice;
  if (tools.length === 0 || choice === 'none' || input.at(-1)?.type === 'function_call_output') return [];
  const named = (choice as Json | null | undefined)?.name;
  return chooseTools(tools, typeof named === 'string' ? named : undefined, lastUserText(input), body.parallel_tool_calls).map((t) => ({
    id: newId('fc'),
    type: 'function_call',
    status: 'completed',
    call_id: `call_${randomBytes(12).toString('base64url')}`,
    name: t.name,
    arguments: JSON.stringify(sampleOf(t.parameters ?? { type: 'object', properties: {} })),
  }));
}

/** The message's text: what the last call returned, JSON when text.format asks for it, else an echo of the prompt. */
function replyText(body: Json, input: readonly Json[]): { text: string; tokens: number } {
  const last = input.at(-1);
  if (last?.type === 'function_call_output') {
    const text = `Simulated reply using the tool result: ${typeof last.output === 'string' ? last.output : JSON.stringify(last.output)}`;
    return { text, tokens: countTokens(text) };
  }
  const format = (body.text as { format?: { type?: unknown; schema?: unknown } } | undefined)?.format;
  const words = replyWords(lastUserText(input), body.max_output_tokens);
  if (format?.type === 'json_schema' || format?.type === 'json_object') {
    const text = JSON.stringify(format.type === 'json_schema' ? sampleOf(format.schema ?? {}) : { reply: words.join(' ') });
    // Counted as chat counts its JSON: the pieces it is emitted in.
    return { text, tokens: textPieces(text).length };
  }
  return { text: words.join(' '), tokens: words.length };
}

/** Streams the response's events; a client that leaves a synchronous stream cancels it (Azure responses.md). */
async function streamResponse(sim: AzureOpenAISimulator, store: ResponseStore, call: SimCall, res: http.ServerResponse, entry: StoredResponse, final: Json): Promise<void> {
  // Held after the first text delta: a test sees text arrive before the last event exists.
  const complete = await sim.writeEvents(call, res, responseEvents(final).map(encode), 5);
  if (store.get(final.id as string) !== entry) return;
  if (complete || entry.background) store.update(entry, final);
  else store.update(entry, { ...entry.value, status: 'cancelled' });
}

async function onStored(sim: AzureOpenAISimulator, store: ResponseStore, call: SimCall, res: http.ServerResponse): Promise<void> {
  const [, id, action, ...rest] = call.operation.split('/');
  const notFound = () => sim.send(call, res, 404, { error: { code: '404', message: 'Resource not found' } });
  if (!id || rest.length > 0) return notFound();
  const entry = store.get(id);
  const route = `${call.method} ${action ?? ''}`;
  if (!['GET ', 'DELETE ', 'POST cancel', 'GET input_items'].includes(route)) return notFound();
  if (!entry) return sim.send(call, res, 404, responseNotFound(id));
  const query = new URLSearchParams(call.query);
  switch (route) {
    case 'GET ':
      if (query.get('stream') === 'true') return resume(sim, call, res, entry, query);
      return sim.send(call, res, 200, entry.value);
    case 'DELETE ':
      store.delete(id);
      // The Azure v1 spec's deleteResponse: object "response.deleted", deleted true.
      return sim.send(call, res, 200, { id, object: 'response.deleted', deleted: true });
    case 'POST cancel':
      return cancel(sim, store, call, res, entry);
    default:
      return listInputItems(sim, call, res, entry, query);
  }
}

/**
 * "Only responses created with the background parameter set to true can be
 * cancelled" (openai-openapi); cancelling is idempotent: a finished response
 * comes back as it is (Azure responses.md). The 400's wording is the one
 * OpenAI-compatible servers use; Azure's own is not captured.
 */
function cancel(sim: AzureOpenAISimulator, store: ResponseStore, call: SimCall, res: http.ServerResponse, entry: StoredResponse): void {
  if (!entry.background) return sim.send(call, res, 400, invalid('Cannot cancel a synchronous response.'));
  if (entry.value.status === 'queued' || entry.value.status === 'in_progress') {
    clearTimeout(entry.timer);
    store.update(entry, { ...entry.value, status: 'cancelled' });
  }
  sim.send(call, res, 200, entry.value);
}

/** A background stream resumed after `starting_after` (Azure responses.md); only streams can be resumed. */
async function resume(sim: AzureOpenAISimulator, call: SimCall, res: http.ServerResponse, entry: StoredResponse, query: URLSearchParams): Promise<void> {
  if (!entry.background || !entry.streamed) {
    return sim.send(call, res, 400, invalid('This response cannot be streamed because it was not created with background=true and stream=true.', 'stream'));
  }
  const after = Number(query.get('starting_after') ?? -1);
  const events = entry.value.status === 'completed' ? responseEvents(entry.value) : [];
  await sim.writeEvents(call, res, events.filter((e) => (e.sequence_number as number) > after).map(encode));
}

/** limit 1 to 100 (default 20), order asc or desc (default desc), after an item id (openai-openapi; Azure v1 spec). */
function listInputItems(sim: AzureOpenAISimulator, call: SimCall, res: http.ServerResponse, entry: StoredResponse, query: URLSearchParams): void {
  const limit = query.has('limit') ? Number(query.get('limit')) : 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return sim.send(call, res, 400, invalid(`Invalid 'limit': integer between 1 and 100 expected, got ${query.get('limit')}.`, 'limit', 'integer_out_of_range'));
  const order = query.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') return sim.send(call, res, 400, invalid(`Invalid 'order': expected 'asc' or 'desc'.`, 'order'));
  let items = order === 'asc' ? [...entry.input] : [...entry.input].reverse();
  const after = query.get('after');
  if (after) items = items.slice(items.findIndex((i) => i.id === after) + 1);
  const page = items.slice(0, limit);
  sim.send(call, res, 200, { object: 'list', data: page, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: items.length > limit });
}

/** The request's input as items with ids: a string is one user message. */
function inputItems(input: unknown): Json[] {
  const list = typeof input === 'string' ? [{ role: 'user', content: input }] : Array.isArray(input) ? input : [];
  return list
    .filter((i): i is Json => typeof i === 'object' && i !== null)
    .map((item) => {
      if (item.type === 'item_reference') return item;
      if (item.type !== undefined && item.type !== 'message') return { id: item.id ?? `${String(item.type).split('_')[0]}_${hex(16)}`, ...item };
      const content = typeof item.content === 'string' ? [{ type: 'input_text', text: item.content }] : item.content;
      return { id: newId('msg'), type: 'message', role: item.role, status: 'completed', content };
    });
}

/** The text of the last user message among the items. */
function lastUserText(items: readonly Json[]): string {
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i];
    if (item.role !== 'user' || !Array.isArray(item.content)) continue;
    return (item.content as Json[]).map((p) => (typeof p.text === 'string' ? p.text : '')).join(' ').trim();
  }
  return '';
}

function itemTokens(items: readonly Json[]): number {
  let n = 0;
  for (const item of items) {
    if (!Array.isArray(item.content)) continue;
    for (const part of item.content as Json[]) if (typeof part.text === 'string') n += countTokens(part.text);
  }
  return n;
}

/** The finished response. A follow-up's input tokens count the whole chain before it, as Azure bills them. */
function responseObject(body: Json, input: Json[], previous: StoredResponse | undefined): Json {
  const calls = functionCalls(body, input);
  const reply = calls.length > 0 ? undefined : replyText(body, input);
  const outputTokens = reply?.tokens ?? calls.reduce((n, c) => n + functionCallTokens(c.arguments as string), 0);
  const prior = (previous?.value.usage as { total_tokens?: number } | null | undefined)?.total_tokens ?? 0;
  const inputTokens = prior + itemTokens(input) + 4;
  const created = Math.floor(Date.now() / 1000);
  return {
    id: newId('resp'),
    object: 'response',
    created_at: created,
    status: 'completed',
    background: body.background === true,
    completed_at: created,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    // Azure names the model behind the deployment here, not the deployment (Azure responses.md sample).
    model: SIM_MODEL,
    output: reply === undefined ? calls : [{
      id: newId('msg'),
      type: 'message',
      status: 'completed',
      role: 'assistant',
      content: [{ type: 'output_text', text: reply.text, annotations: [], logprobs: [] }],
    }],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    service_tier: 'default',
    store: body.store !== false,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: body.truncation ?? 'disabled',
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens + outputTokens,
    },
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
}

/**
 * The events of a streamed response in openai-openapi's order: created,
 * in_progress, then each output item: a message with its text part, one
 * delta per word, and the done events; or a function call with its
 * arguments in pieces, and the done events. Then completed. sequence_number
 * counts from 0; there is no [DONE].
 */
function responseEvents(final: Json): Json[] {
  const pending = { ...final, status: 'in_progress', output: [], usage: null, completed_at: null };
  const events: Json[] = [
    { type: 'response.created', response: pending },
    { type: 'response.in_progress', response: pending },
    ...(final.output as Json[]).flatMap((item, index) => (item.type === 'function_call' ? callEvents(item, index) : messageEvents(item, index))),
    { type: 'response.completed', response: final },
  ];
  return events.map((e, sequence_number) => ({ ...e, sequence_number }));
}

function messageEvents(message: Json, output_index: number): Json[] {
  const part = (message.content as Json[])[0];
  const text = part.text as string;
  const item = { item_id: message.id, output_index, content_index: 0 };
  return [
    { type: 'response.output_item.added', output_index, item: { ...message, status: 'in_progress', content: [] } },
    { type: 'response.content_part.added', ...item, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } },
    ...text.split(' ').map((w, i) => ({ type: 'response.output_text.delta', ...item, delta: i === 0 ? w : ` ${w}`, logprobs: [] })),
    { type: 'response.output_text.done', ...item, text, logprobs: [] },
    { type: 'response.content_part.done', ...item, part },
    { type: 'response.output_item.done', output_index, item: message },
  ];
}

/** A function call's events; the done event carries the function's name (openai-openapi's ResponseFunctionCallArgumentsDoneEvent requires it). */
function callEvents(call: Json, output_index: number): Json[] {
  const args = call.arguments as string;
  return [
    { type: 'response.output_item.added', output_index, item: { ...call, status: 'in_progress', arguments: '' } },
    ...textPieces(args).map((delta) => ({ type: 'response.function_call_arguments.delta', item_id: call.id, output_index, delta })),
    { type: 'response.function_call_arguments.done', item_id: call.id, output_index, name: call.name, arguments: args },
    { type: 'response.output_item.done', output_index, item: call },
  ];
}

/** Azure's SSE framing for the Responses API: an event line, then the data (which repeats the type). */
function encode(event: Json): string {
  return `event: ${event.type as string}\ndata: ${JSON.stringify(event)}\n\n`;
}

function parseObject(body: Buffer): Json | undefined {
  try {
    const v = JSON.parse(body.toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
