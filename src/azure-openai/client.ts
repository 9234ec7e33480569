/** @module The HTTP client that carries requests to Azure OpenAI. */
import type http from 'node:http';
import { Readable, Transform, Writable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import zlib from 'node:zlib';
import { Dispatcher, Pool, ProxyAgent, errors } from 'undici';
import { ClientGone } from '../core/http';
import type { ProxySettings } from '../config/config';
import { proxyFor } from './proxy';

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
  /**
   * Told when the body breaks off or stalls once the reply is out (never for
   * the client leaving): however its reader takes it, and even after the
   * gateway has answered its client.
   */
  readonly onBodyBreak?: (failure: UpstreamFailure) => void;
}

/**
 * Azure's answer, its body taken one of four ways, once: streamed (`body`),
 * written into a stream the reader made (`into`), read whole (`whole`) or
 * thrown away (`discard`). Always plain bytes: a compressed answer is
 * decoded on the way.
 */
export interface UpstreamReply {
  readonly status: number;
  /** As Azure sent them, except that a body the client decoded has no content-encoding or content-length. */
  readonly headers: http.IncomingHttpHeaders;
  /** The body as a stream, made when first asked for. */
  readonly body: Readable;
  /**
   * The whole body, without a stream: cheaper for the small answers the
   * gateway reads. Fails with an UpstreamFailure when the answer breaks off,
   * stalls or the client leaves, and ("connect") past `limit` bytes.
   */
  whole(limit: number): Promise<Buffer>;
  /** The body is not wanted: it is read and dropped, so the connection can serve again. */
  discard(): void;
  /**
   * The body written straight into `sink` (a transform the reader made), with
   * no stream of the reply's own between them, and the sink ended at the
   * body's end; a sink that holds back holds the upstream back. A body that
   * breaks off, stalls or whose client leaves calls `onBreak` instead, and
   * leaves the sink to it. A sink closed early ends the upstream call.
   */
  into(sink: Writable, onBreak: (failure: UpstreamFailure) => void): void;
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

/** Any error from an upstream call as an UpstreamFailure: one already is, anything else is `kind` (a broken connection by default). */
export function asUpstreamFailure(err: unknown, kind: UpstreamFailureKind = 'connect'): UpstreamFailure {
  return err instanceof UpstreamFailure ? err : new UpstreamFailure(kind, { cause: err });
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
  /** The proxy calls go through (HTTPS_PROXY, HTTP_PROXY, NO_PROXY); none by default. */
  readonly proxy?: ProxySettings;
  /** Longest a proxy may take to answer a CONNECT (default 60 s): past it, the tunnel is given up. */
  readonly proxyConnectTimeoutMs?: number;
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
  /**
   * A pool per Azure resource, kept until close(): a gateway calls a handful
   * for its whole life. Held here rather than by undici's Agent, whose own
   * dispatch layer (one more per request) cost 1-2 µs of CPU per request in
   * a profile; what else the Agent did, dropping a pool nobody uses, a
   * gateway's few resources do not need. A resource reached through a proxy
   * has the proxy's agent here instead, shared by all it serves.
   */
  private readonly pools = new Map<string, Dispatcher>();
  /** One agent per proxy URL: it tunnels https origins (CONNECT, then TLS to the resource by its own name) and forwards http ones. */
  private readonly proxies = new Map<string, ProxyAgent>();
  /** After close(), calls fail as undici's did on a destroyed Agent: no new pool outlives its client. */
  private closed = false;
  private readonly options: Pool.Options;
  private readonly proxy: ProxySettings | undefined;
  private readonly proxyConnectTimeoutMs: number;

  constructor(options: AgentOptions = {}) {
    this.proxy = options.proxy;
    this.proxyConnectTimeoutMs = options.proxyConnectTimeoutMs ?? 60_000;
    this.options = {
      connections: options.maxSockets ?? 1024,
      pipelining: 1,
      allowH2: false,
      // The gateway's own timers govern the wait for headers and body (see ReplyHandler).
      headersTimeout: 0,
      bodyTimeout: 0,
      // Idle connections to Azure are dropped after at most 4 s (undici's default, kept on purpose), and a
      // longer Keep-Alive offer is ignored: users report pooled connections to Azure OpenAI that sat idle for
      // 30 s or more hanging on reuse, silently, until a timeout (bolna-ai/bolna#1037;
      // Azure/azure-sdk-for-java#37773 after ~10 min). A fresh TLS handshake costs less.
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 4_000,
      connect: options.ca ? { ca: [...rootCertificates, options.ca.toString()] } : undefined,
    };
  }

  private dispatcherFor(origin: string): Dispatcher {
    if (this.closed) throw new errors.ClientDestroyedError();
    let dispatcher = this.pools.get(origin);
    if (dispatcher === undefined) {
      const proxy = proxyFor(new URL(origin), this.proxy);
      dispatcher = proxy === undefined ? new Pool(origin, this.options) : this.proxyAgent(proxy);
      this.pools.set(origin, dispatcher);
    }
    return dispatcher;
  }

  private proxyAgent(uri: string): ProxyAgent {
    let agent = this.proxies.get(uri);
    if (agent === undefined) {
      // The resource's TLS (trust, servername) inside the tunnel is the pools' own; credentials in the URL go as Proxy-Authorization.
      // A CONNECT the proxy leaves unanswered outlives the request that wanted it (undici does not cancel it),
      // so it is bounded here, by the gateway's wait for headers, not undici's 300 s.
      const timeout = this.proxyConnectTimeoutMs;
      const clientFactory = (origin: URL, opts: object) => new Pool(origin, { ...opts, headersTimeout: timeout, bodyTimeout: timeout });
      this.proxies.set(uri, (agent = new ProxyAgent({ ...this.options, uri, requestTls: this.options.connect as ProxyAgent.Options['requestTls'], clientFactory })));
    }
    return agent;
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
        this.dispatcherFor(call.origin).dispatch({
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
    this.closed = true;
    for (const dispatcher of [...new Set(this.pools.values())]) void dispatcher.destroy().catch(() => {});
    this.pools.clear();
    this.proxies.clear();
  }
}

/**
 * One request's life: rejects with a "timeout" when no headers came within
 * the call's time (connecting and queueing included), "aborted" when the
 * client left, "connect" for anything else before the headers. After them it
 * is the reply, and its body goes wherever the reply's reader asks.
 */
class ReplyHandler implements Dispatcher.DispatchHandler, UpstreamReply {
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  private controller: Controller | undefined;
  /** Where the body goes: undecided (held here) until the reader asks for it one way. */
  private sink: ReplyBody | WholeBody | IntoSink | 'discard' | undefined;
  /** What arrived before the reader chose: chunks, then perhaps its end or failure. */
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private earlyEnd: UpstreamFailure | 'end' | undefined;
  private settled = false;
  private readonly timer: NodeJS.Timeout;
  private stopWatching: () => void;
  private readonly onBodyBreak: ((failure: UpstreamFailure) => void) | undefined;

  constructor(
    call: UpstreamCall,
    private readonly resolve: (reply: UpstreamReply) => void,
    private readonly reject: (err: UpstreamFailure) => void,
  ) {
    this.onBodyBreak = call.onBodyBreak;
    this.timer = setTimeout(() => this.fail('timeout'), call.headersTimeoutMs);
    this.stopWatching = call.gone.on(() => this.fail('aborted'));
  }

  fail(kind: UpstreamFailureKind, cause?: unknown): void {
    const failure = asUpstreamFailure(cause, kind);
    if (!this.settled) {
      this.settled = true;
      clearTimeout(this.timer);
      this.stopWatching();
      this.reject(failure);
    } else {
      this.ended(failure);
    }
    this.controller?.abort(failure);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    // Settled before a connection was free (a timeout, the client gone): nothing is to be sent.
    if (this.settled) controller.abort(new UpstreamFailure('aborted'));
  }

  onResponseStart(_controller: Controller, status: number, headers: http.IncomingHttpHeaders): void {
    if (status < 200 || this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.status = status;
    this.headers = nodeStyle(headers);
    let reply: UpstreamReply;
    try {
      reply = decoded(this);
    } catch (err) {
      // An answer the gateway cannot read (an encoding it cannot decode) is a broken answer; its bytes are dropped.
      this.stopWatching();
      if (this.sink === undefined) this.choose('discard');
      return this.reject(asUpstreamFailure(err));
    }
    // The watch on the client stays: from here its leaving ends the body.
    this.resolve(reply);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    const sink = this.sink;
    if (sink === undefined) {
      this.early.push(chunk);
      this.earlyBytes += chunk.length;
      // Held until the reader chooses (microtasks away); a reader that never does must not make it grow.
      if (this.earlyBytes >= EARLY_BYTES) controller.pause();
    } else if (sink instanceof ReplyBody) {
      if (!sink.push(chunk)) controller.pause();
    } else if (sink instanceof IntoSink) {
      if (!sink.write(chunk)) controller.pause();
    } else if (sink instanceof WholeBody) {
      if (!sink.add(chunk)) this.fail('connect', tooLarge());
    }
  }

  onResponseEnd(): void {
    this.ended('end');
  }

  onResponseError(_controller: Controller, err: Error): void {
    this.fail(timedOut(err) ? 'timeout' : 'connect', err);
  }

  /** The body ended, or failed: its reader hears of it, and the client's leaving no longer matters. */
  private ended(how: UpstreamFailure | 'end'): void {
    const sink = this.sink;
    if (sink === undefined) {
      this.earlyEnd ??= how;
      return;
    }
    this.stopWatching();
    if (how !== 'end' && how.kind !== 'aborted') this.onBodyBreak?.(how);
    if (sink instanceof ReplyBody) {
      if (how === 'end') sink.push(null);
      else if (!sink.destroyed) sink.destroy(how);
    } else if (sink instanceof WholeBody || sink instanceof IntoSink) {
      sink.settle(how);
    }
  }

  get body(): Readable {
    if (this.sink instanceof ReplyBody) return this.sink;
    const body = new ReplyBody(this.controller!);
    this.choose(body);
    body.once('close', () => this.stopWatching());
    return body;
  }

  whole(limit: number): Promise<Buffer> {
    const sink = new WholeBody(limit);
    this.choose(sink);
    return sink.done;
  }

  discard(): void {
    this.choose('discard');
  }

  into(target: Writable, onBreak: (failure: UpstreamFailure) => void): void {
    const sink = new IntoSink(target, onBreak, this.controller!);
    target.once('close', () => this.stopWatching());
    this.choose(sink);
  }

  /** The reader's choice: what arrived early goes there first. */
  private choose(sink: ReplyBody | WholeBody | IntoSink | 'discard'): void {
    if (this.sink !== undefined) throw new Error('an upstream body is read once');
    this.sink = sink;
    const early = this.early;
    this.early = [];
    // A body that already broke gives a reader's stream none of it: with no byte in it, the call fails over.
    if (sink instanceof IntoSink && this.earlyEnd instanceof UpstreamFailure) return this.ended(this.earlyEnd);
    for (const chunk of early) this.onResponseData(this.controller!, chunk);
    if (this.earlyEnd !== undefined) this.ended(this.earlyEnd);
    else if (this.controller!.paused && !(sink instanceof ReplyBody) && !(sink instanceof IntoSink && sink.full)) this.controller!.resume();
  }
}

/**
 * Response headers as node:http gives them, whatever Azure repeats: set-cookie
 * a list, a header that means one value its first, any other joined. undici
 * gives every repeated header as a list, and readers expect a string.
 */
function nodeStyle(headers: http.IncomingHttpHeaders): http.IncomingHttpHeaders {
  let copy: http.IncomingHttpHeaders | undefined;
  for (const name in headers) {
    const value = headers[name];
    if (!Array.isArray(value) || name === 'set-cookie') continue;
    copy ??= { ...headers };
    (copy as Record<string, string>)[name] = ONE_VALUE.has(name) ? value[0] : value.join(', ');
  }
  return copy ?? headers;
}

/** The headers node:http keeps the first of when repeated (its own list). */
const ONE_VALUE = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent']);

function ignore(): void {}

/** Bytes of a body held before its reader chooses how to take it. */
const EARLY_BYTES = 64 * 1024;

function tooLarge(): Error {
  return new Error('the answer is larger than the gateway reads');
}

function timedOut(err: Error): boolean {
  return err instanceof errors.BodyTimeoutError || err instanceof errors.HeadersTimeoutError;
}

/** A body read whole: its chunks, then one Buffer. */
class WholeBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private resolve!: (body: Buffer) => void;
  private reject!: (err: UpstreamFailure) => void;
  readonly done = new Promise<Buffer>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor(private readonly limit: number) {}

  /** False once the body is past its limit. */
  add(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.size > this.limit) return false;
    this.chunks.push(chunk);
    return true;
  }

  settle(how: UpstreamFailure | 'end'): void {
    if (how !== 'end') return this.reject(how);
    this.resolve(this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size));
  }
}

/**
 * A body written into the reader's own stream, which paces the upstream.
 * What one read from the socket holds goes in as one chunk: undici hands on
 * each chunk of a chunked answer apart, and Azure writes an event a chunk, so
 * a read of many events cost the reader a pass, and the response a write and
 * a chunk frame, per event. The chunks are joined once the read is parsed (on the
 * next tick), so nothing waits for more to arrive, and only while the
 * target has room for them: no more than its buffer waits here.
 */
class IntoSink {
  /** Until the body ended or broke: the target closing before then ends the upstream call. */
  private open = true;
  /** The chunks of the read being parsed, not yet written. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private readonly resume: () => void;
  private readonly pause: () => void;
  private readonly flushNow = () => this.flush();

  constructor(
    private readonly target: Writable,
    private readonly onBreak: (failure: UpstreamFailure) => void,
    controller: Controller,
  ) {
    this.resume = () => controller.resume();
    this.pause = () => controller.pause();
    target.on('drain', this.resume);
    target.once('close', () => {
      if (!this.open) return;
      this.open = false;
      controller.abort(new UpstreamFailure('aborted'));
    });
  }

  /** Whether the target wants no more until it drains. */
  get full(): boolean {
    return this.target.writableNeedDrain;
  }

