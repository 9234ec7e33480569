/** @module Azure OpenAI's wire: URL forms, retry hints, and replies sorted into answer, retry or OpenAI-shaped error. */
import type { IncomingHttpHeaders } from 'node:http';
import { Deployment } from './deployment';
import { GatewayError, contentFiltered, typeForStatus, upstreamRejected } from '../core/errors';
import { AttemptResult } from '../balancer/balancer';
import { UpstreamFailure, UpstreamReply } from './client';

/**
 * The path of an operation such as "chat/completions" on one deployment: the
 * dated form, or GA's v1 form. `query` is the client's own query string
 * (input_items' paging), passed on without any api-version of its own.
 */
export function operationPath(d: Deployment, operation: string, query = ''): string {
  const extra = query ? withoutApiVersion(query) : '';
  if (onResource(operation)) {
    // Responses live on the resource, not under a deployment: GA's v1 form, unless the deployment names a dated version.
    const dated = d.namedApiVersion !== undefined && d.namedApiVersion !== 'v1';
    return dated
      ? `/openai/${operation}?api-version=${encodeURIComponent(d.apiVersion)}${extra ? `&${extra}` : ''}`
      : `/openai/v1/${operation}${extra ? `?${extra}` : ''}`;
  }
  return d.apiVersion === 'v1'
    ? `/openai/v1/${operation}${extra ? `?${extra}` : ''}`
    : `/openai/deployments/${encodeURIComponent(d.deployment)}/${operation}?api-version=${encodeURIComponent(d.apiVersion)}${extra ? `&${extra}` : ''}`;
}

/**
 * Whether an operation addresses state the resource stores (a response)
 * rather than a deployment: its path has no deployment segment, creation
 * names the deployment in `model`, and a 404 means the object is not there.
 */
export function onResource(operation: string): boolean {
  return operation === 'responses' || operation.startsWith('responses/');
}

/** What Azure serves under a deployment: /openai/deployments/{d}/… (the AzureOpenAI client's list, openai 7.57 src/azure.ts). */
const DEPLOYMENT_OPERATIONS = new Set([
  'chat/completions', 'completions', 'embeddings',
  'audio/transcriptions', 'audio/translations', 'audio/speech',
  'images/generations', 'images/edits',
]);

/**
 * An Azure-style path, after /openai/, as the OpenAI path it stands for, with
 * the deployment segment when it has one: deployments/{d}/{operation} (the
 * AzureOpenAI client's form), v1/{operation} (GA's form), and the dated form's
 * calls on the resource (responses…, models). Undefined for anything else.
 */
export function openAIPathOf(azurePath: string): { readonly path: string; readonly deployment?: string } | undefined {
  const deployment = /^deployments\/([^/]+)\/(.+)$/.exec(azurePath);
  if (deployment) return DEPLOYMENT_OPERATIONS.has(deployment[2]) ? { path: `/v1/${deployment[2]}`, deployment: deployment[1] } : undefined;
  if (azurePath.startsWith('v1/')) return { path: `/${azurePath}` };
  if (/^(responses|models)(\/|$)/.test(azurePath)) return { path: `/v1/${azurePath}` };
  return undefined;
}

function withoutApiVersion(query: string): string {
  if (!query.includes('api-version')) return query;
  const params = new URLSearchParams(query);
  params.delete('api-version');
  return params.toString();
}

/**
 * Which realtime protocol a deployment's socket speaks: GA's unless the
 * deployment itself names a dated version (then the preview's, beta event
 * names). AZURE_OPENAI_API_VERSION is the HTTP routes' default and always
 * dated, so it says nothing about realtime, whose preview Azure is retiring.
 */
export function realtimeForm(d: Deployment): 'ga' | 'preview' {
  return d.namedApiVersion !== undefined && d.namedApiVersion !== 'v1' ? 'preview' : 'ga';
}

/** Azure's realtime WebSocket URL for a deployment: GA's v1 form (no api-version: Azure refuses one there), or the dated preview form. */
export function realtimeUrl(d: Deployment): string {
  const base = d.endpoint.replace(/^http/, 'ws');
  return realtimeForm(d) === 'ga'
    ? `${base}/openai/v1/realtime?model=${encodeURIComponent(d.deployment)}`
    : `${base}/openai/realtime?api-version=${encodeURIComponent(d.apiVersion)}&deployment=${encodeURIComponent(d.deployment)}`;
}

/** The GA v1 form and calls on the resource name the deployment in the body's `model`; the dated form takes the body as sent. */
export function usesModelField(d: Deployment, operation = ''): boolean {
  return d.apiVersion === 'v1' || onResource(operation);
}

/**
 * Whether a deployment's chat completions take `stream_options`: the GA v1
 * form, and dated versions from 2024-09-01-preview on (2024-10-21 is the first
 * GA one with it). Earlier versions answer 400 "Unrecognized request argument
 * supplied: stream_options" (reported against 2023-05-15 and 2024-05-01-preview:
 * openai/openai-python#1469, Azure/azure-rest-api-specs#29157).
 */
export function acceptsStreamOptions(d: Deployment): boolean {
  return d.apiVersion === 'v1' || d.apiVersion.slice(0, 10) >= '2024-09-01';
}

/**
 * Azure's answer when the stored object a request names is not on the
 * resource asked: 404 for an id, previous_response_not_found, or an unknown
 * item reference (A3 of the research notes). Another resource may hold it.
 */
export function isStoredObjectMissing(error: GatewayError): boolean {
  if (error.status === 404 || error.code === 'previous_response_not_found') return true;
  return error.status === 400 && error.param === 'input' && /^Item with id '[^']*' not found/.test(error.message);
}

