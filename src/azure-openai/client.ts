/** @module The HTTP client that carries requests to Azure OpenAI. */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { ClientGone } from '../core/http';

/**
 * The HTTP client that talks to Azure OpenAI. node:http with keep-alive agents
 * measured well ahead of the global fetch() for a proxy's hot path, and it lets
 * the response body stream straight through without a web-stream conversion.
 */
export interface UpstreamCall {
  /** Scheme, host and port, e.g. https://<resource>.openai.azure.com */
  readonly origin: string;
  /** Path and query. */
  readonly path: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Made for this call: the client completes it (content-length) rather than copying it. */
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
  /** Sockets per upstream origin; sized for many concurrent streams. */
  readonly maxSockets?: number;
  readonly maxFreeSockets?: number;
  /** Certificate authorities trusted besides the system's: a test's own, never needed for Azure. */
  readonly ca?: Buffer;
}

export class NodeHttpUpstream implements UpstreamClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  /** Parsed once per origin: a handful of resources serve every request. */
  private readonly origins = new Map<string, URL>();
  private readonly idle = new IdleWatch();

  constructor(options: AgentOptions = {}) {
    const common = {
      keepAlive: true,
      maxSockets: options.maxSockets ?? 1024,
      maxFreeSockets: options.maxFreeSockets ?? 256,
      scheduling: 'lifo' as const,
    };
    this.httpAgent = new http.Agent(common);
    this.httpsAgent = new https.Agent(options.ca ? { ...common, ca: [...tls.rootCertificates, options.ca.toString()] } : common);
  }

  send(call: UpstreamCall): Promise<UpstreamReply> {
    return new Promise((resolve, reject) => {
      if (call.gone.happened) return reject(new UpstreamFailure('aborted'));
      let origin = this.origins.get(call.origin);
      if (origin === undefined) {
        origin = new URL(call.origin);
        this.origins.set(call.origin, origin);
      }
      const secure = origin.protocol === 'https:';
      const body = call.body;
      const length = body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : sum(body as readonly Buffer[]);
      const headers = call.headers;
      if (call.method !== 'GET') headers['content-length'] = length;
      // The gateway reads answers (usage, events, errors) and labels them for its client: plain bytes, please.
      headers['accept-encoding'] = 'identity';

      const request = (secure ? https : http).request({
        protocol: origin.protocol,
        hostname: origin.hostname,
        port: origin.port || undefined,
        path: call.path,
        method: call.method,
        headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
      });

      let settled = false;
      const fail = (kind: UpstreamFailureKind, cause?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stopWatching();
        request.destroy();
        reject(new UpstreamFailure(kind, { cause }));
      };
      const timer = setTimeout(() => fail('timeout'), call.headersTimeoutMs);
      const stopWatching = call.gone.on(() => fail('aborted'));

      request.on('error', (err) => fail('connect', err));
      request.on('response', (response) => {
        if (settled) return void response.destroy();
        settled = true;
        clearTimeout(timer);
        stopWatching();
        // From here the caller owns the body; a client that leaves still cancels it.
        const stopLate = call.gone.on(() => response.destroy(new UpstreamFailure('aborted')));
        response.once('close', stopLate);
        this.idle.watch(response, call.idleTimeoutMs);
        // Errors after this point surface through the body stream; keep the request quiet.
        request.removeAllListeners('error');
        request.on('error', ignore);
        resolve(decoded(response));
      });

      if (body === undefined) request.end();
      else if (Buffer.isBuffer(body)) request.end(body);
      else {
        for (const part of body as readonly Buffer[]) request.write(part);
        request.end();
      }
    });
  }

  close(): void {
    this.idle.close();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/**
 * The reply with its body decoded when Azure compressed it although asked not
 * to (seen behind proxies): the gateway must never pass compressed bytes on
 * labelled as JSON. An encoding Node cannot decode fails as a broken answer.
 */
function decoded(response: http.IncomingMessage): UpstreamReply {
  const status = response.statusCode ?? 502;
  const encoding = response.headers['content-encoding']?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return { status, headers: response.headers, body: response };
  const { 'content-encoding': _encoding, 'content-length': _length, ...headers } = response.headers;
  const decoder = decoderFor(encoding);
  if (decoder === undefined) response.destroy(new UpstreamFailure('connect'));
  const body: Readable = decoder ?? response;
  if (decoder !== undefined) {
    response.once('error', (err) => decoder.destroy(err));
    // Cut off midway: the decoder must fail too rather than end on what it has.
    response.once('aborted', () => decoder.destroy(response.errored ?? new UpstreamFailure('connect')));
    decoder.once('close', () => {
      if (!response.readableEnded) response.destroy();
    });
    response.pipe(decoder);
  }
  return { status, headers, body };
}

function decoderFor(encoding: string): Transform | undefined {
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  return undefined;
}

/**
 * Fails response bodies with a "timeout" when no byte has arrived for their
 * idle time while the gateway was reading them. One timer for every open
 * response, checking each a few times per period against its socket's byte
 * count: no timer work per chunk, and none made per request.
 */
class IdleWatch {
  private readonly watched = new Map<http.IncomingMessage, { readonly socket: Socket; readonly idleMs: number; bytes: number; quietSince: number }>();
  private timer: NodeJS.Timeout | undefined;
  private step = Infinity;
  private sweptAt = 0;

  watch(response: http.IncomingMessage, idleMs: number): void {
    const now = performance.now();
    this.watched.set(response, { socket: response.socket, idleMs, bytes: response.socket.bytesRead, quietSince: now });
    response.once('close', () => this.watched.delete(response));
    const step = Math.max(10, Math.floor(idleMs / 4));
    if (step < this.step) {
      this.step = step;
      clearInterval(this.timer);
      this.timer = setInterval(() => this.sweep(), step).unref();
      this.sweptAt = now;
    }
  }

  private sweep(): void {
    const now = performance.now();
    // A sweep that comes late found the process busy, not the upstream quiet: bytes may be waiting unread.
    const late = now - this.sweptAt > 2 * this.step;
    this.sweptAt = now;
    for (const [response, w] of this.watched) {
      // Not being read (backpressure, or not yet handed on): the upstream is not to blame.
      if (w.socket.bytesRead !== w.bytes || response.readableFlowing !== true || response.readableLength > 0) {
        w.bytes = w.socket.bytesRead;
        w.quietSince = now;
      } else if (!late && now - w.quietSince >= w.idleMs) {
        this.watched.delete(response);
        response.destroy(new UpstreamFailure('timeout'));
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.step = Infinity;
    this.watched.clear();
  }
}

function ignore(): void {}

function sum(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}
