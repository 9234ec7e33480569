import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/core/errors';
import { MemoryLogger } from '../../src/core/log';
import { KeyLimits, ProxyKey, UNNAMED_KEY } from '../../src/keys/proxy-key';
import { estimateTokens, TokenEstimate } from '../../src/limits/estimate';
import { Admission, Limiter } from '../../src/limits/limiter';
import { MemoryLimitStore } from '../../src/limits/memory-store';
import { goDuration } from '../../src/limits/windows';

const T0 = Date.parse('2026-11-26T12:00:30Z');
const ONE: TokenEstimate = { prompt: 1, output: 0 };

function world(instances: number, start = T0) {
  const store = new MemoryLimitStore();
  const logger = new MemoryLogger();
  const clock = { now: start };
  const limiters = Array.from({ length: instances }, () => new Limiter({ store, shared: true, logger, now: () => clock.now, timeoutMs: 1000, syncMs: 60_000 }));
  return { store, logger, clock, limiters };
}

const key = (limits: KeyLimits, name = 'team-a') => new ProxyKey(name, undefined, limits, false);

async function admit(l: Limiter, k: ProxyKey, estimate: TokenEstimate = ONE): Promise<Admission | GatewayError> {
  try {
    return await l.admit(k, 'gpt-4o-mini', estimate);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
}

function headers(l: Limiter, k: ProxyKey): Record<string, string> {
  const h: Record<string, string> = {};
  l.writeHeaders(k, h);
  return h;
}

describe('requests per minute, shared by instances', () => {
  it('alternating between two instances, rpm 5 admits five with remaining going down, then 429 with Retry-After to the next minute', async () => {
    const { limiters: [a, b] } = world(2);
    const k = key({ rpm: 5 });
    const remaining: string[] = [];
    for (let i = 0; i < 5; i++) {
      const l = i % 2 === 0 ? a : b;
      expect(await admit(l, k)).toBeInstanceOf(Admission);
      remaining.push(headers(l, k)['x-ratelimit-remaining-requests']);
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    const refused = await admit(b, k);
    expect(refused).toBeInstanceOf(GatewayError);
    expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'requests', headers: { 'retry-after': '30' } });
    expect(headers(b, k)).toMatchObject({ 'x-ratelimit-limit-requests': '5', 'x-ratelimit-reset-requests': '30s' });
    expect(await admit(a, k)).toBeInstanceOf(GatewayError);
  });

  it('starts again in the next minute', async () => {
    const { clock, limiters: [a] } = world(1);
    const k = key({ rpm: 2 });
    for (let i = 0; i < 2; i++) expect(await admit(a, k)).toBeInstanceOf(Admission);
    expect(await admit(a, k)).toBeInstanceOf(GatewayError);
    clock.now += 30_000;
    expect(await admit(a, k)).toBeInstanceOf(Admission);
    expect(headers(a, k)['x-ratelimit-remaining-requests']).toBe('1');
  });

  it('admits from held budget without a storage call: a few leases serve a busy key', async () => {
    const { store, limiters: [a] } = world(1);
    const k = key({ rpm: 6000 });
    let waited = 0;
    for (let i = 0; i < 1000; i++) {
      const r = a.admit(k, 'gpt-4o-mini', ONE);
      if (r instanceof Promise) {
        waited++;
        await r;
      }
      if (i % 50 === 0) await new Promise((r2) => setImmediate(r2)); // let background leases land
    }
    expect(waited).toBe(1); // only the very first request waited for a lease
    expect(store.calls.lease).toBeLessThanOrEqual(1000 / 300 + 2);
  });

  it('an unlimited key never touches storage', async () => {
    const { store, limiters: [a] } = world(1);
    for (let i = 0; i < 100; i++) expect(a.admit(UNNAMED_KEY, 'm', ONE)).toBeInstanceOf(Admission);
    expect(store.calls.lease).toBe(0);
  });

  for (const n of [2, 4]) {
    it(`${n} instances racing for rpm 200 admit at most 200 (never more), and at least 200 minus what leases strand`, async () => {
      const { limiters } = world(n);
      const k = key({ rpm: 200 });
      let admitted = 0;
      await Promise.all(Array.from({ length: 600 }, async (_, i) => {
        if ((await admit(limiters[i % n], k)) instanceof Admission) admitted++;
      }));
      expect(admitted).toBeLessThanOrEqual(200);
      // Each instance may strand up to a slice and a half (10 each here) when the store runs dry.
      expect(admitted).toBeGreaterThanOrEqual(200 - n * 15);
    });
  }
});