/** Milliseconds from retry-after-ms, or retry-after in seconds or as an HTTP date. */
export function retryAfterMs(headers: IncomingHttpHeaders, now: number = Date.now()): number | undefined {
  const ms = Number(headers['retry-after-ms']);
  if (headers['retry-after-ms'] !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers['retry-after'];
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const ERROR_BODY_LIMIT = 64 * 1024;

/**
 * Sorts an upstream answer: 2xx is the answer; 429, 5xx, a deployment that
 * refuses the gateway itself (401/403, redirects) and a 404 (no such
 * deployment, or no such operation there) mean "try the next one";
 * any other 4xx is the client's to fix and is returned in OpenAI's shape. On
 * the resource's stored objects, a 404 is the answer: that id is not there.
 */
export async function classifyReply<T>(
  reply: UpstreamReply,
  deployment: Deployment,
  onSuccess: (reply: UpstreamReply, deployment: Deployment) => T | Promise<T>,
  onClientError: (error: GatewayError) => T,
  notFoundAnswers = false,
): Promise<AttemptResult<T>> {
  const status = reply.status;
  if (status >= 200 && status < 300) {
    try {
      return { kind: 'done', value: await onSuccess(reply, deployment), ok: true };
    } catch (err) {
      // The answer broke or stalled before any of it reached the client: the next deployment may serve.
      if (err instanceof UpstreamFailure && err.kind !== 'aborted') return { kind: 'retry', reason: err.kind, status };
      throw err;
    }
  }
  if (status === 429) {
    reply.discard();
    return { kind: 'retry', reason: '429', retryAfterMs: retryAfterMs(reply.headers), status };
  }
  if (status >= 500) {
    reply.discard();
    return { kind: 'retry', reason: '5xx', status };
  }
  if (status === 404 && !notFoundAnswers) {
    // Azure's word for a deployment it does not have; any other 404 is a path (an operation, an
    // api-version) this deployment's resource does not serve, which says nothing of its other operations.
    const error = parseErrorBody(await reply.whole(ERROR_BODY_LIMIT).catch(() => Buffer.alloc(0)));
    return error?.code === 'DeploymentNotFound' ? { kind: 'retry', reason: 'missing', status } : { kind: 'retry', reason: 'unsupported', status, scoped: true };
  }
  if (status < 400 || status === 401 || status === 403) {
    reply.discard();
    return { kind: 'retry', reason: 'rejected', status };
  }
  const body = await reply.whole(ERROR_BODY_LIMIT).catch(() => Buffer.alloc(0));
  return { kind: 'done', value: onClientError(azureClientError(status, body, deployment)), ok: false };
}

/** Azure's 4xx body as an OpenAI error; content-filter blocks get a plain message. */
export function azureClientError(status: number, body: Buffer, deployment: Deployment): GatewayError {
  const parsed = parseErrorBody(body);
  // Every field Azure wrote is scrubbed, not the message alone: any of them may name the resource.
  const field = (value: unknown) => (typeof value === 'string' && value.trim() ? scrub(value, deployment, FIELD_CHARS) : null);
  if (parsed && isContentFilter(parsed)) {
    return contentFiltered(filteredCategories(parsed), field(parsed.param) ?? 'prompt');
  }
  const message = typeof parsed?.message === 'string' && parsed.message.trim()
    ? scrub(parsed.message, deployment)
    : `The upstream service rejected the request (status ${status}) without a readable reason.`;
  const type = field(parsed?.type) ?? typeForStatus(status);
  const param = field(parsed?.param);
  const code = typeof parsed?.code === 'number' ? String(parsed.code) : field(parsed?.code);
  return upstreamRejected(status, message, type, code, param);
}

type AzureError = Record<string, unknown>;

function parseErrorBody(body: Buffer): AzureError | undefined {
  if (body.length === 0) return undefined;
  try {
    const value = JSON.parse(body.toString('utf8'));
    const error = value && typeof value === 'object' ? (value as Record<string, unknown>).error : undefined;
    return error && typeof error === 'object' ? (error as AzureError) : undefined;
  } catch {
    return undefined;
  }
}

function isContentFilter(error: AzureError): boolean {
  const inner = error.innererror as AzureError | undefined;
  // Image operations say "contentFilter" (azure-ai-docs how-to/dall-e.md).
  return error.code === 'content_filter' || error.code === 'contentFilter' || inner?.code === 'ResponsibleAIPolicyViolation';
}

function filteredCategories(error: AzureError): string[] {
  const inner = error.innererror as AzureError | undefined;
  const result = inner?.content_filter_result;
  if (!result || typeof result !== 'object') return [];
  return Object.entries(result as Record<string, unknown>)
    .filter(([, v]) => v && typeof v === 'object' && (v as Record<string, unknown>).filtered === true)
    .map(([k]) => k);
}

/** Removes URLs and the resource's name from a message Azure wrote. */
export function scrub(message: string, deployment: Deployment, maxChars = 2000): string {
  let text = message.replace(/\bhttps?:\/\/\S+/gi, '[link removed]');
  const host = deployment.endpoint.replace(/^https?:\/\//, '').replace(/:\d+$/, '');
  // An address's first number names no resource, and cutting it out would mangle ids in the message.
  const resource = /^[\d.]+$|^\[/.test(host) ? '' : host.split('.')[0];
  for (const word of [host, resource]) {
    // Host names are case-insensitive, and Azure's messages do not keep the case they were configured in.
    if (word && word !== 'localhost' && word.length > 2) text = text.replace(new RegExp(escapeRegExp(word), 'gi'), '[resource]');
  }
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

/** The longest type, param or code passed on from Azure. */
const FIELD_CHARS = 128;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
