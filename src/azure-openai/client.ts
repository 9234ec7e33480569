/** @module The HTTP client that carries requests to Azure OpenAI. */
import type http from 'node:http';
import { Readable, Transform } from 'node:stream';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { Agent, Dispatcher, errors } from 'undici';
import { ClientGone } from '../core/http';

/** One request to Azure OpenAI, made for the call: the client completes its headers rather than copying them. */
export interface UpstreamCall {
  /** Scheme, host and port, e.g. https://<resource>.openai.azure.com */
  readonly origin: string;
  /** Path and query. */
  readonly path: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Made for this call: the client completes it (content-length, accept-encoding) rather than copying it. */
  readonly headers: http.OutgoingHttpHeaders;
  readonly body?: Buffer | readonly Buffer[];
  /** The client's departure cancels the call, before or after the response starts. */
  readonly gone: ClientGone;
  /** Fail with kind "timeout" when no response headers arrive within this time. */
  readonly headersTimeoutMs: number;
  /**
   * Once the headers are in, the body fails with kind "timeout" when no byte
   * arrives for this long while the gateway is reading it (a reader that is
   * held back by a slow client does not count).
   */
  readonly idleTimeoutMs: number;
}

export interface UpstreamReply {
  readonly status: number;
  /** As Azure sent them, except that a body the client decoded has no content-encoding or content-length. */
  readonly headers: http.IncomingHttpHeaders;
  /** Always plain bytes: a compressed answer is decoded on the way. */
  readonly body: Readable;
}

export type UpstreamFailureKind = 'timeout' | 'connect' | 'aborted';

/**
 * The upstream could not be reached, did not answer, or broke off; "aborted"
 * is the client leaving, which says nothing about the upstream.
 */
export class UpstreamFailure extends Error {
  constructor(readonly kind: UpstreamFailureKind, options?: { cause?: unknown }) {
    super(`upstream ${kind}`, options);
    this.name = 'UpstreamFailure';
  }
}

export interface UpstreamClient {
  send(call: UpstreamCall): Promise<UpstreamReply>;
  close(): void;
}

export interface AgentOptions {
  /** Connections per upstream origin; sized for many concurrent streams. */
  readonly maxSockets?: number;
  /** Certificate authorities trusted besides the system's: a test's own, never needed for Azure. */
  readonly ca?: Buffer;
}

type Controller = Dispatcher.DispatchController;

/**
 * The upstream client on undici's dispatcher API: its pool and parser spend
 * less per request than node:http's Agent and ClientRequest (measured in
 * `npm run bench`), and the handler below is the whole of what a request
 * costs beyond them: no AbortController, no IncomingMessage, one timer.
 * HTTP/1.1 only, as node:http was: Azure's HTTP/2 has never been tried here.
 */
export class UndiciUpstream implements UpstreamClient {
  private readonly agent: Agent;

  constructor(options: AgentOptions = {}) {
    this.agent = new Agent({
      connections: options.maxSockets ?? 1024,
      pipelining: 1,
      allowH2: false,
      // The gateway's own timers govern the wait for headers and body (see ReplyHandler).
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: options.ca ? { ca: [...tls.rootCertificates, options.ca.toString()] } : undefined,
    });
  }

  send(call: UpstreamCall): Promise<UpstreamReply> {
    return new Promise((resolve, reject) => {
      if (call.gone.happened) return reject(new UpstreamFailure('aborted'));
      const headers = call.headers;
      // The gateway reads answers (usage, events, errors) and labels them for its client: plain bytes, please.
      headers['accept-encoding'] = 'identity';
      let body: Buffer | Iterable<Buffer> | null = null;
      if (call.body !== undefined) {
        if (Buffer.isBuffer(call.body)) body = call.body;
        else {
          const parts = call.body as readonly Buffer[];
          headers['content-length'] = String(sum(parts));
          body = parts;
        }
      } else if (call.method !== 'GET') {
        headers['content-length'] = '0';
      }
      const handler = new ReplyHandler(call, resolve, reject);
      try {
        this.agent.dispatch({
          origin: call.origin,
          path: call.path,
          method: call.method,
          headers: headers as Record<string, string>,
          // An iterable of parts is sent as it is, with the length declared above (undici's types lag its runtime here).
          body: body as Buffer | null,
          bodyTimeout: call.idleTimeoutMs,
        }, handler);
      } catch (err) {
        handler.fail('connect', err);
      }
    });
  }

