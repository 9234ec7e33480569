/** Token usage as OpenAI reports it; only the counts are kept for logs. */
export interface Usage {
  readonly prompt_tokens?: number;
  readonly completion_tokens?: number;
  readonly total_tokens?: number;
}

const USAGE_KEY = '"usage"';
const USAGE_KEY_BYTES = Buffer.from(USAGE_KEY);

/**
 * Finds the `"usage": {...}` object in a JSON text by matching braces, so a
 * response can be scanned for its token counts without parsing it whole.
 */
export function extractUsage(text: string): Usage | undefined {
  const at = text.lastIndexOf(USAGE_KEY);
  if (at < 0) return undefined;
  const open = text.indexOf('{', at + USAGE_KEY.length);
  if (open < 0 || text.slice(at + USAGE_KEY.length, open).trim() !== ':') return undefined;
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      try {
        const u = JSON.parse(text.slice(open, i + 1)) as Record<string, unknown>;
        return pickCounts(u);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The token counts of a whole JSON answer, decoding only its tail from the last `"usage"` on. */
export function usageOfBody(body: Buffer): Usage | undefined {
  const at = body.lastIndexOf(USAGE_KEY_BYTES);
  return at < 0 ? undefined : extractUsage(body.toString('utf8', at));
}

export function pickCounts(u: Record<string, unknown> | null | undefined): Usage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const n = (k: string) => (typeof u[k] === 'number' ? (u[k] as number) : undefined);
  const usage = { prompt_tokens: n('prompt_tokens') ?? n('input_tokens'), completion_tokens: n('completion_tokens') ?? n('output_tokens'), total_tokens: n('total_tokens') };
  return usage.prompt_tokens === undefined && usage.total_tokens === undefined ? undefined : usage;
}

/** Keeps the last bytes of a JSON response, where Azure puts `usage`. */
export class TailKeeper {
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly size = 4096) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.size) this.tail = chunk.subarray(chunk.length - this.size);
    else {
      const joined = Buffer.concat([this.tail, chunk]);
      this.tail = joined.length > this.size ? joined.subarray(joined.length - this.size) : joined;
    }
  }

  usage(): Usage | undefined {
    return extractUsage(this.tail.toString('utf8'));
  }
}
