import OpenAI from 'openai';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SecretReader, SecretStore, boundedReader } from '../../src/config/secrets';
import { MemoryLogger } from '../../src/core/log';
import { KeyVaultStandIn, TestCredential } from '../support/key-vault';
import { AZURE_KEY, Harness, PROXY_KEY, assertLogsClean, eventually, startHarness } from '../support/harness';
import { WebPubSubStandIn } from '../support/web-pubsub';

let vault: KeyVaultStandIn;
const running: Harness[] = [];
const OLD_PROXY = 'kv-proxy-old-1b2c3d';
const NEW_PROXY = 'kv-proxy-new-4e5f6a';
const NEW_AZURE = 'azure-key-rotated-9z8y7x';

beforeAll(async () => {
  vault = new KeyVaultStandIn();
  await vault.start();
});
afterAll(async () => vault.close());
afterEach(async () => {
  await Promise.all(running.splice(0).map((h) => h.close()));
  vault.down = false;
  vault.hang = false;
  vault.forbidden.clear();
  vault.disabled.clear();
});

/** A gateway whose keys live only in the vault stand-in, read through the real SecretClient. */
async function gatewayWithVault(refreshMs: number, reader: SecretReader = vault.client()): Promise<{ h: Harness; secrets: SecretStore; logger: MemoryLogger }> {
  const logger = new MemoryLogger();
  const secrets = new SecretStore(reader, { proxyKeys: 'proxy-api-key', azureOpenAIKey: 'azure-openai-api-key' }, refreshMs, logger);
  const h = await startHarness({
    env: (sim) => ({ PROXY_API_KEY: '', AZURE_OPENAI_API_KEY: '', AZURE_OPENAI_ENDPOINT: sim, KEY_VAULT_URL: vault.url }),
    deps: { secrets, logger, credential: new TestCredential('https://cognitiveservices.azure.com/.default') },
  });
  running.push(h);
  return { h, secrets, logger };
}

const clientWith = (h: Harness, key: string) => new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 });
const ask = (c: OpenAI) => c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'from the vault' }] });