  /** False when the target wants no more for now. */
  write(chunk: Buffer): boolean {
    const target = this.target;
    if (target.destroyed) return true;
    if (this.pending.length === 0) process.nextTick(this.flushNow);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // Joined only while the target has room for it all. A write that fills it is made now, inside
    // undici's read, so that the answer false stops the parser there; a pause asked for later only
    // takes at the next chunk, and until then undici's idle timer runs against a reader held back.
    if (target.writableNeedDrain || this.pendingBytes + target.writableLength >= target.writableHighWaterMark) return this.flush();
    return true;
  }

  settle(how: UpstreamFailure | 'end'): void {
    if (!this.open) return;
    // What came before the end or the break goes in first, as it would have unjoined.
    this.flush();
    this.open = false;
    // The call is over: a later drain must not resume the connection's next request.
    this.target.off('drain', this.resume);
    if (how !== 'end') this.onBreak(how);
    else if (!this.target.destroyed) this.target.end();
  }

  /** Writes what is pending; false when the target wants no more for now (the upstream is then paused). */
  private flush(): boolean {
    const count = this.pending.length;
    if (count === 0) return true;
    const chunk = count === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.target.destroyed || this.target.writableEnded) return true;
    if (this.target.write(chunk)) return true;
    if (this.open) this.pause();
    return false;
  }
}