  close(): void {
    void this.agent.destroy().catch(() => {});
  }
}

/**
 * One request's life: rejects with a "timeout" when no headers came within
 * the call's time (connecting and queueing included), "aborted" when the
 * client left, "connect" for anything else before the headers; after them,
 * the same failures destroy the body.
 */
class ReplyHandler implements Dispatcher.DispatchHandler {
  private controller: Controller | undefined;
  private body: ReplyBody | undefined;
  private settled = false;
  private readonly timer: NodeJS.Timeout;
  private stopWatching: () => void;

  constructor(
    private readonly call: UpstreamCall,
    private readonly resolve: (reply: UpstreamReply) => void,
    private readonly reject: (err: UpstreamFailure) => void,
  ) {
    this.timer = setTimeout(() => this.fail('timeout'), call.headersTimeoutMs);
    this.stopWatching = call.gone.on(() => this.fail('aborted'));
  }

  fail(kind: UpstreamFailureKind, cause?: unknown): void {
    const failure = cause instanceof UpstreamFailure ? cause : new UpstreamFailure(kind, { cause });
    if (!this.settled) {
      this.settled = true;
      clearTimeout(this.timer);
      this.stopWatching();
      this.reject(failure);
    } else if (this.body !== undefined) {
      this.body.destroy(failure);
    }
    this.controller?.abort(failure);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    // Settled before a connection was free (a timeout, the client gone): nothing is to be sent.
    if (this.settled && this.body === undefined) controller.abort(new UpstreamFailure('aborted'));
  }

  onResponseStart(controller: Controller, status: number, headers: http.IncomingHttpHeaders): void {
    if (status < 200 || this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.stopWatching();
    const body = new ReplyBody(controller);
    this.body = body;
    // From here the caller owns the body; a client that leaves still cancels it.
    const stopLate = this.call.gone.on(() => body.destroy(new UpstreamFailure('aborted')));
    body.once('close', stopLate);
    this.resolve(decoded(status, headers, body));
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.body !== undefined && !this.body.push(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.body?.push(null);
  }

  onResponseError(_controller: Controller, err: Error): void {
    const kind: UpstreamFailureKind = err instanceof errors.BodyTimeoutError || err instanceof errors.HeadersTimeoutError ? 'timeout' : 'connect';
    if (!this.settled) return this.fail(kind, err);
    if (this.body !== undefined && !this.body.destroyed) this.body.destroy(err instanceof UpstreamFailure ? err : new UpstreamFailure(kind, { cause: err }));
  }
}

/** A reply's body: read on demand, so a slow client holds the upstream back (and its idle time does not run). */
class ReplyBody extends Readable {
  constructor(private readonly controller: Controller) {
    super();
  }

  override _read(): void {
    if (this.controller.paused) this.controller.resume();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.readableEnded && !this.controller.aborted) this.controller.abort(err ?? new UpstreamFailure('aborted'));
    done(err);
  }
}

function sum(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/**
 * The reply with its body decoded when Azure compressed it although asked not
 * to (seen behind proxies): the gateway must never pass compressed bytes on
 * labelled as JSON. An encoding Node cannot decode fails as a broken answer.
 */
function decoded(status: number, headers: http.IncomingHttpHeaders, response: Readable): UpstreamReply {
  const encoding = headers['content-encoding']?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return { status, headers, body: response };
  const { 'content-encoding': _encoding, 'content-length': _length, ...rest } = headers;
  const decoder = decoderFor(encoding);
  if (decoder === undefined) response.destroy(new UpstreamFailure('connect'));
  const body: Readable = decoder ?? response;
  if (decoder !== undefined) {
    // Cut off midway, the reply fails: the decoder must fail too rather than end on what it has.
    response.once('error', (err) => decoder.destroy(err));
    decoder.once('close', () => {
      if (!response.readableEnded) response.destroy();
    });
    response.pipe(decoder);
  }
  return { status, headers: rest, body };
}

function decoderFor(encoding: string): Transform | undefined {
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  return undefined;
}

