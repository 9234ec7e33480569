import { createHash, randomBytes } from 'node:crypto';

/**
 * Response bodies shaped like Azure OpenAI's, content-filter annotations
 * included, with deterministic text so tests can check what came through.
 */
export const SIM_MODEL = 'gpt-4o-2024-08-06';
const FINGERPRINT = 'fp_sim0001';

export const SAFE_FILTER = {
  hate: { filtered: false, severity: 'safe' },
  self_harm: { filtered: false, severity: 'safe' },
  sexual: { filtered: false, severity: 'safe' },
  violence: { filtered: false, severity: 'safe' },
};

export const promptFilterResults = () => [{ prompt_index: 0, content_filter_results: SAFE_FILTER }];

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('base64url')}`;
}

/** Rough token count: words, as the simulator has no tokenizer. */
export function countTokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

export function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (m?.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) {
      return m.content.map((p: { type?: string; text?: string }) => (p?.type === 'text' ? p.text ?? '' : '')).join(' ');
    }
  }
  return '';
}

/** The reply's words: an echo of the prompt, padded or cut to max_tokens when given. */
export function replyWords(prompt: string, maxTokens: unknown): string[] {
  const base = `Simulated reply to: ${prompt || '(empty prompt)'}`.split(/\s+/).filter(Boolean);
  const want = typeof maxTokens === 'number' && maxTokens > 0 ? Math.min(maxTokens, 100_000) : base.length;
  const words: string[] = [];
  for (let i = 0; i < want; i++) words.push(i < base.length ? base[i] : `word${i}`);
  return words;
}

export function chatCompletion(body: Record<string, unknown>) {
  const prompt = lastUserText(body.messages);
  const words = replyWords(prompt, body.max_tokens ?? body.max_completion_tokens);
  const promptTokens = countTokens(prompt) + 7;
  return {
    choices: [{
      content_filter_results: SAFE_FILTER,
      finish_reason: 'stop',
      index: 0,
      logprobs: null,
      message: { annotations: [], content: words.join(' '), refusal: null, role: 'assistant' },
    }],
    created: Math.floor(Date.now() / 1000),
    id: newId('chatcmpl'),
    model: SIM_MODEL,
    object: 'chat.completion',
    prompt_filter_results: promptFilterResults(),
    system_fingerprint: FINGERPRINT,
    usage: { completion_tokens: words.length, prompt_tokens: promptTokens, total_tokens: words.length + promptTokens },
  };
}

/** The server-sent events of a streamed chat completion, in Azure's order. */
export function chatChunks(body: Record<string, unknown>): string[] {
  const prompt = lastUserText(body.messages);
  const words = replyWords(prompt, body.max_tokens ?? body.max_completion_tokens);
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const id = newId('chatcmpl');
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choices: unknown[], usage: unknown = includeUsage ? null : undefined) =>
    JSON.stringify({ choices, created, id, model: SIM_MODEL, object: 'chat.completion.chunk', system_fingerprint: FINGERPRINT, usage });
  const events = [
    JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() }),
    chunk([{ content_filter_results: {}, delta: { content: '', refusal: null, role: 'assistant' }, finish_reason: null, index: 0, logprobs: null }]),
    ...words.map((w, i) => chunk([{ content_filter_results: SAFE_FILTER, delta: { content: i === 0 ? w : ` ${w}` }, finish_reason: null, index: 0, logprobs: null }])),
    chunk([{ content_filter_results: {}, delta: {}, finish_reason: 'stop', index: 0, logprobs: null }]),
  ];
  if (includeUsage) {
    const promptTokens = countTokens(prompt) + 7;
    events.push(chunk([], { completion_tokens: words.length, prompt_tokens: promptTokens, total_tokens: words.length + promptTokens }));
  }
  return [...events.map((e) => `data: ${e}\n\n`), 'data: [DONE]\n\n'];
}

export function completion(body: Record<string, unknown>) {
  const prompt = Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt ?? '');
  const words = replyWords(prompt, body.max_tokens);
  const promptTokens = countTokens(prompt);
  return {
    choices: [{ content_filter_results: SAFE_FILTER, finish_reason: 'stop', index: 0, logprobs: null, text: words.join(' ') }],
    created: Math.floor(Date.now() / 1000),
    id: newId('cmpl'),
    model: 'gpt-35-turbo-instruct',
    object: 'text_completion',
    prompt_filter_results: promptFilterResults(),
    usage: { completion_tokens: words.length, prompt_tokens: promptTokens, total_tokens: words.length + promptTokens },
  };
}

export function completionChunks(body: Record<string, unknown>): string[] {
  const prompt = Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt ?? '');
  const words = replyWords(prompt, body.max_tokens);
  const id = newId('cmpl');
  const created = Math.floor(Date.now() / 1000);
  const events = [
    JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() }),
    ...words.map((w, i) => JSON.stringify({ choices: [{ content_filter_results: SAFE_FILTER, finish_reason: i === words.length - 1 ? 'stop' : null, index: 0, logprobs: null, text: i === 0 ? w : ` ${w}` }], created, id, model: 'gpt-35-turbo-instruct', object: 'text_completion' })),
  ];
  return [...events.map((e) => `data: ${e}\n\n`), 'data: [DONE]\n\n'];
}

/** Deterministic unit-ish vectors derived from the input text. */
export function embeddings(body: Record<string, unknown>) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const dims = typeof body.dimensions === 'number' && body.dimensions > 0 ? Math.min(body.dimensions, 3072) : 1536;
  const base64 = body.encoding_format === 'base64';
  let tokens = 0;
  const data = inputs.map((input, index) => {
    const text = typeof input === 'string' ? input : JSON.stringify(input);
    tokens += Math.max(1, countTokens(text));
    const vector = new Float32Array(dims);
    let seed = createHash('sha256').update(text).digest();
    for (let i = 0; i < dims; i++) {
      if (i % 32 === 0 && i > 0) seed = createHash('sha256').update(seed).digest();
      vector[i] = (seed[i % 32] - 127.5) / 127.5;
    }
    return { object: 'embedding', index, embedding: base64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector) };
  });
  return { object: 'list', data, model: 'text-embedding-3-small', usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

export function contentFilterError() {
  return {
    error: {
      message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
      type: null,
      param: 'prompt',
      code: 'content_filter',
      status: 400,
      innererror: {
        code: 'ResponsibleAIPolicyViolation',
        content_filter_result: {
          hate: { filtered: false, severity: 'safe' },
          jailbreak: { filtered: false, detected: false },
          self_harm: { filtered: false, severity: 'safe' },
          sexual: { filtered: false, severity: 'safe' },
          violence: { filtered: true, severity: 'medium' },
        },
      },
    },
  };
}

/** Azure's image content-filter error: its own shape, with `created` beside `error` (Azure dall-e.md). */
export function imageContentFilterError() {
  return { created: Math.floor(Date.now() / 1000), error: { code: 'contentFilter', message: 'Your task failed as a result of our safety system.' } };
}
