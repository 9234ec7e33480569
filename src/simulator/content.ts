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

/** The tokens of a function call: its arguments' words and a few for the call itself (chat and the Responses API alike). */
export function functionCallTokens(args: string): number {
  return countTokens(args) + 3;
}

/** Text cut into small pieces, as a model emits JSON (arguments, structured output) token by token. */
export function textPieces(text: string): string[] {
  return text.match(/.{1,6}/gs) ?? [];
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

/**
 * Deterministic unit vectors (OpenAI's embeddings FAQ: normalized to length 1), made of the
 * input's words: each word stands for a fixed random direction, and a text
 * for the sum of its words' directions. So texts that share words come out
 * alike, as a model's would for texts that share meaning, and an example or
 * a search tried locally behaves as one would expect.
 */
export function embeddings(body: Record<string, unknown>, model: string) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const dims = typeof body.dimensions === 'number' && body.dimensions > 0 ? Math.min(body.dimensions, 3072) : 1536;
  const base64 = body.encoding_format === 'base64';
  let tokens = 0;
  const data = inputs.map((input, index) => {
    const text = typeof input === 'string' ? input : JSON.stringify(input);
    tokens += Math.max(1, countTokens(text));
    const vector = textVector(text, dims);
    return { object: 'embedding', index, embedding: base64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector) };
  });
  return { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

function textVector(text: string, dims: number): Float32Array {
  const sum = new Float64Array(dims);
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [text];
  for (const word of words) {
    // mulberry32, seeded by the word: a direction per word, cheap enough for an 8,192-token input.
    let state = createHash('sha256').update(word).digest().readUInt32LE(0);
    for (let i = 0; i < dims; i++) {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      sum[i] += ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
    }
  }
  const length = Math.hypot(...sum) || 1;
  return Float32Array.from(sum, (x) => x / length);
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