describe('secrets in Key Vault', () => {
  it('reads the proxy keys and the Azure OpenAI key through SecretClient\'s challenge-based auth', async () => {
    vault.set('proxy-api-key', `${OLD_PROXY}`);
    vault.set('azure-openai-api-key', AZURE_KEY);
    const { h } = await gatewayWithVault(60_000);
    await ask(clientWith(h, OLD_PROXY));
    expect(h.sim.calls.at(-1)!.headers['api-key']).toBe(AZURE_KEY);
    await expect(ask(clientWith(h, 'not-a-key'))).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect(vault.credential.requests).toBe(1);
  });

  it('takes rotated secrets without a restart and without a failed request, both proxy keys working during the rotation', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.set('azure-openai-api-key', AZURE_KEY);
    const { h, logger } = await gatewayWithVault(200);
    const oldClient = clientWith(h, OLD_PROXY);
    const newClient = clientWith(h, NEW_PROXY);
    await ask(oldClient);

    // Step 1: both proxy keys in the secret; the Azure key rotated (the resource accepts both for a while).
    vault.set('proxy-api-key', `${OLD_PROXY},${NEW_PROXY}`);
    h.sim.apiKeys.add(NEW_AZURE);
    vault.set('azure-openai-api-key', NEW_AZURE);
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) await ask(oldClient);
    await ask(newClient);
    expect(h.sim.calls.at(-1)!.headers['api-key']).toBe(NEW_AZURE);

    // Step 2: the old keys retired.
    vault.set('proxy-api-key', NEW_PROXY);
    h.sim.apiKeys.delete(AZURE_KEY);
    await new Promise((r) => setTimeout(r, 400));
    await ask(newClient);
    await ask(newClient);
    await expect(ask(oldClient)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    assertLogsClean([...logger.lines], [OLD_PROXY, NEW_PROXY, NEW_AZURE, AZURE_KEY]);
  });

  it('an unknown proxy key triggers at most one early refresh per 30 seconds', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.set('azure-openai-api-key', AZURE_KEY);
    const { h } = await gatewayWithVault(300_000);
    await ask(clientWith(h, OLD_PROXY));
    const before = vault.reads.get('proxy-api-key')!;
    vault.set('proxy-api-key', `${OLD_PROXY},${NEW_PROXY}`);
    // The first request with the new key refreshes early and gets in.
    await ask(clientWith(h, NEW_PROXY));
    expect(vault.reads.get('proxy-api-key')).toBe(before + 1);
    for (let i = 0; i < 20; i++) await ask(clientWith(h, `guess-${i}`)).catch(() => {});
    expect(vault.reads.get('proxy-api-key')).toBe(before + 1);
  });

  it('keeps serving on the last good values when Key Vault goes away later, with one warning', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.set('azure-openai-api-key', AZURE_KEY);
    const { h, logger } = await gatewayWithVault(100);
    await ask(clientWith(h, OLD_PROXY));
    vault.down = true;
    const deadline = Date.now() + 800;
    while (Date.now() < deadline) await ask(clientWith(h, OLD_PROXY));
    expect(logger.entries().filter((e) => e.level === 'warn')).toHaveLength(1);
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
  });

  it('unreadable at start: serves nothing, and /health names the setting and the missing permission', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.forbidden.add('proxy-api-key');
    const { h } = await gatewayWithVault(60_000);
    const res = await fetch(`${h.url}/v1/models`, { headers: { authorization: `Bearer ${OLD_PROXY}` } });
    expect(res.status).toBe(503);
    const health = await (await fetch(`${h.url}/health`)).json();
    expect(health.status).toBe('misconfigured');
    expect(health.problems).toEqual([{ setting: 'KEY_VAULT_URL', message: expect.stringContaining('Key Vault Secrets User') }]);
    expect(JSON.stringify(health)).not.toContain(OLD_PROXY);
    expect(h.sim.calls).toHaveLength(0);
  });

  it('unreadable at start, readable later (a role assignment taking effect after a first deployment): served without a restart', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.set('azure-openai-api-key', AZURE_KEY);
    vault.forbidden.add('proxy-api-key');
    const { h, secrets } = await gatewayWithVault(200);
    await secrets.ready;
    const models = () => fetch(`${h.url}/v1/models`, { headers: { authorization: `Bearer ${OLD_PROXY}` } });
    expect((await models()).status).toBe(503);
    vault.forbidden.clear();
    await eventually(async () => (await models()).status === 200, 3000, 'the requests to read the vault again');
    const health = await (await fetch(`${h.url}/health`)).json();
    expect(health.problems ?? []).toEqual([]);
  });

  it('a disabled Azure OpenAI key is as if absent: the managed identity is used instead; a disabled proxy key secret is named on /health', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.set('azure-openai-api-key', AZURE_KEY);
    vault.disabled.add('azure-openai-api-key');
    const { h } = await gatewayWithVault(60_000);
    // This simulator takes keys only: what counts is that the call went with the identity's token, not a key.
    await ask(clientWith(h, OLD_PROXY)).catch(() => {});
    expect(h.sim.calls.at(-1)!.auth).toBe('bearer');
    expect((await (await fetch(`${h.url}/health`)).json()).problems ?? []).toEqual([]);

    vault.disabled.add('proxy-api-key');
    const { h: other, secrets } = await gatewayWithVault(60_000);
    await secrets.ready;
    const health = await (await fetch(`${other.url}/health`)).json();
    expect(health.problems).toEqual([{ setting: 'KEY_VAULT_URL', message: expect.stringContaining('"proxy-api-key" disabled') }]);
  });

  it('a vault that never answers holds no request for long: each read gives up in time, /health says so, and it is served once the vault answers', async () => {
    vault.set('proxy-api-key', OLD_PROXY);
    vault.set('azure-openai-api-key', AZURE_KEY);
    vault.hang = true;
    // The gateway bounds each read (VAULT_READ_TIMEOUT_MS, 15 s); shorter here.
    const { h } = await gatewayWithVault(200, boundedReader(vault.client(), 400));
    const models = () => fetch(`${h.url}/v1/models`, { headers: { authorization: `Bearer ${OLD_PROXY}` } });
    const started = performance.now();
    expect((await models()).status).toBe(503);
    expect(performance.now() - started).toBeLessThan(2000);
    const health = await (await fetch(`${h.url}/health`)).json();
    expect(health.problems).toEqual([{ setting: 'KEY_VAULT_URL', message: expect.stringContaining('no answer in time') }]);
    vault.hang = false;
    await eventually(async () => (await models()).status === 200, 3000, 'the vault to be read');
  });
});

