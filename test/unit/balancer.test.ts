import { describe, expect, it } from 'vitest';
import { AttemptResult, Balancer, LocalCursor, TryRecord } from '../../src/balancer/balancer';
import { loadConfig } from '../../src/config/config';
import { Deployment } from '../../src/azure-openai/deployment';
import { GatewayError } from '../../src/core/errors';
import { HealthView } from '../../src/balancer/cooldowns';
import { weightedSchedule } from '../../src/balancer/schedule';

function pool(spec: unknown[]): readonly Deployment[] {
  const c = loadConfig({ PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com', AZURE_OPENAI_API_KEY: 'x', MODEL_DEPLOYMENTS: JSON.stringify({ m: spec }) });
  return c.models.get('m')!;
}

function balancer(now: () => number = () => 1_000_000) {
  return new Balancer({ cursor: new LocalCursor(), health: new HealthView(now), now, failureCooldownMs: 10_000 });
}

type Answer = AttemptResult<string>;
const ok = (d: Deployment): Answer => ({ kind: 'done', value: d.deployment, ok: true });

describe('the balancer', () => {
  it('rotates through a pool, a weight-2 deployment taking twice the share, spread within the rotation', () => {
    const s = weightedSchedule(pool([{ deployment: 'big', weight: 2 }, 'a', 'b']));
    expect(s.map((d) => d.deployment)).toEqual(['big', 'a', 'b', 'big']);
    const five = weightedSchedule(pool([{ deployment: 'big', weight: 3 }, 'a', 'b']));
    expect(five.map((d) => d.deployment).join(' ')).toBe('big a big b big');
  });

  it('tries each deployment at most once per request and fails over past 429s', async () => {
    const p = pool(['a', 'b', 'c']);
    const b = balancer();
    const seen: string[] = [];
    const tries: TryRecord[] = [];
    const value = await b.dispatch('m', p, async (d) => {
      seen.push(d.deployment);
      return d.deployment === 'c' ? ok(d) : { kind: 'retry', reason: '429', retryAfterMs: 2000 };
    }, tries);
    expect(value).toBe('c');
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(tries.map((t) => t.outcome)).toEqual(['429', '429', 'ok']);
  });

  it('skips a cooling deployment without calling it, until its retry-after has passed', async () => {
    let t = 1_000_000;
    const p = pool(['a', 'b']);
    const b = balancer(() => t);
    const calls: string[] = [];
    const attempt = async (d: Deployment): Promise<Answer> => {
      calls.push(d.deployment);
      return d.deployment === 'a' && t < 1_002_000 ? { kind: 'retry', reason: '429', retryAfterMs: 2000 } : ok(d);
    };
    for (let i = 0; i < 4; i++) await b.dispatch('m', p, attempt, []);
    expect(calls).toEqual(['a', 'b', 'b', 'b', 'b']);
    t += 2000;
    calls.length = 0;
    for (let i = 0; i < 2; i++) await b.dispatch('m', p, attempt, []);
    expect(calls).toContain('a');
  });

  it('answers 429 with the soonest recovery when all are throttled, 504 when all timed out, 502 otherwise', async () => {
    const p = pool(['a', 'b']);
    const fail = (reason: 'timeout' | '5xx', ms?: number) => async (): Promise<Answer> => ({ kind: 'retry', reason, retryAfterMs: ms });
    const throttled = await balancer().dispatch('m', p, async (d) => ({ kind: 'retry', reason: '429', retryAfterMs: d.deployment === 'a' ? 9000 : 2500 }), []).catch((e) => e);
    expect(throttled).toBeInstanceOf(GatewayError);
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('3');
    expect((await balancer().dispatch('m', p, fail('timeout'), []).catch((e) => e)).status).toBe(504);
    expect((await balancer().dispatch('m', p, fail('5xx'), []).catch((e) => e)).status).toBe(502);
  });

  it('answers 503 with Retry-After when every deployment is still recovering from errors', async () => {
    const p = pool(['a', 'b']);
    const b = balancer();
    await b.dispatch('m', p, async () => ({ kind: 'retry', reason: '5xx' }), []).catch(() => {});
    const calls: string[] = [];
    const err = await b.dispatch('m', p, async (d) => (calls.push(d.deployment), ok(d)), []).catch((e) => e);
    expect(calls).toEqual([]);
    expect(err.status).toBe(503);
    expect(err.headers['retry-after']).toBe('10');
  });
});
