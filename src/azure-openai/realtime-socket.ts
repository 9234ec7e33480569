/** @module Azure's realtime WebSocket: opened, with what it says before anyone listens kept. */
import { HttpsProxyAgent } from 'https-proxy-agent';
import { WebSocket } from 'ws';
import type { ProxySettings } from '../config/config';
import { proxyFor } from './proxy';
import { AttemptResult } from '../balancer/balancer';
import { retryAfterMs } from './wire';

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

/** Opens the socket; a refused handshake (429, 5xx) or no answer in time means "try the next deployment". */
export function openRealtimeSocket(url: string, auth: readonly [string, string], handshakeTimeout: number, proxySettings?: ProxySettings): Promise<AttemptResult<UpstreamSocket>> {
  return new Promise((resolve) => {
    const proxy = proxyFor(new URL(url), proxySettings);
    // Through a proxy, the socket is tunnelled (CONNECT) as the HTTP calls are; one agent per socket, as it lives as long.
    const agent = proxy === undefined ? undefined : new HttpsProxyAgent(proxy);
    const ws = new WebSocket(url, { headers: { [auth[0]]: auth[1] }, handshakeTimeout, followRedirects: false, agent });
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
    // ws times the handshake from its socket, which a proxy's tunnel makes only once CONNECT is answered: a
    // proxy that never answers would hold the try for ever. Timed here from the start instead.
    const timer = setTimeout(() => {
      settle({ kind: 'retry', reason: 'timeout' });
      ws.terminate();
    }, handshakeTimeout);
    const settle = (result: AttemptResult<UpstreamSocket>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    ws.once('open', () => settle({ kind: 'done', value: upstream, ok: true }));
    ws.once('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 502;
      res.resume();
      ws.terminate();
      // A 407 is the proxy refusing the gateway (https-proxy-agent hands its answer on as the response), never Azure.
      if (status === 407) settle({ kind: 'retry', reason: 'connect' });
      else if (status === 429) settle({ kind: 'retry', reason: '429', retryAfterMs: retryAfterMs(res.headers), status });
      else settle({ kind: 'retry', reason: status >= 500 ? '5xx' : 'rejected', status });
    });
    ws.once('error', (err) => settle({ kind: 'retry', reason: /timeout/i.test(err.message) ? 'timeout' : 'connect' }));
  });
}