describe('keyless Azure OpenAI with a managed identity', () => {
  it('sends the Entra ID token on the realtime WebSocket too', async () => {
    const identity = new TestCredential('https://cognitiveservices.azure.com/.default');
    const h = await startHarness({
      simulator: { apiKey: undefined, verifyToken: (t) => identity.isValid(t) },
      env: () => ({ AZURE_OPENAI_API_KEY: '', MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini-realtime-preview': ['rt-a'] }) }),
      deps: { credential: identity },
    });
    running.push(h);
    const ws = new WebSocket(`${h.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-mini-realtime-preview`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(String(d)));
      ws.once('error', reject);
    });
    expect(JSON.parse(first).type).toBe('session.created');
    ws.close();
    expect(identity.requests).toBe(1);
  });

  it('sends an Entra ID token the simulator accepts, renewed before it expires over a long run (injected clock)', async () => {
    let now = Date.parse('2026-11-25T12:00:00Z');
    const clock = () => now;
    const identity = new TestCredential('https://cognitiveservices.azure.com/.default', 3600_000, clock);
    const h = await startHarness({
      simulator: { apiKey: undefined, verifyToken: (t) => identity.isValid(t) },
      env: () => ({ AZURE_OPENAI_API_KEY: '' }),
      deps: { credential: identity, now: clock },
    });
    running.push(h);
    const used = new Set<string>();
    // Three hours of traffic, a request every five minutes.
    for (let minute = 0; minute <= 180; minute += 5) {
      now = Date.parse('2026-11-25T12:00:00Z') + minute * 60_000;
      await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'keyless' }] });
      const call = h.sim.calls.at(-1)!;
      expect(call.auth).toBe('bearer');
      expect(call.status).toBe(200);
      used.add(call.bearer!);
    }
    expect(used.size).toBeGreaterThanOrEqual(3);
    expect(identity.requests).toBeLessThanOrEqual(5);
  });
});

describe('the Web PubSub access key in Key Vault', () => {
  it('rotates without a restart: tokens, REST calls and event signatures follow the vault\'s connection string', async () => {
    const pubsub = new WebPubSubStandIn('realtime');
    await pubsub.start();
    try {
      vault.set('proxy-api-key', OLD_PROXY);
      vault.set('azure-openai-api-key', AZURE_KEY);
      vault.set('webpubsub-connection-string', pubsub.connectionString(0));
      const logger = new MemoryLogger();
      const secrets = new SecretStore(vault.client(), { proxyKeys: 'proxy-api-key', azureOpenAIKey: 'azure-openai-api-key', webPubSubConnectionString: 'webpubsub-connection-string' }, 200, logger);
      const h = await startHarness({
        env: (sim) => ({
          PROXY_API_KEY: '', AZURE_OPENAI_API_KEY: '', AZURE_OPENAI_ENDPOINT: sim, KEY_VAULT_URL: vault.url,
          MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini-realtime-preview': ['rt-a'] }),
          // What the app setting's Key Vault reference resolved to when the app started.
          WEBPUBSUB_CONNECTION_STRING: pubsub.connectionString(0),
        }),
        deps: { secrets, logger, credential: new TestCredential('https://cognitiveservices.azure.com/.default') },
      });
      running.push(h);
      pubsub.handlers = [`${h.url}/realtime/events`];
      const talk = async () => {
        const res = await fetch(`${h.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: `Bearer ${OLD_PROXY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini-realtime-preview' }) });
        expect(res.status).toBe(200);
        const ws = new WebSocket((await res.json()).url);
        const received: string[] = [];
        ws.on('message', (d) => received.push(String(d)));
        await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
        ws.send(JSON.stringify({ type: 'response.create' }));
        await eventually(() => received.some((e) => e.includes('"response.done"')), 5000, 'response.done');
        ws.close();
      };
      await talk();
      // The operator's rotation: the secondary key into the vault, one refresh interval, then the primary regenerated.
      vault.set('webpubsub-connection-string', pubsub.connectionString(1));
      await new Promise((r) => setTimeout(r, 400));
      pubsub.regenerateKey(0);
      await talk();
      expect(pubsub.restCalls.filter((c) => c.status === 401)).toEqual([]);
      expect(pubsub.events.filter((e) => e.status === 401)).toEqual([]);
    } finally {
      await pubsub.close();
    }
  });
});
