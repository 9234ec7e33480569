/** @module How many tokens a request is admitted on, before Azure says how many it used. */

/** A request's tokens as estimated before it is sent. */
export interface TokenEstimate {
  /** The prompt: a quarter of the request body's bytes (about four bytes per token in English; JSON keys pad it). */
  readonly prompt: number;
  /** The most the answer may use, when the request caps it (max_tokens, max_completion_tokens or max_output_tokens, times n); else 0. */
  readonly output: number;
}

export const NO_TOKENS: TokenEstimate = { prompt: 0, output: 0 };

/** The estimate for a JSON request: its size, and the cap it puts on the answer. */
export function estimateTokens(bodyBytes: number, body: Record<string, unknown>): TokenEstimate {
  const cap = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens;
  const n = typeof body.n === 'number' && Number.isInteger(body.n) && body.n > 1 ? body.n : 1;
  return { prompt: Math.ceil(bodyBytes / 4), output: typeof cap === 'number' && cap > 0 ? Math.ceil(cap) * n : 0 };
}
