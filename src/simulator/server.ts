import http from 'node:http';
import { AddressInfo } from 'node:net';
import { chatChunks, chatCompletion } from './chat';
import { completion, completionChunks, contentFilterError, embeddings, imageContentFilterError } from './content';
import { AzureOperation, SIM_MODELS, SimModel, SimModelName, modelOf, operationNotSupported } from './models';
import { chatRequestProblem, completionsRequestProblem, embeddingsRequestProblem, streamOptionsProblem } from './requests';

/**
 * A local stand-in for Azure OpenAI: Azure's URL shapes, api-key and Bearer
 * checks, realistic bodies and SSE streams, and switches that make a
 * deployment throttle, fail, hang, reset or block content, so the gateway's
 * failover can be exercised over real sockets.
 */
export type Behaviour =
  | { mode: 'ok' }
  | { mode: 'throttle'; retryAfterSeconds?: number; retryAfterMs?: number }
  /** Answers `status` (default 500) with `body` (default Azure's JSON error) as `contentType`. */
  | { mode: 'fail'; status?: number; body?: string; contentType?: string }
  /** Never sends response headers. */
  | { mode: 'hang' }
  /** Azure's content-filter 400. */
  | { mode: 'block' }
  /** Sends `afterEvents` stream events (or the headers of a JSON reply), then resets the connection. */
  | { mode: 'reset'; afterEvents?: number }
  /**
   * Sends the headers and `afterEvents` stream events (default 0; for a JSON
   * reply, the first half of its body), then nothing for `forMs` (unset: until
   * the client leaves), then the rest: a deployment that stalls mid-answer.
   */
  | { mode: 'stall'; afterEvents?: number; forMs?: number };

export type BehaviourRule = Behaviour & {
  /** How many requests this applies to before the deployment is healthy again; unset = until changed. */
  times?: number;
  /** Delay before answering, in milliseconds. */
  delayMs?: number;
};

export interface SimCall {
  readonly method: string;
  /** The deployment named in the path or body; empty for calls on the resource itself (a stored response). */
  readonly deployment: string;
  /** The path after the form's prefix: "chat/completions", "responses/resp_1/cancel". */
  readonly operation: string;
  /** The query string as sent, without the leading "?". */
  readonly query: string;
  readonly form: 'dated' | 'v1';
  readonly apiVersion: string | null;
  readonly auth: 'key' | 'bearer' | 'none';
  readonly bearer?: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  status: number;
  /** Stream events written so far. */
  sent: number;
  /** The client went away before the response finished. */
  aborted: boolean;
  finished: boolean;
}

export interface SimulatorOptions {
  /** The accepted api-key; requests with another key get Azure's 401. */
  readonly apiKey?: string;
  /** Accepts a Bearer token (the gateway's Entra ID token) when it returns true. */
  readonly verifyToken?: (token: string) => boolean;
  /** Known deployment names; unset accepts any name. */
  readonly deployments?: readonly string[];
  /** Milliseconds between streamed events (default 0). */
  readonly streamIntervalMs?: number;
  /** How long a background response takes to complete, in milliseconds (default 1000). */
  readonly backgroundMs?: number;
  /** The model behind each deployment; unset ones are guessed from their names (see models.ts). */
  readonly models?: Readonly<Record<string, SimModelName>>;
  /**
   * Serve the HTTP control surface (/_simulator/…: behaviours, calls, hold,
   * release, reset) to loopback clients. Off unless asked for: tests drive
   * the simulator in-process, and only the benchmark's separate process needs it.
   */
  readonly control?: boolean;
}

/** One of the JSON operations the simulator answers itself: which Azure operation it is, its 400s, and its answers. */
interface JsonOperation {
  readonly operation: AzureOperation;
  problem(body: Record<string, unknown>, model: SimModel): unknown;
  whole(body: Record<string, unknown>, model: string): unknown;
  events?(body: Record<string, unknown>, model: string): string[];
}

const CHAT: JsonOperation = { operation: 'chatCompletion', problem: chatRequestProblem, whole: chatCompletion, events: chatChunks };
const COMPLETIONS: JsonOperation = { operation: 'completion', problem: completionsRequestProblem, whole: completion, events: completionChunks };
const EMBEDDINGS: JsonOperation = { operation: 'embeddings', problem: embeddingsRequestProblem, whole: embeddings };