/**
 * `into` for a body that is already a stream (a decoded one, or the rest of
 * one read in part): piped, the same contract kept (a break goes to
 * `onBreak`, a sink closed early ends it).
 */
export function pipeInto(body: Readable, sink: Writable, onBreak: (failure: UpstreamFailure) => void): void {
  let broken = false;
  body.once('error', (err) => {
    if (broken) return;
    broken = true;
    body.unpipe(sink);
    onBreak(asUpstreamFailure(body.errored ?? err));
  });
  sink.once('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  body.pipe(sink);
}

/** A reply's body as a stream: read on demand, so a slow client holds the upstream back (and its idle time does not run). */
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
function decoded(reply: ReplyHandler): UpstreamReply {
  const named = reply.headers['content-encoding'] as string | undefined;
  if (named === undefined) return reply;
  // A list names the codings in the order applied; "identity" is none.
  const codings = named.toLowerCase().split(',').map((c) => c.trim()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return reply;
  const encoding = codings.join(', ');
  const decoder = codings.length === 1 ? decoderFor(encoding) : undefined;
  if (decoder === undefined) throw new UpstreamFailure('connect', { cause: new Error(`an answer in an encoding the gateway cannot decode (${encoding})`) });
  const { 'content-encoding': _encoding, 'content-length': _length, ...headers } = reply.headers;
  const raw = reply.body;
  // Cut off midway, the reply fails: the decoder must fail too rather than end on what it has.
  raw.once('error', (err) => decoder.destroy(err));
  decoder.once('close', () => {
    if (!raw.readableEnded) raw.destroy();
  });
  raw.pipe(decoder);
  const discard = () => {
    // Bytes that do not decode are of no interest to a reader that wanted none.
    decoder.on('error', ignore);
    decoder.resume();
  };
  return { status: reply.status, headers, body: decoder, whole: (limit) => collect(decoder, limit), discard, into: (sink, onBreak) => pipeInto(decoder, sink, onBreak) };
}

/** A decoded body read whole, failing as the upstream's answer does. */
function collect(body: Readable, limit: number): Promise<Buffer> {
  const whole = new WholeBody(limit);
  body.on('data', (chunk: Buffer) => {
    if (!whole.add(chunk)) body.destroy(asUpstreamFailure(tooLarge()));
  });
  body.once('end', () => whole.settle('end'));
  // Heard on close, with what it failed by.
  body.on('error', ignore);
  body.once('close', () => {
    if (!body.readableEnded) whole.settle(asUpstreamFailure(body.errored));
  });
  return whole.done;
}

function decoderFor(encoding: string): Transform | undefined {
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  return undefined;
}