describe('tokens: admitted on an estimate, settled with the real count', () => {
  it('estimates a quarter of the body bytes plus the answer\'s cap, times n', () => {
    expect(estimateTokens(Buffer.alloc(400), { max_tokens: 50 })).toEqual({ prompt: 100, output: 50 });
    expect(estimateTokens(Buffer.alloc(401), { max_completion_tokens: 10, n: 3 })).toEqual({ prompt: 101, output: 30 });
    expect(estimateTokens(Buffer.alloc(8), { max_output_tokens: 7 })).toEqual({ prompt: 2, output: 7 });
    expect(estimateTokens(Buffer.alloc(8), {})).toEqual({ prompt: 2, output: 0 });
  });

  it('takes an inline image or audio clip at what it costs a model, not at a quarter of its base64', () => {
    const estimate = (body: Record<string, unknown>) => estimateTokens(Buffer.from(JSON.stringify(body)), body).prompt;
    const base64 = (bytes: number) => Buffer.alloc(bytes, 7).toString('base64');
    const text = { type: 'text', text: 'What is in this picture?' };
    const question = (part: unknown) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: [text, part] }] });
    const textOnly = estimate(question({ type: 'text', text: 'x' }));
    // A 450 KB photo: 600,000 characters of base64, once 150,000 tokens, more than most keys' tpm.
    const photo = estimate(question({ type: 'image_url', image_url: { url: `data:image/png;base64,${base64(450 * 1024)}` } }));
    expect(photo).toBeGreaterThan(textOnly + 1000);
    expect(photo).toBeLessThan(textOnly + 1500);
    // The Responses API's shape, two images: each costs the same.
    const two = { model: 'gpt-4o-mini', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Compare' }, ...[1, 2].map(() => ({ type: 'input_image', image_url: `data:image/jpeg;base64,${base64(100_000)}` }))] }] };
    expect(estimate(two)).toBeGreaterThan(2 * 1445);
    expect(estimate(two)).toBeLessThan(2 * 1445 + 100);
    // Ten seconds of compressed audio (about 210 KB of base64) is about 250 tokens.
    const clip = estimate(question({ type: 'input_audio', input_audio: { data: base64(160_000), format: 'mp3' } }));
    expect(clip - textOnly).toBeGreaterThan(200);
    expect(clip - textOnly).toBeLessThan(400);
  });

  it('counts everything else by its bytes: text dressed as an inline image, base64 outside an image part, files', () => {
    const estimate = (body: Record<string, unknown>) => estimateTokens(Buffer.from(JSON.stringify(body)), body).prompt;
    const bytesOnly = (body: Record<string, unknown>) => Math.ceil(JSON.stringify(body).length / 4);
    const prose = 'The quick brown fox jumps over the lazy dog. '.repeat(10_000);
    const base64 = Buffer.alloc(90_000, 7).toString('base64');
    const cases = [
      // Prose behind an image's prefix, in a message and in an image part: Azure bills the first as text and refuses the second.
      { model: 'm', messages: [{ role: 'user', content: `data:image/png;base64,${prose}` }] },
      { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${prose}` } }] }] },
      { model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: `data:image/png;base64,${base64}` }] }] },
      { model: 'm', input: 'x', instructions: `data:image/png;base64,${base64}` },
      // A file (a PDF is read as text and page images) keeps the byte count.
      { model: 'm', messages: [{ role: 'user', content: [{ type: 'file', file: { filename: 'a.pdf', file_data: `data:application/pdf;base64,${base64}` } }] }] },
      { model: 'm', messages: [{ role: 'user', content: base64 }] },
    ];
    for (const body of cases) expect(estimate(body)).toBe(bytesOnly(body));
  });

  it('refuses what the estimate does not fit, and gives back what a request did not use', async () => {
    const { limiters: [a] } = world(1);
    const k = key({ tpm: 1000 });
    const first = await admit(a, k, { prompt: 100, output: 500 });
    expect(first).toBeInstanceOf(Admission);
    expect(await admit(a, k, { prompt: 100, output: 200 })).toBeInstanceOf(Admission);
    const refused = await admit(a, k, { prompt: 100, output: 100 });
    expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'tokens' });
    a.finish(first as Admission, { prompt_tokens: 90, completion_tokens: 10, total_tokens: 100 }, undefined);
    expect(await admit(a, k, { prompt: 100, output: 100 })).toBeInstanceOf(Admission);
    expect(headers(a, k)['x-ratelimit-remaining-tokens']).toBe('400');
  });

  it('a daily quota refusal says whether the quota is spent or only too small for this request', async () => {
    const { limiters: [a] } = world(1);
    const k = key({ tokensPerDay: 100 });
    const first = await admit(a, k, { prompt: 10, output: 50 });
    a.finish(first as Admission, { prompt_tokens: 10, completion_tokens: 50, total_tokens: 60 }, undefined);
    expect(headers(a, k)['x-ratelimit-remaining-tokens']).toBe('40');
    const tooBig = await admit(a, k, { prompt: 20, output: 30 });
    expect(tooBig).toMatchObject({ status: 429, code: 'insufficient_quota' });
    expect((tooBig as GatewayError).message).toMatch(/^This request is estimated at 50 tokens \(from its size and its max tokens\), more than the 40 left of this key's quota of 100 tokens for the UTC day; it resets in 11h59m30s\./);
    const rest = await admit(a, k, { prompt: 40, output: 0 });
    a.finish(rest as Admission, { prompt_tokens: 40, total_tokens: 40 }, undefined);
    const spent = await admit(a, k, { prompt: 1, output: 0 });
    expect((spent as GatewayError).message).toBe("This key has used its quota of 100 tokens for the UTC day; it resets in 11h59m30s. Ask the gateway's operator for a larger quota.");
  });

  it('a request that used more than its estimate leaves a debt the next one pays first', async () => {
    const { limiters: [a] } = world(1);
    const k = key({ tpm: 1000 });
    const small = await admit(a, k, { prompt: 10, output: 0 });
    a.finish(small as Admission, { prompt_tokens: 10, completion_tokens: 890 }, undefined);
    expect(headers(a, k)['x-ratelimit-remaining-tokens']).toBe('100');
    expect(await admit(a, k, { prompt: 200, output: 0 })).toMatchObject({ status: 429 });
    expect(await admit(a, k, { prompt: 100, output: 0 })).toBeInstanceOf(Admission);
  });

  it('a stream cut short is counted as its prompt estimate plus one token per event that passed', async () => {
    const { limiters: [a] } = world(1);
    const k = key({ tpm: 1000 });
    const adm = await admit(a, k, { prompt: 50, output: 300 });
    a.finish(adm as Admission, undefined, 40);
    expect(headers(a, k)['x-ratelimit-remaining-tokens']).toBe('910');
    expect((await a.report('2026-11-26')).rows).toEqual([{ key: 'team-a', model: 'gpt-4o-mini', requests: 1, inputTokens: 50, outputTokens: 40 }]);
  });

  it('one request larger than the per-minute limit is refused as too large, and SDKs are told not to retry', async () => {
    const { limiters: [a] } = world(1);
    const err = await admit(a, key({ tpm: 1000 }), { prompt: 900, output: 200 });
    expect(err).toMatchObject({ status: 429, code: 'rate_limit_exceeded', headers: { 'x-should-retry': 'false' } });
    expect((err as GatewayError).message).toMatch(/Request too large.*Limit 1000, Requested 1100/);
  });

  it('a spent day quota is insufficient_quota, not retried, and named before a busy minute', async () => {
    const { clock, limiters: [a, b] } = world(2);
    const k = key({ tokensPerDay: 1000, rpm: 100 });
    const adm = await admit(a, k, { prompt: 100, output: 0 });
    a.finish(adm as Admission, { prompt_tokens: 100, completion_tokens: 900 }, undefined);
    // b learns it from the store: nothing is left to lease.
    const err = await admit(b, k, { prompt: 10, output: 0 });
    expect(err).toMatchObject({ status: 429, type: 'insufficient_quota', code: 'insufficient_quota', headers: { 'x-should-retry': 'false', 'retry-after': String(12 * 3600 - 30) } });
    expect((err as GatewayError).message).toMatch(/quota of 1000 tokens for the UTC day; it resets in 11h59m30s/);
    expect(headers(b, k)).toMatchObject({ 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-reset-tokens': '11h59m30s' });
    clock.now += 12 * 3600_000;
    expect(await admit(b, k, { prompt: 10, output: 0 })).toBeInstanceOf(Admission);
  });

  it('a month quota counts across days and starts again on the first of the next month', async () => {
    const { clock, limiters: [a] } = world(1, Date.parse('2026-11-30T23:59:00Z'));
    const k = key({ tokensPerMonth: 500 });
    a.finish((await admit(a, k, { prompt: 10, output: 0 })) as Admission, { prompt_tokens: 500, completion_tokens: 0 }, undefined);
    expect(await admit(a, k, { prompt: 10, output: 0 })).toMatchObject({ code: 'insufficient_quota' });
    clock.now += 120_000;
    expect(await admit(a, k, { prompt: 10, output: 0 })).toBeInstanceOf(Admission);
  });
});

describe('storage outages', () => {
  it('each instance enforces its share alone, with one warning, and the debt is leased back when storage returns', async () => {
    const { store, logger, clock, limiters } = world(2);
    const [a, b] = limiters;
    const other = key({ rpm: 1000 }, 'other');
    // Both instances serve a limited key and announce themselves (as they do in the background while serving).
    for (const l of limiters) expect(await admit(l, other)).toBeInstanceOf(Admission);
    for (const l of limiters) await l.report('2026-11-26');
    await a.report('2026-11-26');
    expect(a.instances).toBe(2);

    store.down = true;
    clock.now += 60_000; // a fresh minute, not seen by the store
    const k = key({ rpm: 10 });
    let admitted = 0;
    for (let i = 0; i < 20; i++) if ((await admit(a, k)) instanceof Admission) admitted++;
    expect(admitted).toBe(5); // half of 10, for one of two instances
    expect(logger.entries().filter((e) => e.level === 'warn')).toHaveLength(1);

    store.down = false;
    clock.now += 6000; // past the retry interval
    await a.report('2026-11-26'); // a's next share, which leases back the five it admitted alone
    // b takes what is left in the store; a has nothing more.
    let fromB = 0;
    for (let i = 0; i < 10; i++) if ((await admit(b, k)) instanceof Admission) fromB++;
    expect(fromB).toBe(5);
    let moreFromA = 0;
    for (let i = 0; i < 10; i++) if ((await admit(a, k)) instanceof Admission) moreFromA++;
    expect(moreFromA).toBe(0);
    expect(logger.entries().some((e) => /reachable again/.test(String(e.msg)))).toBe(true);
  });
});

describe('usage counts', () => {
  it('sum every instance\'s requests and tokens per key and model for a UTC day', async () => {
    const { limiters: [a, b] } = world(2);
    const k = key({}, 'team-a');
    a.finish(await a.admit(k, 'gpt-4o-mini', ONE), { prompt_tokens: 10, completion_tokens: 5 }, undefined);
    b.finish(await b.admit(k, 'gpt-4o-mini', ONE), { prompt_tokens: 20, completion_tokens: 7, total_tokens: 27 }, undefined);
    b.finish(await b.admit(UNNAMED_KEY, 'text-embedding-3-small', ONE), { prompt_tokens: 3, total_tokens: 3 }, undefined);
    await a.report('2026-11-26');
    const { rows } = await b.report('2026-11-26');
    expect(rows).toEqual([
      { key: null, model: 'text-embedding-3-small', requests: 1, inputTokens: 3, outputTokens: 0 },
      { key: 'team-a', model: 'gpt-4o-mini', requests: 2, inputTokens: 30, outputTokens: 12 },
    ]);
    expect((await b.report('2026-11-25')).rows).toEqual([]);
  });
});

it('writes reset times as OpenAI does', () => {
  expect(goDuration(12)).toBe('12ms');
  expect(goDuration(1500)).toBe('1.5s');
  expect(goDuration(30_000)).toBe('30s');
  expect(goDuration(360_000)).toBe('6m0s');
  expect(goDuration(47_000_000)).toBe('13h3m20s');
});
