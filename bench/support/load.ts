import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
}

/**
 * How long each measured process is loaded, untimed, before its first pass
 * (BENCH_WARMUP_SECONDS, default 15): fresh gateways were seen still compiling
 * after 10-15 s under load, and a process timed sooner is timed compiling.
 */
export const WARMUP_MS = Number(process.env.BENCH_WARMUP_SECONDS ?? 15) * 1000;

/** The middle of the values (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** `connections` keep-alive clients each sending requests back to back for `durationMs`. */
export async function closedLoop(target: Target, connections: number, durationMs: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const body = Buffer.from(target.body);
  const headers = { ...target.headers, 'content-length': String(body.length) };
  const end = performance.now() + durationMs;
  const one = () => new Promise<void>((resolve, reject) => {
    const t = performance.now();
    const req = http.request(target.url, { method: 'POST', agent, headers }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode} from ${target.url}`));
      res.on('data', () => {});
      res.on('end', () => {
        latencies.push(performance.now() - t);
        resolve();
      });
    });
    req.on('error', reject);
    req.end(body);
  });
  const started = performance.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end) await one();
  }));
  const elapsed = performance.now() - started;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, rps: latencies.length / (elapsed / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** Times one streamed request: to its first body chunk and to its end. */
export function timeStream(target: Target, agent: http.Agent): Promise<{ first: number; last: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    let first = NaN;
    const body = Buffer.from(target.body);
    const req = http.request(target.url, { method: 'POST', agent, headers: { ...target.headers, 'content-length': String(body.length) } }, (res) => {
      res.on('data', () => {
        if (Number.isNaN(first)) first = performance.now() - t;
      });
      res.on('end', () => resolve({ first, last: performance.now() - t }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
