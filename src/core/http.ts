/** @module The host-neutral request and response the core works on. */
import { STATUS_CODES } from 'node:http';
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
  /** Fires when the client goes away. */
  readonly gone: ClientGone;
}

/**
 * Tells that the client went away. A lighter stand-in for AbortSignal, whose
 * EventTarget machinery showed up in the hot path's profile; at most a few
 * listeners ever wait on one request.
 */
export class ClientGone {
  private listeners: (() => void)[] = [];
  private fired = false;

  get happened(): boolean {
    return this.fired;
  }

  /** Calls `listener` once when the client goes away; returns a function that cancels it. */
  on(listener: () => void): () => void {
    if (this.fired) {
      listener();
      return noop;
    }
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  fire(): void {
    if (this.fired) return;
    this.fired = true;
    const listeners = this.listeners;
    this.listeners = [];
    for (const l of listeners) l();
  }
}

const noop = () => {};


export type ResponseBody = string | Uint8Array | AsyncIterable<Uint8Array>;

export interface GatewayResponse {
  status: number;
  headers: Record<string, string>;
  body?: ResponseBody;
}

export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): GatewayResponse {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) };
}

/** A whole HTTP/1.1 answer as text, for a raw socket; the connection closes after it. */
export function rawHttpResponse(status: number, headers: Record<string, string>, body: string): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return `${head}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
