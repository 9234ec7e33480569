/** @module One error type that renders itself in OpenAI's wire shape, and a named factory for every error the gateway returns. */
import { GatewayResponse, jsonResponse, rawHttpResponse } from './http';

/**
 * One error type, one wire shape: every failure a client sees is OpenAI's
 * `{"error":{"message","type","param","code"}}` with OpenAI's status code, so
 * OpenAI SDKs raise their usual typed errors.
 */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class GatewayError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers, e.g. Retry-After on a 429. */
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GatewayError';
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  /** The response a client sees: OpenAI's body, this status, and headers such as Retry-After. */
  toResponse(): GatewayResponse {
    return jsonResponse(this.status, this.toBody(), { ...this.headers });
  }

  /** The same error as the last event of a server-sent event stream already under way. */
  toServerSentEvent(): string {
    return `data: ${JSON.stringify(this.toBody())}\n\n`;
  }

  /** The error as the Responses API's `error` event, numbered after the events before it (openai-openapi ResponseErrorEvent). */
  toResponsesEvent(sequenceNumber: number): string {
    const event = { type: 'error', code: this.code, message: this.message, param: this.param, sequence_number: sequenceNumber };
    return `event: error\ndata: ${JSON.stringify(event)}\n\n`;
  }

  /** The same answer as raw HTTP/1.1 bytes, for a socket no HTTP response object owns (an upgrade, a parse error). */
  toRawHttp(): string {
    return rawHttpResponse(this.status, { 'content-type': 'application/json', ...this.headers }, JSON.stringify(this.toBody()));
  }
}

/** A request the client must fix; the code names what is wrong, for the client and for the log line. */
/**
 * A client's value as an error message quotes it or a log line keeps it: cut
 * to a length a person reads, so a 10 MB model name is not echoed or logged whole.
 */
export function clip(value: string, max = 128): string {
  return value.length <= max ? value : `${value.slice(0, max)}… (${value.length} characters)`;
}

export const badRequest = (message: string, param: string | null, code: string) =>
  new GatewayError(400, message, 'invalid_request_error', code, param);

export const unauthorized = (message: string) =>
  new GatewayError(401, message, 'invalid_request_error', 'invalid_api_key');

/** A key that may not do this: 403 as OpenAI answers a key without the permission, so SDKs raise PermissionDeniedError. */
export const forbidden = (message: string) =>
  new GatewayError(403, message, 'invalid_request_error', 'insufficient_permissions');

export const notFound = (message: string, code: string | null = 'not_found', param: string | null = null) =>
  new GatewayError(404, message, 'invalid_request_error', code, param);

/** `configProblems`: the model configuration has problems, so a model may be missing for one: the operator should look. */
export const modelNotFound = (model: string, configProblems = false) =>
  notFound(`The model \`${clip(model)}\` does not exist or you do not have access to it.${configProblems ? ' The gateway\'s model configuration has problems, which may have left it out: its operator should check GET /health.' : ''}`, 'model_not_found', 'model');

export const methodNotAllowed = (method: string, allowed: readonly string[]) =>
  new GatewayError(405, `Method ${clip(method)} is not allowed here; use ${allowed.join(' or ')}.`,
    'invalid_request_error', 'method_not_allowed', null, { allow: allowed.join(', ') });

/** An upload declared larger than its files' limit and the room for the rest of the form (`formBytes`) allow together. */
export const uploadTooLarge = (limitBytes: number, setting: string, formBytes: number) =>
  new GatewayError(413, `The upload is larger than the gateway accepts: ${limitBytes} bytes for its files (its ${setting} setting) and ${formBytes} for the rest of the form. Send smaller files or fewer fields.`,
    'invalid_request_error', 'request_too_large');

/** An upload whose files pass their limit: the limit and the setting that sets it named, so that either side knows what to change. */
export const filesTooLarge = (limitBytes: number, setting: string, files: number) =>
  new GatewayError(413, `${files === 1 ? 'The uploaded file is' : 'The uploaded files are together'} larger than the gateway accepts: ${limitBytes} bytes (its ${setting} setting). Send ${files === 1 ? 'a smaller file' : 'smaller files'}.`,
    'invalid_request_error', 'request_too_large');

export const payloadTooLarge = (limitBytes: number) =>
  new GatewayError(413, `The request body is larger than the gateway accepts (${limitBytes} bytes). Send a smaller body.`,
    'invalid_request_error', 'request_too_large');

/** A body of the wrong type: 400 as OpenAI answers it, so SDKs raise BadRequestError. */
export const wrongContentType = (message: string) =>
  new GatewayError(400, message, 'invalid_request_error', 'invalid_content_type');

