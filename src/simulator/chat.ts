import { createHash, randomBytes } from 'node:crypto';
import { SAFE_FILTER, countTokens, functionCallTokens, lastUserText, newId, promptFilterResults, replyWords, textPieces } from './content';
import { chooseTools, functionTools } from './requests';
import { sampleOf } from './schema';

/**
 * Chat completions as Azure's chat models answer them, whole or streamed:
 * `n` choices, tool calls (for `tools`/`tool_choice`), token log
 * probabilities (`logprobs`/`top_logprobs`), and JSON that fits
 * `response_format` (json_object, or json_schema's schema). The text is
 * deterministic, so tests can check what came through.
 */
const FINGERPRINT = 'fp_sim0001';

interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

/** What one choice says: text (split into tokens, `cut` when the token limit stopped it) or tool calls. */
type Answer = { readonly kind: 'text'; readonly tokens: readonly string[]; readonly cut: boolean } | { readonly kind: 'tools'; readonly calls: readonly ToolCall[] };

interface Plan {
  readonly answers: readonly Answer[];
  readonly logprobs: boolean;
  readonly topLogprobs: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

function plan(body: Record<string, unknown>): Plan {
  const n = typeof body.n === 'number' ? body.n : 1;
  const answers: Answer[] = [];
  for (let i = 0; i < n; i++) answers.push(answer(body, i));
  const completionTokens = answers.reduce((sum, a) => sum + (a.kind === 'text' ? a.tokens.length : a.calls.reduce((s, c) => s + functionCallTokens(c.arguments), 0)), 0);
  return {
    answers,
    logprobs: body.logprobs === true,
    topLogprobs: typeof body.top_logprobs === 'number' ? body.top_logprobs : 0,
    promptTokens: countTokens(lastUserText(body.messages)) + 7,
    completionTokens,
  };
}

function answer(body: Record<string, unknown>, index: number): Answer {
  const calls = toolCalls(body);
  if (calls) return { kind: 'tools', calls };
  const limit = tokenLimit(body);
  const prompt = lastUserText(body.messages);
  const format = body.response_format as { type?: string; json_schema?: { schema?: unknown } } | undefined;
  if (format?.type === 'json_schema') return capped(jsonTokens(sampleOf(format.json_schema?.schema ?? {})), limit);
  if (format?.type === 'json_object') return capped(jsonTokens({ reply: replyWords(prompt, undefined).join(' ') }), limit);
  const last = (body.messages as { role?: string; content?: unknown }[]).at(-1);
  const reply = replyWords(prompt, undefined);
  // A limit beyond the reply pads it with filler words up to the limit: gateway
  // tests size their streams and token counts by max_tokens.
  const words = last?.role === 'tool'
    ? `Simulated reply using the tool result: ${typeof last.content === 'string' ? last.content : JSON.stringify(last.content)}`.split(/\s+/)
    : limit !== undefined && limit > reply.length ? replyWords(prompt, limit) : reply;
  const { tokens, cut } = capped(words, limit);
  // Choices after the first say which they are, so a client can tell them apart.
  const said = index === 0 ? tokens : [`(choice ${index + 1})`, ...tokens];
  return { kind: 'text', tokens: said.map((w, i) => (i === 0 ? w : ` ${w}`)), cut };
}

/** max_tokens, else max_completion_tokens, when a positive number. */
function tokenLimit(body: Record<string, unknown>): number | undefined {
  const limit = body.max_tokens ?? body.max_completion_tokens;
  return typeof limit === 'number' && limit > 0 ? limit : undefined;
}

/** The tokens up to the limit: a model stops there, mid-sentence or mid-JSON, and says so with finish_reason "length". */
function capped(tokens: readonly string[], limit: number | undefined): { kind: 'text'; tokens: readonly string[]; cut: boolean } {
  const cut = limit !== undefined && tokens.length > limit;
  return { kind: 'text', tokens: cut ? tokens.slice(0, limit) : tokens, cut };
}

/**
 * The tool calls a model would make: none once the last message is a tool's
 * result, or when tool_choice is "none"; else those chooseTools picks.
 */
function toolCalls(body: Record<string, unknown>): ToolCall[] | undefined {
  const tools = functionTools(body);
  const choice = body.tool_choice as string | { function: { name: string } } | undefined;
  const messages = body.messages as { role?: string }[];
  if (tools.length === 0 || choice === 'none' || messages.at(-1)?.role === 'tool') return undefined;
  const named = typeof choice === 'object' && choice !== null ? choice.function.name : undefined;
  return chooseTools(tools, named, lastUserText(body.messages), body.parallel_tool_calls).map((t) => ({ id: `call_${randomBytes(12).toString('base64url')}`, name: t.name, arguments: JSON.stringify(sampleOf(t.parameters ?? { type: 'object', properties: {} })) }));
}

/** JSON text cut into small pieces, as a model emits it token by token. */
function jsonTokens(value: unknown): string[] {
  return textPieces(JSON.stringify(value));
}

/** A token's log probability: deterministic, between -0.5 and 0. */
function logprobOf(token: string): number {
  return -createHash('sha1').update(token).digest()[0] / 512;
}

function tokenLogprobs(tokens: readonly string[], top: number) {
  return tokens.map((token) => {
    const logprob = logprobOf(token);
    const alternatives = [{ token, logprob }];
    for (let k = 1; k < top; k++) alternatives.push({ token: `${token}~${k}`, logprob: logprob - k });
    return { token, logprob, bytes: [...Buffer.from(token)], top_logprobs: alternatives.slice(0, top).map((a) => ({ ...a, bytes: [...Buffer.from(a.token)] })) };
  });
}

function finishReason(a: Answer): string {
  if (a.kind === 'tools') return 'tool_calls';
  return a.cut ? 'length' : 'stop';
}

function message(a: Answer) {
  if (a.kind === 'tools') {
    return { annotations: [], content: null, refusal: null, role: 'assistant', tool_calls: a.calls.map((c) => ({ function: { arguments: c.arguments, name: c.name }, id: c.id, type: 'function' })) };
  }
  return { annotations: [], content: a.tokens.join(''), refusal: null, role: 'assistant' };
}

export function chatCompletion(body: Record<string, unknown>, model: string) {
  const p = plan(body);
  return {
    choices: p.answers.map((a, index) => ({
      content_filter_results: SAFE_FILTER,
      finish_reason: finishReason(a),
      index,
      logprobs: p.logprobs && a.kind === 'text' ? { content: tokenLogprobs(a.tokens, p.topLogprobs), refusal: null } : null,
      message: message(a),
    })),
    created: Math.floor(Date.now() / 1000),
    id: newId('chatcmpl'),
    model,
    object: 'chat.completion',
    prompt_filter_results: promptFilterResults(),
    system_fingerprint: FINGERPRINT,
    usage: { completion_tokens: p.completionTokens, prompt_tokens: p.promptTokens, total_tokens: p.completionTokens + p.promptTokens },
  };
}

/** The server-sent events of a streamed chat completion, in Azure's order, each choice after the one before. */
export function chatChunks(body: Record<string, unknown>, model: string): string[] {
  const p = plan(body);
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const id = newId('chatcmpl');
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choices: unknown[], usage: unknown = includeUsage ? null : undefined) =>
    JSON.stringify({ choices, created, id, model, object: 'chat.completion.chunk', system_fingerprint: FINGERPRINT, usage });
  const events = [JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() })];
  p.answers.forEach((a, index) => {
    const delta = (d: unknown, logprobs: unknown = null, filter: unknown = SAFE_FILTER) => chunk([{ content_filter_results: filter, delta: d, finish_reason: null, index, logprobs }]);
    if (a.kind === 'tools') {
      events.push(delta({ content: null, refusal: null, role: 'assistant' }, null, {}));
      a.calls.forEach((c, k) => {
        events.push(delta({ tool_calls: [{ function: { arguments: '', name: c.name }, id: c.id, index: k, type: 'function' }] }, null, {}));
        for (const piece of c.arguments.match(/.{1,8}/gs) ?? []) events.push(delta({ tool_calls: [{ function: { arguments: piece }, index: k }] }, null, {}));
      });
    } else {
      events.push(delta({ content: '', refusal: null, role: 'assistant' }, p.logprobs ? { content: [], refusal: null } : null, {}));
      const logprobs = p.logprobs ? tokenLogprobs(a.tokens, p.topLogprobs) : [];
      a.tokens.forEach((t, i) => events.push(delta({ content: t }, p.logprobs ? { content: [logprobs[i]], refusal: null } : null)));
    }
    events.push(chunk([{ content_filter_results: {}, delta: {}, finish_reason: finishReason(a), index, logprobs: null }]));
  });
  if (includeUsage) events.push(chunk([], { completion_tokens: p.completionTokens, prompt_tokens: p.promptTokens, total_tokens: p.completionTokens + p.promptTokens }));
  return [...events.map((e) => `data: ${e}\n\n`), 'data: [DONE]\n\n'];
}
