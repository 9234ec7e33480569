/**
 * The host-neutral request and response the core works on. Both hosts (the
 * Functions adapter and the local server) translate to and from these; they
 * are deliberately smaller than fetch's Request/Response, whose per-request
 * construction cost showed up on the hot path.
 */
export interface GatewayRequest {
  readonly method: string;
  /** Path without the query string, e.g. /v1/chat/completions */
  readonly path: string;
  /** Query string without the leading '?', possibly empty. */
  readonly query: string;
  /** Route parameters, e.g. { model } for /v1/models/{model} */
  readonly params: Readonly<Record<string, string>>;
  /** Header value by lower-case name; repeated headers joined with ', '. */
  header(name: string): string | undefined;
  readonly body: AsyncIterable<Uint8Array>;
  /** Aborts when the client goes away. */
  readonly signal: AbortSignal;
}

export type ResponseBody = string | Uint8Array | AsyncIterable<Uint8Array>;

export interface GatewayResponse {
  status: number;
  headers: Record<string, string>;
  body?: ResponseBody;
}

export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): GatewayResponse {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) };
}