export const encodedBody = (encoding: string) =>
  new GatewayError(400, `Content-Encoding "${clip(encoding)}" is not accepted: send the request body uncompressed (no Content-Encoding header).`, 'invalid_request_error', 'unsupported_content_encoding');

/** `allThrottled`: every deployment answered 429, rather than some 429 and the rest failing otherwise. */
export const rateLimited = (retryAfterSeconds: number, allThrottled = true) =>
  new GatewayError(429,
    allThrottled
      ? `Every deployment of this model is throttled right now. Retry after ${retryAfterSeconds} seconds.`
      : `No deployment of this model could serve the request: some are throttled, the others failed or did not answer. Retry after ${retryAfterSeconds} seconds.`,
    'requests', 'rate_limit_exceeded', null, { 'retry-after': String(retryAfterSeconds) });

/** Azure refused the gateway's credentials, or has none of the model's deployments: the operator's to fix, so clients are told not to retry. */
export const upstreamMisconfigured = () =>
  new GatewayError(502,
    'Azure OpenAI refused this gateway\'s credentials, or does not have this model\'s deployments. This is the gateway\'s configuration: its operator should check /health.',
    'server_error', 'upstream_misconfigured', null, { 'x-should-retry': 'false' });

/** A named key over its requests or tokens per minute: OpenAI's own 429, which the SDKs retry after Retry-After. */
export const keyRateLimited = (what: 'requests' | 'tokens', limit: number, retryAfterSeconds: number) =>
  new GatewayError(429,
    `Rate limit reached for this key on ${what} per min (${what === 'requests' ? 'RPM' : 'TPM'}): Limit ${limit}. Please try again in ${retryAfterSeconds}s.`,
    what, 'rate_limit_exceeded', null, { 'retry-after': String(retryAfterSeconds) });

/** One request estimated at more tokens than the key's per-minute limit: retrying cannot help, so SDKs are told not to. */
export const keyRequestTooLarge = (limit: number, requested: number) =>
  new GatewayError(429,
    `Request too large for this key's tokens per min (TPM): Limit ${limit}, Requested ${requested} (estimated from the request's size and its max tokens). Send a smaller request or a lower max_tokens.`,
    'tokens', 'rate_limit_exceeded', null, { 'x-should-retry': 'false' });

/** A named key that used its tokens for the UTC day or month: OpenAI's quota 429, which SDKs must not retry. */
export const quotaExceeded = (period: 'day' | 'month', limit: number, left: number, requested: number, resetsIn: string, retryAfterSeconds: number) =>
  new GatewayError(429,
    left > 0
      // Not spent, but this request may spend more than is left: saying "used" would contradict the x-ratelimit headers.
      ? `This request is estimated at ${requested} tokens (from its size and its max tokens), more than the ${left} left of this key's quota of ${limit} tokens for the UTC ${period}; it resets in ${resetsIn}. Send a smaller request or a lower max_tokens, or ask the gateway's operator for a larger quota.`
      : `This key has used its quota of ${limit} tokens for the UTC ${period}; it resets in ${resetsIn}. Ask the gateway's operator for a larger quota.`,
    'insufficient_quota', 'insufficient_quota', null, { 'x-should-retry': 'false', 'retry-after': String(retryAfterSeconds) });

export const upstreamFailed = (message: string) =>
  new GatewayError(502, message, 'server_error', 'upstream_error');

/** A part of the gateway its operator has not set up: 503, and no retry (x-should-retry, which the openai SDKs obey), since none would help. */
export const notSetUp = (message: string) =>
  new GatewayError(503, message, 'server_error', 'service_unavailable', null, { 'x-should-retry': 'false' });

/** A plain request to a WebSocket endpoint. */
export const upgradeRequired = (message: string) =>
  new GatewayError(426, message, 'invalid_request_error', 'upgrade_required', null, { upgrade: 'websocket', connection: 'Upgrade' });

export const unavailable = (message: string, retryAfterSeconds?: number) =>
  new GatewayError(503, message, 'server_error', 'service_unavailable', null,
    retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) });

export const upstreamTimeout = (message: string) =>
  new GatewayError(504, message, 'server_error', 'upstream_timeout');

/** The request's deadline (UPSTREAM_DEADLINE_MS) passed before any deployment answered. */
export const deadlinePassed = () => upstreamTimeout('No deployment of this model answered in time. Retry the request; a long answer starts sooner streamed.');

/**
 * A stored response lives on the one deployment that created it, and that
 * deployment cannot serve now: no other can stand in, so the client is told
 * so, with when to retry. `what` names the object: "Response 'resp_1'";
 * `certain` is false while the gateway is still looking for where it is.
 */
