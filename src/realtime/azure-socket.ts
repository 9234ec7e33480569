import { WebSocket } from 'ws';
import { retryAfterMs } from '../core/azure';
import { AttemptResult, TryRecord } from '../core/balancer';
import { Deployment } from '../core/config';
import { badRequest, modelNotFound } from '../core/errors';
import { Gateway } from '../core/gateway';
import { describeError } from '../core/log';

/** Longest the gateway waits for Azure's realtime handshake before trying the next deployment. */
const HANDSHAKE_MS = 15_000;

/** Azure's realtime WebSocket URL for a deployment: the dated form, or the GA v1 form. */
export function realtimeUrl(d: Deployment): string {
  const base = d.endpoint.replace(/^http/, 'ws');
  return d.apiVersion === 'v1'
    ? `${base}/openai/v1/realtime?model=${encodeURIComponent(d.deployment)}`
    : `${base}/openai/realtime?api-version=${encodeURIComponent(d.apiVersion)}&deployment=${encodeURIComponent(d.deployment)}`;
}

/** Realtime models are named so: sessions for other models are refused before any socket exists. */
export function requireRealtimeModel(gateway: Gateway, model: unknown): string {
  if (typeof model !== 'string' || model === '') throw badRequest('You must provide a model parameter.', 'model', 'missing_required_parameter');
  if (!gateway.config.models.has(model)) throw modelNotFound(model);
  if (!model.includes('realtime')) throw badRequest(`The model \`${model}\` is not a realtime model; use one whose name contains "realtime".`, 'model', 'invalid_model');
  return model;
}

/**
 * Opens Azure's realtime socket for a model through the balancer: a
 * deployment that refuses the handshake with 429 or 5xx, or does not answer,
 * is skipped as for HTTP requests.
 */
export function connectRealtime(gateway: Gateway, model: string, tries: TryRecord[]): Promise<UpstreamSocket> {
  const pool = gateway.config.models.get(model);
  if (pool === undefined) throw modelNotFound(model);
  return gateway.balancer.dispatch(model, pool, (d) => openOne(gateway, d), tries);
}

/**
 * Azure's socket, with what it said before anyone listened: Azure sends
 * session.created at once, often in the same packet as the handshake, before
 * the code that opened the socket gets to attach its own listener.
 */
export interface UpstreamSocket {
  readonly socket: WebSocket;
  /** Stops holding messages and returns those held so far, in order. */
  takeEarly(): string[];
}

async function openOne(gateway: Gateway, d: Deployment): Promise<AttemptResult<UpstreamSocket>> {
  let header: readonly [string, string];
  try {
    header = await gateway.upstreamAuth.header(d);
  } catch (err) {
    gateway.credentialWarning.warn({ msg: 'could not authenticate to a deployment; check the managed identity or its key', deployment: d.label, error: describeError(err) });
    return { kind: 'retry', reason: 'rejected' };
  }
  return new Promise((resolve) => {
    const ws = new WebSocket(realtimeUrl(d), { headers: { [header[0]]: header[1] }, handshakeTimeout: Math.min(HANDSHAKE_MS, gateway.config.upstreamHeadersTimeoutMs), followRedirects: false });
    const early: string[] = [];
    const hold = (data: unknown, isBinary: boolean) => early.push(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data));
    ws.on('message', hold);
    const upstream: UpstreamSocket = {
      socket: ws,
      takeEarly: () => {
        ws.off('message', hold);
        return early.splice(0);
      },
    };
    let settled = false;
    const settle = (result: AttemptResult<UpstreamSocket>) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    ws.once('open', () => settle({ kind: 'done', value: upstream, ok: true }));
    ws.once('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 502;
      res.resume();
      ws.terminate();
      if (status === 429) settle({ kind: 'retry', reason: '429', retryAfterMs: retryAfterMs(res.headers), status });
      else settle({ kind: 'retry', reason: status >= 500 ? '5xx' : 'rejected', status });
    });
    ws.once('error', (err) => settle({ kind: 'retry', reason: /timeout/i.test(err.message) ? 'timeout' : 'connect' }));
  });
}