type OperationHandler = (sim: AzureOpenAISimulator, call: SimCall, req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;

export class AzureOpenAISimulator {
  readonly calls: SimCall[] = [];
  /** The api-keys accepted now; a test rotates the resource's key by changing this. */
  readonly apiKeys: Set<string>;
  private readonly rules = new Map<string, BehaviourRule>();
  private readonly operations = new Map<string, OperationHandler>();
  private readonly sockets = new Set<import('node:net').Socket>();
  private server?: http.Server;
  private gate?: { promise: Promise<void>; open: () => void };
  streamIntervalMs: number;
  /** The realtime WebSocket endpoint, when installed. */
  realtime?: { upgrade(req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): boolean; close(): void };
  /** Off for long benchmark runs, where the record would only grow. */
  recordCalls = true;
  private releaseHeld?: () => void;
  private readonly closers: (() => void)[] = [];

  constructor(readonly options: SimulatorOptions = {}) {
    this.streamIntervalMs = options.streamIntervalMs ?? 0;
    this.apiKeys = new Set(options.apiKey ? [options.apiKey] : []);
    this.operations.set('chat/completions', (sim, call, _req, res) => sim.answerOperation(call, res, CHAT));
    this.operations.set('completions', (sim, call, _req, res) => sim.answerOperation(call, res, COMPLETIONS));
    this.operations.set('embeddings', (sim, call, _req, res) => sim.answerOperation(call, res, EMBEDDINGS));
    this.operations.set('models', (sim, call, req, res) => sim.listModels(call, req, res));
  }

  /**
   * Adds or replaces an operation (audio, speech) without this module knowing
   * its details; a name ending in "/" takes every operation under it
   * ("responses/" serves "responses/{id}/cancel").
   */
  handle(operation: string, handler: OperationHandler): void {
    this.operations.set(operation, handler);
  }

  /** Runs when the simulator closes: for timers an operation keeps (background responses). */
  onClose(fn: () => void): void {
    this.closers.push(fn);
  }

  /**
   * GET /openai/models?api-version=…: the models the resource offers (Azure's
   * REST reference, Models - List: `{ data: [{ id, status, ... }], object:
   * "list" }`), answered only to a valid key or token, as every call is.
   */
  listModels(call: SimCall, req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'GET') return this.send(call, res, 405, { error: { code: '405', message: 'Method not allowed' } });
    const data = Object.values(SIM_MODELS).map((m) => ({ id: m.reported, status: 'succeeded', object: 'model', lifecycle_status: 'generally-available' }));
    this.send(call, res, 200, { data, object: 'list' });
  }

  private handlerFor(operation: string): OperationHandler | undefined {
    const exact = this.operations.get(operation);
    if (exact) return exact;
    const slash = operation.indexOf('/');
    return slash > 0 ? this.operations.get(operation.slice(0, slash + 1)) : undefined;
  }

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = http.createServer((req, res) => void this.route(req, res));
    server.on('upgrade', (req, socket, head) => {
      if (!this.realtime?.upgrade(req, socket, head)) socket.destroy();
    });
    server.keepAliveTimeout = 30_000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
    return this.url;
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    if (!address) throw new Error('simulator not started');
    return `http://127.0.0.1:${address.port}`;
  }

  get httpServer(): http.Server | undefined {
    return this.server;
  }

  async close(): Promise<void> {
    for (const fn of this.closers.splice(0)) fn();
    this.gate?.open();
    this.realtime?.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  setBehaviour(deployment: string, rule: BehaviourRule): void {
    if (rule.mode === 'ok' && rule.times === undefined && rule.delayMs === undefined) this.rules.delete(deployment);
    else this.rules.set(deployment, { ...rule });
  }

  reset(): void {
    this.rules.clear();
    this.calls.length = 0;
  }

  /** Holds every stream after its first content event until the returned function is called. */
  holdStreams(): () => void {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    this.gate = { promise, open };
    return () => {
      open();
      this.gate = undefined;
    };
  }

  /** Resolves at once, or when held streams are released. */
  streamGate(): Promise<void> {
    return this.gate?.promise ?? Promise.resolve();
  }

  callsTo(deployment: string): SimCall[] {
    return this.calls.filter((c) => c.deployment === deployment);
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator');
    if (url.pathname.startsWith('/_simulator/') && this.options.control && isLoopback(req.socket.remoteAddress)) return this.control(url, req, res);

    const body = await readAll(req);
    const form = azureForm(url.pathname);
    // Azure answers a path it does not know, or a dated path without api-version, with a bare 404.
    if (!form || (form.kind !== 'v1' && !url.searchParams.get('api-version'))) return azureError(res, 404, '404', 'Resource not found');
    const { operation } = form;
    // Stored responses live on the resource: only their creation names a deployment, in `model`.
    const deployment = form.kind === 'deployment' ? form.deployment : modelFromBody(req, body) ?? modelFromMultipart(req, body) ?? '';
    const authorization = req.headers.authorization;
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
    const call: SimCall = {
      method: req.method ?? 'GET',
      deployment,
      operation,
      query: url.search.slice(1),
      form: form.kind === 'v1' ? 'v1' : 'dated',
      apiVersion: url.searchParams.get('api-version'),
      auth: req.headers['api-key'] !== undefined ? 'key' : bearer !== undefined ? 'bearer' : 'none',
      bearer,
      headers: req.headers,
      body,
      status: 0,
      sent: 0,
      aborted: false,
      finished: false,
    };
    // The model list is what the gateway's readiness check reads, on its own schedule: `calls` are the requests a test made.
    if (this.recordCalls && operation !== 'models') this.calls.push(call);
    res.once('close', () => {
      call.finished = res.writableFinished;
      call.aborted = !res.writableFinished;
    });

    if (!this.authorized(req, bearer)) {
      return this.send(call, res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } });
    }
    const onResource = form.kind === 'resource' || operation === 'responses' || operation.startsWith('responses/');
    if (this.options.deployments && deployment && !this.options.deployments.includes(deployment)) {
      if (onResource) {
        // What Azure answers a Responses call whose model names no deployment (BerriAI/litellm#13419).
        return this.send(call, res, 400, { error: { message: `The requested model '${deployment}' with deployment name ${deployment} does not exist.`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
      }
      return this.send(call, res, 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' } });
    }
    const handler = this.handlerFor(operation);
    if (!handler) return this.send(call, res, 404, { error: { code: '404', message: 'Resource not found' } });

    const rule = this.takeRule(deployment);
    if (rule?.delayMs) await sleep(rule.delayMs);
    switch (rule?.mode) {
      case 'throttle': {
        const headers: Record<string, string> = {};
        if (rule.retryAfterMs !== undefined) headers['retry-after-ms'] = String(rule.retryAfterMs);
        headers['retry-after'] = String(rule.retryAfterSeconds ?? Math.ceil((rule.retryAfterMs ?? 1000) / 1000));
        return this.send(call, res, 429, { error: { code: '429', message: 'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2025-04-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 2 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.' } }, headers);
      }
      case 'fail': {
        const status = rule.status ?? 500;
        call.status = status;
        res.writeHead(status, { 'content-type': rule.contentType ?? 'application/json' });
        return void res.end(rule.body ?? JSON.stringify({ error: { code: 'InternalServerError', message: 'The server had an error while processing your request. Sorry about that!' } }));
      }
      case 'hang':
        return; // The socket stays open with no answer until the client gives up.
      case 'block':
        return this.send(call, res, 400, operation.startsWith('images/') ? imageContentFilterError() : contentFilterError());
      case 'reset':
        (call as { resetAfter?: number }).resetAfter = rule.afterEvents ?? 1;
        break;
      case 'stall':
        (call as { stall?: Stall }).stall = { afterEvents: rule.afterEvents ?? 0, forMs: rule.forMs };
        break;
    }
    try {
      await handler(this, call, req, res);
    } catch {
      if (!res.headersSent) this.send(call, res, 500, { error: { code: 'InternalServerError', message: 'simulator failure' } });
      else res.destroy();
    }
  }

  private authorized(req: http.IncomingMessage, bearer: string | undefined): boolean {
    return this.isAuthorized(req.headers['api-key'], bearer);
  }

  /** Azure's check: the resource's key, or a Bearer token its identity provider issued. */
  isAuthorized(key: string | string[] | undefined, bearer: string | undefined): boolean {
    if (key !== undefined) return typeof key === 'string' && this.apiKeys.has(key);
    if (bearer !== undefined) return this.options.verifyToken?.(bearer) ?? false;
    return this.apiKeys.size === 0 && this.options.verifyToken === undefined;
  }

  private takeRule(deployment: string): BehaviourRule | undefined {
    const rule = this.rules.get(deployment);
    if (!rule) return undefined;
    if (rule.times !== undefined && --rule.times <= 0) this.rules.delete(deployment);
    return rule;
  }

  send(call: SimCall, res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
    call.status = status;
    const text = JSON.stringify(value);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'apim-request-id': 'sim', ...headers });
    res.end(text);
  }

  private parse(call: SimCall, res: http.ServerResponse): Record<string, unknown> | undefined {
    try {
      const v = JSON.parse(call.body.toString('utf8'));
      if (v && typeof v === 'object' && !Array.isArray(v)) return v;
    } catch { /* answered below */ }
    this.send(call, res, 400, { error: { code: 'BadRequest', message: 'We could not parse the JSON body of your request.', param: null, type: 'invalid_request_error' } });
    return undefined;
  }

  /** The model the deployment runs, as Azure would report it. */
  modelOf(deployment: string): SimModel {
    return modelOf(deployment, this.options.models);
  }

  /** False, after Azure's OperationNotSupported 400, when the deployment's model does not serve the operation. */
  serves(call: SimCall, res: http.ServerResponse, operation: AzureOperation): boolean {
    const model = this.modelOf(call.deployment);
    if (model.operations.includes(operation)) return true;
    this.send(call, res, 400, operationNotSupported(operation, model));
    return false;
  }

  /**
   * A chat, completions or embeddings request answered as Azure would: 400
   * when the deployment's model does not serve the operation or the request is
   * invalid, else the answer, streamed when asked.
   */
  async answerOperation(call: SimCall, res: http.ServerResponse, op: JsonOperation): Promise<void> {
    const body = this.parse(call, res);
    if (!body) return;
    if (!this.serves(call, res, op.operation)) return;
    const model = this.modelOf(call.deployment);
    const problem = streamOptionsProblem(body, call.form === 'dated' ? call.apiVersion : null) ?? op.problem(body, model);
    if (problem) return this.send(call, res, 400, problem);
    if (op.events && body.stream === true) return void (await this.writeEvents(call, res, op.events(body, model.reported)));
    return this.answerParsed(call, res, body, (b) => op.whole(b, model.reported));
  }

  answerJson(call: SimCall, res: http.ServerResponse, make: (body: Record<string, unknown>) => unknown): void {
    const body = this.parse(call, res);
    if (body) this.answerParsed(call, res, body, make);
  }

  private answerParsed(call: SimCall, res: http.ServerResponse, body: Record<string, unknown>, make: (body: Record<string, unknown>) => unknown): void {
    if ((call as { resetAfter?: number }).resetAfter !== undefined) {
      call.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"choices":[');
      setTimeout(() => res.destroy(), 20);
      return;
    }
    const stall = (call as { stall?: Stall }).stall;
    if (stall !== undefined) return void this.sendStalled(call, res, JSON.stringify(make(body)), stall);
    this.send(call, res, 200, make(body), { 'x-ratelimit-remaining-requests': '99' });
  }

  /** A whole JSON answer whose second half comes only after a stall (or never). */
  private async sendStalled(call: SimCall, res: http.ServerResponse, text: string, stall: Stall): Promise<void> {
    call.status = 200;
    const bytes = Buffer.from(text);
    const half = Math.floor(bytes.length / 2);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length, 'apim-request-id': 'sim' });
    res.write(bytes.subarray(0, half));
    if (!(await stallFor(res, stall))) return;
    res.end(bytes.subarray(half));
  }

  async answerJsonOrStream(call: SimCall, res: http.ServerResponse, whole: (b: Record<string, unknown>) => unknown, events: (b: Record<string, unknown>) => string[]): Promise<void> {
    const body = this.parse(call, res);
    if (!body) return;
    if (body.stream !== true) return this.answerParsed(call, res, body, whole);
    await this.writeEvents(call, res, events(body));
  }

  /**
   * Writes server-sent events one at a time, as Azure does: a held stream
   * stops after its first two events until released, so a test can see the
   * first arrive before the last exists; a 'reset' rule breaks the connection
   * midway. Resolves with whether every event was written.
   */
  async writeEvents(call: SimCall, res: http.ServerResponse, all: readonly string[], holdAt = 2): Promise<boolean> {
    call.status = 200;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'apim-request-id': 'sim' });
    const resetAfter = (call as { resetAfter?: number }).resetAfter;
    const stall = (call as { stall?: Stall }).stall;
    for (let i = 0; i < all.length; i++) {
      if (res.destroyed) return false;
      if (stall !== undefined && i === stall.afterEvents && !(await stallFor(res, stall))) return false;
      if (resetAfter !== undefined && i === resetAfter) {
        // Let what was written reach the client first: the break comes mid-stream, not before it.
        await sleep(20);
        res.destroy();
        return false;
      }
      if (i === holdAt && this.gate) await this.gate.promise;
      if (i > 0 && this.streamIntervalMs > 0) await sleep(this.streamIntervalMs);
      if (res.destroyed) return false;
      const flowing = res.write(all[i]);
      call.sent = i + 1;
      if (!flowing) await new Promise((r) => res.once('drain', r));
    }
    res.end();
    return true;
  }

  private async control(url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readAll(req);
    const behaviour = /^\/_simulator\/deployments\/([^/]+)\/behaviour$/.exec(url.pathname);
    if (behaviour && req.method === 'POST') {
      this.setBehaviour(decodeURIComponent(behaviour[1]), JSON.parse(body.toString('utf8')) as BehaviourRule);
      res.writeHead(204).end();
    } else if (url.pathname === '/_simulator/calls') {
      const calls = this.calls.map(({ headers: _h, body: _b, ...c }) => c);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(calls));
    } else if (url.pathname === '/_simulator/hold' && req.method === 'POST') {
      this.releaseHeld = this.holdStreams();
      res.writeHead(204).end();
    } else if (url.pathname === '/_simulator/release' && req.method === 'POST') {
      this.releaseHeld?.();
      res.writeHead(204).end();
    } else if (url.pathname === '/_simulator/reset' && req.method === 'POST') {
      this.reset();
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  }
}

