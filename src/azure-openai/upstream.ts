/** @module Azure OpenAI as the gateway sees it: try one deployment (authenticate, send, classify), over HTTP or the realtime socket. */
import type { OutgoingHttpHeaders } from 'node:http';
import { AttemptResult } from '../balancer/balancer';
import { GatewayError, deadlinePassed } from '../core/errors';
import { ClientGone } from '../core/http';
import { RateLimitedWarning, describeError, whyUnreachable } from '../core/log';
import { AuthHeader, UpstreamAuth } from './auth';
import { UpstreamClient, UpstreamFailure, UpstreamReply } from './client';
import { Deployment } from './deployment';
import { UpstreamSocket, openRealtimeSocket } from './realtime-socket';
import type { ProxySettings } from '../config/config';
import { proxyFor } from './proxy';
import { classifyReply, onResource, operationPath, realtimeUrl } from './wire';

/** One HTTP request for a deployment; only the body may differ between deployments (the v1 form's model). */
export interface OperationRequest<T> {
  /** e.g. "chat/completions", "responses/resp_1/cancel" */
  readonly operation: string;
  readonly method?: 'GET' | 'POST' | 'DELETE';
  /** The client's query string, passed on (input_items' paging). */
  readonly query?: string;
  readonly headers: OutgoingHttpHeaders;
  body?(deployment: Deployment): Buffer | readonly Buffer[];
  readonly gone: ClientGone;
  /** When (on the gateway's clock) the request must have had its answer: a try waits no longer for headers than is left. */
  readonly deadline?: number;
  /** The client's answer from a 2xx reply of this deployment. */
  onSuccess(reply: UpstreamReply, deployment: Deployment): T | Promise<T>;
  /** The client's answer for an error that is the client's to fix. */
  onClientError(error: GatewayError): T;
}

export interface AzureOpenAIOptions {
  readonly client: UpstreamClient;
  readonly auth: UpstreamAuth;
  /** Credential failures repeat per request; one warning per interval is enough. */
  readonly credentialWarning: RateLimitedWarning;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** The clock requests' deadlines are on. */
  readonly now: () => number;
  /** The proxy realtime sockets go through, as the client's calls do. */
  readonly proxy?: ProxySettings;
  /** A deployment's answer broke off or stalled after it had been handed to the client: too late to try another. */
  readonly onBrokeOff?: (d: Deployment, reason: UpstreamFailure['kind']) => void;
}

/** What the readiness check learns of a resource: why it does not answer, or the status with which it refused the credential. */
export interface ResourceProbe {
  readonly problem?: string;
  readonly refused?: number;
}

/** A deployment with no usable credential: the next one may have one. */
const REJECTED = { kind: 'retry', reason: 'rejected' } as const;

/** Longest the gateway waits for Azure's realtime handshake before trying the next deployment. */
const REALTIME_HANDSHAKE_MS = 15_000;

/** The GA api-version the readiness check lists models with (Azure's REST reference, Models - List). */
const MODELS_API_VERSION = '2024-10-21';

/** How early the upstream client's timers may fire (undici's coarse timers, about half a second either way past a second). */
const TIMER_SLACK_MS = 1000;

/** Operations whose path is kept per deployment; ids in an operation (a stored response's) make it one of a kind. */
const PATHS_KEPT = 32;

export class AzureOpenAI {
  /** Each deployment's paths for query-less operations, made once: the same few serve nearly every request. */
  private readonly paths = new WeakMap<Deployment, Map<string, string>>();

  constructor(private readonly options: AzureOpenAIOptions) {}

  get client(): UpstreamClient {
    return this.options.client;
  }

  /**
   * Sends one request to one deployment and sorts its answer for the balancer.
   * Whatever went wrong after the client left is the client's leaving, never
   * the deployment's failure: it throws "aborted" instead of asking to retry.
   */
  async send<T>(d: Deployment, request: OperationRequest<T>): Promise<AttemptResult<T>> {
    const header = this.authHeader(d);
    const auth = header instanceof Promise ? await header : header;
    const result = auth === undefined ? REJECTED : await this.attempt(d, request, auth);
    if (result.kind === 'retry' && request.gone.happened) throw new UpstreamFailure('aborted');
    return result;
  }

