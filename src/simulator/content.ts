import { createHash, randomBytes } from 'node:crypto';
import { SIM_MODELS } from './models';

/**
 * Response bodies shaped like Azure OpenAI's, content-filter annotations
 * included, with deterministic text so tests can check what came through.
 */

/** The chat model the simulator reports where a reply names one. */
export const SIM_MODEL = SIM_MODELS['gpt-4o'].reported;

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

/** The choices' texts of a legacy completion: `n` of them, each after the first saying which it is. */
function completionTexts(body: Record<string, unknown>): string[][] {
  const prompt = Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt ?? '');
  const words = replyWords(prompt, body.max_tokens);
  const n = typeof body.n === 'number' ? body.n : 1;
  return Array.from({ length: n }, (_, i) => (i === 0 ? words : [`(choice ${i + 1})`, ...words]));
}

function promptTokens(body: Record<string, unknown>): number {
  return countTokens(Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt ?? ''));
}

export function completion(body: Record<string, unknown>, model: string) {
  const texts = completionTexts(body);
  const completionTokens = texts.reduce((sum, t) => sum + t.length, 0);
  const prompt = promptTokens(body);
  return {
    choices: texts.map((words, index) => ({ content_filter_results: SAFE_FILTER, finish_reason: 'stop', index, logprobs: null, text: words.join(' ') })),
    created: Math.floor(Date.now() / 1000),
    id: newId('cmpl'),
    model,
    object: 'text_completion',
    prompt_filter_results: promptFilterResults(),
    usage: { completion_tokens: completionTokens, prompt_tokens: prompt, total_tokens: completionTokens + prompt },
  };
}

export function completionChunks(body: Record<string, unknown>, model: string): string[] {
  const id = newId('cmpl');
  const created = Math.floor(Date.now() / 1000);
  const events = [JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() })];
  completionTexts(body).forEach((words, index) => {
    words.forEach((w, i) => events.push(JSON.stringify({ choices: [{ content_filter_results: SAFE_FILTER, finish_reason: i === words.length - 1 ? 'stop' : null, index, logprobs: null, text: i === 0 ? w : ` ${w}` }], created, id, model, object: 'text_completion' })));
  });
  return [...events.map((e) => `data: ${e}\n\n`), 'data: [DONE]\n\n'];
}

/** Deterministic unit-ish vectors derived from the input text. */
export function embeddings(body: Record<string, unknown>, model: string) {
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
  return { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
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