type AzureForm =
  /** /openai/deployments/{d}/{operation}?api-version= */
  | { kind: 'deployment'; deployment: string; operation: string }
  /** /openai/v1/{operation}: the GA form, the deployment in the body's model */
  | { kind: 'v1'; operation: string }
  /** /openai/responses...?api-version=: the dated form of calls on the resource, no deployment segment */
  | { kind: 'resource'; operation: string };

function azureForm(pathname: string): AzureForm | undefined {
  const dated = /^\/openai\/deployments\/([^/]+)\/(.+)$/.exec(pathname);
  if (dated) return { kind: 'deployment', deployment: decodeURIComponent(dated[1]), operation: dated[2] };
  const v1 = /^\/openai\/v1\/(.+)$/.exec(pathname);
  if (v1) return { kind: 'v1', operation: v1[1] };
  // The preview Responses API (api-version 2025-03-01-preview and later) lives here (Azure responses.md, older revision).
  // So does the resource's model list (Models - List).
  const resource = /^\/openai\/(responses(?:\/.+)?|models)$/.exec(pathname);
  if (resource) return { kind: 'resource', operation: resource[1] };
  return undefined;
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

function modelFromBody(req: http.IncomingMessage, body: Buffer): string | undefined {
  if (!String(req.headers['content-type'] ?? '').includes('json')) return undefined;
  try {
    const v = JSON.parse(body.toString('utf8'));
    return typeof v?.model === 'string' ? v.model : undefined;
  } catch {
    return undefined;
  }
}

function modelFromMultipart(req: http.IncomingMessage, body: Buffer): string | undefined {
  if (!String(req.headers['content-type'] ?? '').startsWith('multipart/')) return undefined;
  return /name="model"\r\n\r\n([^\r]*)\r\n/.exec(body.toString('latin1'))?.[1];
}

function azureError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message } }));
}

export async function readAll(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Where a 'stall' rule stops a reply, and for how long (unset: until the client leaves). */
interface Stall {
  readonly afterEvents: number;
  readonly forMs?: number;
}

/** Sends nothing for the stall's time; false when the client left meanwhile. */
async function stallFor(res: http.ServerResponse, stall: Stall): Promise<boolean> {
  // Flush what was written, so the stall comes after it rather than before.
  res.flushHeaders();
  const left = new Promise<void>((resolve) => res.once('close', () => resolve()));
  await (stall.forMs === undefined ? left : Promise.race([left, sleep(stall.forMs)]));
  return !res.destroyed;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