  private async attempt<T>(d: Deployment, request: OperationRequest<T>, auth: AuthHeader): Promise<AttemptResult<T>> {
    const headers: OutgoingHttpHeaders = { ...request.headers };
    headers[auth[0]] = auth[1];
    // Once this try is the answer, a break in its body can no longer fail over: the deployment is told off instead.
    let answered = false;
    const onBrokeOff = this.options.onBrokeOff;
    const started = this.options.now();
    const left = request.deadline === undefined ? Infinity : request.deadline - started;
    if (left <= 0) throw deadlinePassed();
    let reply: UpstreamReply;
    try {
      reply = await this.options.client.send({
        origin: d.endpoint,
        path: this.pathOf(d, request.operation, request.query),
        method: request.method ?? 'POST',
        headers,
        body: request.body?.(d),
        gone: request.gone,
        headersTimeoutMs: Math.min(this.options.headersTimeoutMs, left),
        idleTimeoutMs: this.options.idleTimeoutMs,
        onBodyBreak: onBrokeOff === undefined ? undefined : (failure) => {
          if (answered) onBrokeOff(d, failure.kind);
        },
      });
    } catch (err) {
      // A wait the request's deadline cut short says nothing of the deployment: no cooldown, and the client hears of the deadline.
      // (Cut short: its wait was the deadline's, not the headers timeout, and it ended at the deadline, not sooner for a connect timeout.)
      if (err instanceof UpstreamFailure && err.kind === 'timeout' && left < this.options.headersTimeoutMs && this.options.now() - started >= left - TIMER_SLACK_MS) throw deadlinePassed();
      if (err instanceof UpstreamFailure && err.kind !== 'aborted') return { kind: 'retry', reason: err.kind };
      throw err;
    }
    const result = await classifyReply(reply, d, request.onSuccess, request.onClientError, onResource(request.operation));
    answered = result.kind === 'done';
    return result;
  }

  /**
   * Whether the resource of `d` answers, and, when `withCredential`, whether it
   * takes the gateway's credential for `d`: one GET of its model list (Models -
   * List, GET /openai/models, which every Azure OpenAI resource serves and
   * which costs no tokens). Any status is an answer; a 401 to the credential
   * is its refusal (a 403 may be a network rule, or a role that allows chat
   * but not listing models). Why it does not answer is said in a few words.
   */
  async probe(d: Deployment, timeoutMs: number, withCredential: boolean): Promise<ResourceProbe> {
    const auth = withCredential ? await this.authHeader(d) : undefined;
    try {
      const reply = await this.options.client.send({
        origin: d.endpoint, path: `/openai/models?api-version=${MODELS_API_VERSION}`, method: 'GET',
        headers: auth === undefined ? {} : { [auth[0]]: auth[1] }, gone: new ClientGone(), headersTimeoutMs: timeoutMs, idleTimeoutMs: timeoutMs,
      });
      reply.discard();
      return auth !== undefined && reply.status === 401 ? { refused: 401 } : {};
    } catch (err) {
      const why = err instanceof UpstreamFailure && err.kind === 'timeout' ? `no answer within ${timeoutMs / 1000} s` : whyUnreachable(err instanceof UpstreamFailure ? err.cause : err);
      // Through a proxy, the failure may well be the proxy's: the operator should look there too.
      return { problem: proxyFor(new URL(d.endpoint), this.options.proxy) === undefined ? why : `${why}, through the proxy that HTTPS_PROXY or HTTP_PROXY names` };
    }
  }

  private pathOf(d: Deployment, operation: string, query: string | undefined): string {
    if (query) return operationPath(d, operation, query);
    let kept = this.paths.get(d);
    if (kept === undefined) this.paths.set(d, (kept = new Map()));
    let path = kept.get(operation);
    if (path === undefined) {
      path = operationPath(d, operation);
      if (kept.size < PATHS_KEPT) kept.set(operation, path);
    }
    return path;
  }

  /** Opens Azure's realtime socket on one deployment. */
  async openRealtime(d: Deployment): Promise<AttemptResult<UpstreamSocket>> {
    const auth = await this.authHeader(d);
    if (auth === undefined) return { kind: 'retry', reason: 'rejected' };
    return openRealtimeSocket(realtimeUrl(d), auth, Math.min(REALTIME_HANDSHAKE_MS, this.options.headersTimeoutMs), this.options.proxy);
  }

  /**
   * The header that authenticates to a deployment, or undefined (warned) when
   * none can be had: another deployment may still serve. A key is there at
   * once; only a token may need waiting for.
   */
  private authHeader(d: Deployment): AuthHeader | undefined | Promise<AuthHeader | undefined> {
    try {
      const header = this.options.auth.header(d);
      return header instanceof Promise ? header.catch((err: unknown) => this.authFailed(d, err)) : header;
    } catch (err) {
      return this.authFailed(d, err);
    }
  }

  private authFailed(d: Deployment, err: unknown): undefined {
    this.options.credentialWarning.warn({ msg: 'could not authenticate to a deployment; check the managed identity or its key', deployment: d.label, error: describeError(err) });
    return undefined;
  }

  close(): void {
    this.options.client.close();
  }
}

