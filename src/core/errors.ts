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
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new GatewayError(400, message, 'invalid_request_error', code, param);

export const unauthorized = (message: string) =>
  new GatewayError(401, message, 'invalid_request_error', 'invalid_api_key');

export const notFound = (message: string, code: string | null = 'not_found', param: string | null = null) =>
  new GatewayError(404, message, 'invalid_request_error', code, param);

export const modelNotFound = (model: string) =>
  notFound(`The model \`${model}\` does not exist or you do not have access to it.`, 'model_not_found', 'model');

export const methodNotAllowed = (method: string, allowed: readonly string[]) =>
  new GatewayError(405, `Method ${method} is not allowed here; use ${allowed.join(' or ')}.`,
    'invalid_request_error', 'method_not_allowed', null, { allow: allowed.join(', ') });

export const payloadTooLarge = (limitBytes: number) =>
  new GatewayError(413, `The request body is larger than the gateway accepts (${limitBytes} bytes). Send a smaller body.`,
    'invalid_request_error', 'request_too_large');

/** A body of the wrong type: 400 as OpenAI answers it, so SDKs raise BadRequestError. */
export const wrongContentType = (message: string) =>
  new GatewayError(400, message, 'invalid_request_error', 'invalid_content_type');

export const rateLimited = (retryAfterSeconds: number) =>
  new GatewayError(429,
    `Every deployment of this model is throttled right now. Retry after ${retryAfterSeconds} seconds.`,
    'requests', 'rate_limit_exceeded', null, { 'retry-after': String(retryAfterSeconds) });

export const upstreamFailed = (message: string) =>
  new GatewayError(502, message, 'server_error', 'upstream_error');

export const unavailable = (message: string, retryAfterSeconds?: number) =>
  new GatewayError(503, message, 'server_error', 'service_unavailable', null,
    retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) });

export const upstreamTimeout = (message: string) =>
  new GatewayError(504, message, 'server_error', 'upstream_timeout');

/** The client left before its request was read: nobody will see this answer. */
export const clientClosed = () =>
  new GatewayError(499, 'The client closed the request.', 'invalid_request_error', 'client_closed');

export const internalError = (cause?: unknown) =>
  new GatewayError(500, 'The gateway failed to handle this request. Retry it; if it keeps failing, report the x-request-id.',
    'server_error', 'internal_error', null, {}, { cause });

/** The OpenAI error type that matches a status, for upstream errors that arrive without one. */
export function typeForStatus(status: number): string {
  if (status === 401) return 'invalid_request_error';
  if (status === 429) return 'requests';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}
