import OpenAI from 'openai';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { SecretStore } from '../../src/config/secrets';
import { MemoryLogger } from '../../src/core/log';
import { useSharedUpstream } from '../support/shared-upstream';
import { KeyVaultStandIn, TestCredential } from '../support/key-vault';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';

const upstream = useSharedUpstream();
const running = upstream.running;
beforeAll(() => {
  installSimulatorOperations(upstream.sim); // realtime
});

const TEAM_KEY = 'team-a-key-5d4c3b2a1f0e';
const OPS_KEY = 'ops-key-a1b2c3d4e5f6';
const MODELS = { 'gpt-4o-mini': ['chat-a', 'chat-b'], 'text-embedding-3-small': ['embed'], o3: ['reasoning'], 'gpt-4o-mini-realtime-preview': ['rt-a'] };

/** Everything any client saw in this file, and every gateway's log: no key value may be in it. */
const seen: string[] = [];
afterAll(() => {
  const all = seen.join('\n');
  for (const key of [TEAM_KEY, OPS_KEY, PROXY_KEY]) expect(all).not.toContain(key);
});

async function gateway(keys: unknown[], env: Record<string, string> = {}, now?: () => number): Promise<Harness> {
  const h = await startHarness({
    sharedSimulator: upstream.sim,
    env: () => ({ MODEL_DEPLOYMENTS: JSON.stringify(MODELS), PROXY_KEYS: JSON.stringify(keys), ...env }),
    deps: now ? { now } : {},
  });
  running.push(h);
  const close = h.close.bind(h);
  return Object.assign(h, { close: async () => { seen.push(...h.logger.lines); await close(); } });
}

let tables = 0;
/** Half past noon: a test's requests all fall in one minute, and Retry-After is known. */
const T0 = Date.parse('2026-11-26T12:00:30Z');

/** `count` instances sharing one fresh table in Azurite, on one clock. */
async function instances(count: number, keys: unknown[], extra: Record<string, string> = {}, clock: () => number = () => T0): Promise<Harness[]> {
  // A generous storage timeout: on a busy test machine a slow answer would count as an outage, tested on its own below.
  const env = { BALANCER_STORAGE_CONNECTION: upstream.azurite.connectionString, BALANCER_TABLE: `keys${++tables}`, LIMITS_SYNC_MS: '100', BALANCER_STORAGE_TIMEOUT_MS: '10000', ...extra };
  const list: Harness[] = [];
  for (let i = 0; i < count; i++) list.push(await gateway(keys, env, clock));
  return list;
}