export const holderUnavailable = (what: string, retryAfterSeconds: number, throttled: boolean, certain = true) => {
  const where = certain ? `${clip(what)} is stored on one deployment, which is` : `${clip(what)} may be stored on a deployment that is`;
  const headers = { 'retry-after': String(retryAfterSeconds) };
  const advice = `no other deployment can serve it. Retry after ${retryAfterSeconds} seconds.`;
  return throttled
    ? new GatewayError(429, `${where} throttled right now; ${advice}`, 'requests', 'rate_limit_exceeded', null, headers)
    : new GatewayError(503, `${where} recovering from errors right now; ${advice}`, 'server_error', 'service_unavailable', null, headers);
};

/** A stored object held where the request's key may not go: the same answer as one that does not exist. */
export const storedNotFound = (what: string) =>
  notFound(`${what} does not exist or you do not have access to it.`);

/** The deployment that stored it has left the gateway's configuration. */
export const holderGone = (what: string) =>
  notFound(`${clip(what)} was stored by a deployment this gateway no longer serves, so it cannot be reached. Start over without it.`, 'stored_deployment_removed');

/** A follow-up names a model none of whose deployments can reach where the response is stored. */
export const holderOutsideModel = (what: string, model: string, holderModels: readonly string[]) =>
  badRequest(`${clip(what)} is stored where model \`${clip(model)}\` cannot reach it. Continue it with ${holderModels.map((m) => `\`${m}\``).join(' or ')}.`, 'model', 'model_mismatch');

/** The deployment broke off a response already under way: the client has part of it, and must retry. */
export const upstreamBrokeOff = (stalled: boolean) => stalled
  ? new GatewayError(504, 'The deployment stopped sending in the middle of the response, so it is incomplete. Retry the request.', 'server_error', 'upstream_timeout')
  : new GatewayError(502, 'The connection to the deployment broke in the middle of the response, so it is incomplete. Retry the request.', 'server_error', 'upstream_error');

/** The instance holds as many request bodies as it may (MAX_INFLIGHT_BODY_BYTES): retry shortly. */
export const bodiesBusy = () =>
  new GatewayError(503, 'The gateway is holding as many request bodies as it can right now. Retry after 1 second.', 'server_error', 'server_busy', null, { 'retry-after': '1' });

/** The client left before its request was read: nobody will see this answer. */
export const clientClosed = () =>
  new GatewayError(499, 'The client closed the request.', 'invalid_request_error', 'client_closed');

export const internalError = (cause?: unknown) =>
  new GatewayError(500, 'The gateway failed to handle this request. Retry it; if it keeps failing, report the x-request-id.',
    'server_error', 'internal_error', null, {}, { cause });

/** A content-filter block, named plainly: which categories tripped, none of Azure's internal detail. */
export const contentFiltered = (categories: readonly string[], param: string | null) =>
  new GatewayError(400,
    `The request was blocked by the content filter${categories.length > 0 ? ` (categories: ${categories.join(', ')})` : ''}. Change the prompt and try again.`,
    'invalid_request_error', 'content_filter', param);

/** An error Azure answered that is the client's to fix, already scrubbed of Azure's internals. */
export const upstreamRejected = (status: number, message: string, type: string, code: string | null, param: string | null) =>
  new GatewayError(status, message, type, code, param);

/** A request head that Node's parser refused. */
export const headersTooLarge = () =>
  new GatewayError(431, 'The request headers are larger than the gateway accepts. Send fewer or smaller headers.', 'invalid_request_error', 'headers_too_large');

export const jsonTooDeep = (maxDepth: number) =>
  badRequest(`The JSON body is nested more than ${maxDepth} levels deep. Send a flatter body.`, null, 'json_too_deep');

/** A request whose head (or whole body) did not arrive in time. */
export const requestTimedOut = () =>
  new GatewayError(408, 'The request took too long to arrive. Send it again, all at once.', 'invalid_request_error', 'request_timeout');

export const malformedHttp = () =>
  new GatewayError(400, 'The request could not be parsed as HTTP.', 'invalid_request_error', 'bad_request');

export const realtimeStartFailed = (cause?: unknown) =>
  new GatewayError(500, 'The gateway could not start the realtime session.', 'server_error', 'internal_error', null, {}, { cause });

/** The OpenAI error type that matches a status, for upstream errors that arrive without one. */
export function typeForStatus(status: number): string {
  if (status === 401) return 'invalid_request_error';
  if (status === 429) return 'requests';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}
