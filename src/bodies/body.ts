import { GatewayRequest } from '../core/http';
import { Readable } from 'node:stream';
import { badRequest, clientClosed, clip, encodedBody, GatewayError, payloadTooLarge, wrongContentType } from '../core/errors';

/**
 * Reads the whole request body, refusing it with 413 as soon as it passes the
 * limit rather than after reading it all.
 */
export function readBody(body: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer> {
  return body instanceof Readable ? readStream(body, limit) : readIterable(body, limit);
}

async function readIterable(body: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > limit) throw payloadTooLarge(limit);
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
  } catch (err) {
    throw bodyBroke(err);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}

/** Why a request body stopped: what the gateway said (too large, busy), or else the client leaving. */
export function bodyBroke(err: unknown): GatewayError {
  return err instanceof GatewayError ? err : clientClosed();
}

/**
 * Refuses a compressed body, which would otherwise be read as what it
 * encodes and refused as bad JSON or a broken form, sending its client to
 * look for a fault that is not there. Neither OpenAI nor its SDKs compress
 * request bodies.
 */
export function refuseEncoded(req: GatewayRequest): void {
  const encoding = req.header('content-encoding');
  const coding = encoding?.trim().toLowerCase();
  if (coding !== undefined && coding !== '' && coding !== 'identity') throw encodedBody(encoding!);
}

/**
 * Refuses at once, unread, a body whose declared Content-Length is over the
 * limit: reading it up to the limit first would only waste the time.
 */
export function refuseDeclaredOver(req: GatewayRequest, limit: number): void {
  const declared = Number(req.header('content-length'));
  if (declared > limit) throw payloadTooLarge(limit);
}

/**
 * The same for a Node stream, by its events: cheaper per request than an
 * async iterator. An over-limit body is left unread (the host closes the
 * connection after answering).
 */
function readStream(stream: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: GatewayError | null) => {
      stream.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) {
        stream.pause();
        reject(err);
      } else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return done(payloadTooLarge(limit));
      chunks.push(chunk);
    };
    const onEnd = () => done(null);
    const onClose = () => done(clientClosed());
    const onError = (err: unknown) => done(bodyBroke(err));
    stream.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

export interface JsonBody {
  readonly raw: Buffer;
  readonly value: Record<string, unknown>;
}

/** A JSON object body, with the bytes kept so they can be forwarded untouched. */
export async function readJsonObject(req: GatewayRequest, limit: number): Promise<JsonBody> {
  const type = req.header('content-type');
  if (type !== undefined && !isJsonType(type)) {
    throw wrongContentType(`Content-Type "${clip(type.split(';')[0])}" is not accepted here; send a JSON body with Content-Type: application/json.`);
  }
  refuseEncoded(req);
  refuseDeclaredOver(req, limit);
  const raw = await readBody(req.body, limit);
  if (raw.length === 0) throw badRequest('The request body is empty; send a JSON object.', null, 'empty_body');
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw badRequest('We could not parse the JSON body of your request. Send valid JSON with Content-Type: application/json.', null, 'invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('The request body must be a JSON object.', null, 'invalid_body');
  }
  return { raw, value: value as Record<string, unknown> };
}

export function isJsonType(contentType: string): boolean {
  if (contentType === 'application/json') return true;
  const essence = contentType.split(';')[0].trim().toLowerCase();
  return essence === 'application/json' || essence.endsWith('+json');
}

/** The model a request is for: named by its path (an Azure-style deployment segment), else by its body. */
export function requestModel(req: GatewayRequest, body: Record<string, unknown>): string {
  return req.params.model ?? requireModel(body);
}

export function requireModel(body: Record<string, unknown>): string {
  const model = body.model;
  if (model === undefined || model === null || model === '') {
    throw badRequest('You must provide a model parameter.', 'model', 'missing_required_parameter');
  }
  if (typeof model !== 'string') throw badRequest('The model parameter must be a string.', 'model', 'invalid_type');
  return model;
}

/**
 * What ties a request to others that share its prompt's prefix: OpenAI's
 * `prompt_cache_key`, or else the end user it names (`user`, which Azure
 * combines with the prefix hash, or `safety_identifier`).
 */
export function promptCacheKey(body: Record<string, unknown>): string | undefined {
  const key = body.prompt_cache_key ?? body.user ?? body.safety_identifier;
  return typeof key === 'string' && key !== '' ? key : undefined;
}