async function call(h: Harness, key: string, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Record<string, any> }> {
  const res = await fetch(`${h.url}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers } });
  const text = await res.text();
  seen.push(text, JSON.stringify([...res.headers]));
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} };
}

const chat = (h: Harness, key: string, model = 'gpt-4o-mini', extra: Record<string, unknown> = {}) =>
  call(h, key, '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }) });

describe('named keys and the models they may use', () => {
  it('a model outside the key\'s list is a 404 exactly like a model that does not exist', async () => {
    const h = await gateway([{ name: 'team-a', key: TEAM_KEY, models: ['gpt-4o-mini'] }]);
    expect((await chat(h, TEAM_KEY)).status).toBe(200);
    const outside = await chat(h, TEAM_KEY, 'o3');
    const missing = await chat(h, TEAM_KEY, 'no-such');
    expect(outside.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(outside.body).toEqual(JSON.parse(JSON.stringify(missing.body).replaceAll('no-such', 'o3')));
    expect(outside.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(upstream.sim.callsTo('reasoning')).toHaveLength(0);
    const sdk = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: TEAM_KEY, maxRetries: 0 });
    await expect(sdk.embeddings.create({ model: 'text-embedding-3-small', input: 'x' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('/v1/models lists only the key\'s models; /v1/models/{id} and /health/deployments hide the rest', async () => {
    const h = await gateway([{ name: 'team-a', key: TEAM_KEY, models: ['gpt-4o-mini', 'o3'] }]);
    const sdk = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: TEAM_KEY, maxRetries: 0 });
    const ids: string[] = [];
    for await (const m of sdk.models.list()) ids.push(m.id);
    expect(ids.sort()).toEqual(['gpt-4o-mini', 'o3']);
    expect((await sdk.models.retrieve('o3')).id).toBe('o3');
    const hidden = await call(h, TEAM_KEY, '/v1/models/text-embedding-3-small');
    const absent = await call(h, TEAM_KEY, '/v1/models/nothing-here');
    expect(hidden.status).toBe(404);
    expect(hidden.body).toEqual(JSON.parse(JSON.stringify(absent.body).replaceAll('nothing-here', 'text-embedding-3-small')));
    const deployments = await call(h, TEAM_KEY, '/health/deployments');
    expect(new Set(deployments.body.data.map((d: { model: string }) => d.model))).toEqual(new Set(['gpt-4o-mini', 'o3']));
    // PROXY_API_KEY keeps working, unnamed, with every model.
    expect((await call(h, PROXY_KEY, '/v1/models')).body.data).toHaveLength(Object.keys(MODELS).length);
  });

  it('each request\'s log line names its key, never the key itself', async () => {
    const h = await gateway([{ name: 'team-a', key: TEAM_KEY }]);
    await chat(h, TEAM_KEY);
    await chat(h, PROXY_KEY);
    await chat(h, 'not-a-key');
    const lines = h.logger.entries().filter((e) => e.msg === 'request');
    expect(lines.map((l) => [l.status, l.key])).toEqual([[200, 'team-a'], [200, undefined], [401, undefined]]);
  });

  it('reports bad entries on /health by place and field, never with a key or a name, and serves the good ones', async () => {
    const h = await gateway([{ name: 'team-a', key: TEAM_KEY }, { name: 'team-b', key: OPS_KEY, rpm: 'ten' }, { key: 'nameless-key-77' }]);
    const health = await (await fetch(`${h.url}/health`)).json();
    seen.push(JSON.stringify(health));
    expect(health.status).toBe('misconfigured');
    expect(health.problems).toEqual([
      { setting: 'PROXY_KEYS', message: expect.stringMatching(/^entry 2: "rpm"/) },
      { setting: 'PROXY_KEYS', message: expect.stringMatching(/^entry 3: "name"/) },
    ]);
    expect(JSON.stringify(health)).not.toContain('nameless-key-77');
    expect((await chat(h, TEAM_KEY)).status).toBe(200);
    // A key whose entry is wrong is not let in unlimited.
    expect((await chat(h, OPS_KEY)).status).toBe(401);
  });
});

describe('named keys in Key Vault', () => {
  let vault: KeyVaultStandIn;
  beforeAll(async () => {
    vault = new KeyVaultStandIn();
    await vault.start();
  });
  afterAll(async () => vault.close());

  it('reads the proxy-keys secret and takes a rotated one without a restart; bad entries show on /health', async () => {
    vault.set('proxy-keys', JSON.stringify([{ name: 'team-a', key: TEAM_KEY, models: ['gpt-4o-mini'] }]));
    vault.set('azure-openai-api-key', AZURE_KEY);
    const logger = new MemoryLogger();
    const secrets = new SecretStore(vault.client(), { proxyKeys: 'proxy-api-key', namedKeys: 'proxy-keys', azureOpenAIKey: 'azure-openai-api-key' }, 200, logger, Date.now, new Set(Object.keys(MODELS)));
    const h = await startHarness({
      sharedSimulator: upstream.sim,
      env: (sim) => ({ PROXY_API_KEY: '', AZURE_OPENAI_ENDPOINT: sim, KEY_VAULT_URL: vault.url, MODEL_DEPLOYMENTS: JSON.stringify(MODELS) }),
      deps: { secrets, logger, credential: new TestCredential('https://cognitiveservices.azure.com/.default') },
    });
    running.push(h);
    expect((await chat(h, TEAM_KEY)).status).toBe(200);
    expect((await chat(h, TEAM_KEY, 'o3')).status).toBe(404);
    expect((await chat(h, OPS_KEY)).status).toBe(401);

    vault.set('proxy-keys', JSON.stringify([{ name: 'team-a', key: TEAM_KEY, models: ['gpt-4o-mini', 'o3'] }, { name: 'ops', key: OPS_KEY, admin: true }, { name: 'broken', key: 'broken-key-99', tpm: 0 }]));
    // Refreshes run in the background, started by requests once the interval has passed.
    await eventually(async () => (await chat(h, TEAM_KEY, 'o3')).status === 200, 3000, 'the rotated secret');
    expect((await chat(h, OPS_KEY)).status).toBe(200);
    const health = await (await fetch(`${h.url}/health`)).json();
    seen.push(JSON.stringify(health), ...logger.lines);
    expect(health.problems).toEqual([{ setting: 'PROXY_KEYS', message: expect.stringMatching(/^\(Key Vault secret "proxy-keys"\) entry 3: "tpm"/) }]);
    expect(JSON.stringify(health)).not.toContain('broken-key-99');
  });
});

describe('limits shared by instances through Table Storage', () => {
  it('rpm 5, alternating between two instances: five answers with remaining going down, then 429 with Retry-After', async () => {
    const [a, b] = await instances(2, [{ name: 'team-a', key: TEAM_KEY, rpm: 5 }]);
    const remaining: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await chat(i % 2 === 0 ? a : b, TEAM_KEY);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('5');
      expect(res.headers.get('x-ratelimit-reset-requests')).toBe('30s');
      remaining.push(res.headers.get('x-ratelimit-remaining-requests')!);
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    const refused = await chat(b, TEAM_KEY);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.body.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    const sdk = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: TEAM_KEY, maxRetries: 0 });
    await expect(sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(upstream.sim.calls).toHaveLength(5);
    // Other keys are not held back by this one.
    expect((await chat(a, PROXY_KEY)).status).toBe(200);
    expect((await chat(a, PROXY_KEY)).headers.get('x-ratelimit-limit-requests')).toBeNull();
  });

  it('a spent tokensPerDay is insufficient_quota, which the openai SDK does not retry', async () => {
    const [a, b] = await instances(2, [{ name: 'team-a', key: TEAM_KEY, tokensPerDay: 100 }]);
    // The simulator answers max_tokens words: 60 output tokens and a small prompt each.
    expect((await chat(a, TEAM_KEY, 'gpt-4o-mini', { max_tokens: 60 })).status).toBe(200);
    const res = await chat(b, TEAM_KEY, 'gpt-4o-mini', { max_tokens: 60 });
    expect(res.status).toBe(429);
    expect(res.body.error).toMatchObject({ code: 'insufficient_quota', type: 'insufficient_quota' });
    expect(res.headers.get('x-should-retry')).toBe('false');
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('100');
    // Some of the quota is left, less than this request may spend: the message says so, as the headers do.
    const left = Number(res.headers.get('x-ratelimit-remaining-tokens'));
    expect(left).toBeGreaterThan(0);
    expect(res.body.error.message).toMatch(new RegExp(`^This request is estimated at \\d+ tokens \\(from its size and its max tokens\\), more than the ${left} left of this key's quota of 100 tokens for the UTC day; it resets in `));
    const sdk = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: TEAM_KEY, maxRetries: 2 });
    const err = await sdk.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 60, messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('insufficient_quota');
    const refusedLines = b.logger.entries().filter((e) => e.msg === 'request' && e.error === 'insufficient_quota');
    expect(refusedLines).toHaveLength(2); // one for the fetch, one for the SDK: no retries
  });

  it('a photo sent inline is admitted on what it costs a model, not on the size of its base64', async () => {
    // Before, a quarter of the body's bytes: this 450 KB photo was 153,000 tokens, refused for good by a tpm of 20,000.
    const h = await gateway([{ name: 'team-a', key: TEAM_KEY, tpm: 20_000 }]);
    const photo = `data:image/png;base64,${Buffer.alloc(450 * 1024, 7).toString('base64')}`;
    const sdk = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: TEAM_KEY, maxRetries: 0 });
    const { data, response } = await sdk.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, { type: 'image_url', image_url: { url: photo } }] }],
    }).withResponse();
    expect(data.choices[0].message.content).toBeTruthy();
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('20000');
  });

  for (const n of [2, 4]) {
    it(`${n} instances under concurrent load never pass rpm, nor tokensPerDay with requests that set max_tokens`, async () => {
      const hs = await instances(n, [{ name: 'team-a', key: TEAM_KEY, tokensPerDay: 2000 }, { name: 'team-b', key: OPS_KEY, rpm: 40 }]);
      let okA = 0;
      let tokensA = 0;
      let okB = 0;
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 20; i++) {
          const h = hs[(w + i) % n];
          const a = await chat(h, TEAM_KEY, 'gpt-4o-mini', { max_tokens: 20 });
          if (a.status === 200) {
            okA++;
            tokensA += a.body.usage.total_tokens;
          } else expect(a.status).toBe(429);
          const b = await chat(h, OPS_KEY);
          if (b.status === 200) okB++;
          else expect(b.body.error.code).toBe('rate_limit_exceeded');
        }
      }));
      expect(tokensA).toBeLessThanOrEqual(2000);
      expect(okB).toBe(40);
      // Budget stranded on instances when the store ran dry stays small.
      expect(tokensA).toBeGreaterThan(2000 - 200);
    });
  }

  it('a realtime session is a request on the key\'s limits: over rpm, the socket is refused with OpenAI\'s 429', async () => {
    const [h] = await instances(1, [{ name: 'team-a', key: TEAM_KEY, rpm: 1 }]);
    const open = () => new Promise<number>((resolve) => {
      const ws = new WebSocket(`${h.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-mini-realtime-preview`, { headers: { authorization: `Bearer ${TEAM_KEY}` } });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('error', () => {});
    });
    expect(await open()).toBe(101);
    expect(await open()).toBe(429);
  });

  it('a storage outage keeps serving, each instance holding to its share of a limit, with one warning each', async () => {
    const hs = await instances(2, [{ name: 'team-a', key: TEAM_KEY, rpm: 10 }, { name: 'team-b', key: OPS_KEY, rpm: 1000 }], { BALANCER_STORAGE_TIMEOUT_MS: '1000' });
    // Both instances serve a little, and so count each other (each shares its presence 100 ms after serving).
    await eventually(async () => {
      for (const h of hs) expect((await chat(h, OPS_KEY)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
      return hs.every((h) => h.gateway.limits.instances === 2);
    }, 10_000, 'each instance to count the other');
    await upstream.azurite.stop();
    try {
      let ok = 0;
      for (let i = 0; i < 20; i++) if ((await chat(hs[i % 2], TEAM_KEY)).status === 200) ok++;
      expect(ok).toBe(10); // 5 each: half of 10 for each of two instances
      for (const h of hs) {
        const warnings = h.logger.entries().filter((e) => e.level === 'warn');
        expect(warnings).toHaveLength(1);
        expect(String(warnings[0].msg)).toMatch(/^table storage unavailable; this instance balances and enforces key limits alone/);
      }
    } finally {
      await upstream.azurite.start();
    }
  });
});
