import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';

const base = { PROXY_API_KEY: 'k1, k2', AZURE_OPENAI_ENDPOINT: 'https://res-one.openai.azure.com/', AZURE_OPENAI_API_KEY: 'default-key' };

describe('configuration', () => {
  it('reads comma-separated proxy keys and model pools on the default resource', () => {
    const c = loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"gpt-4":["gpt-4-1","gpt-4-2"]}' });
    expect(c.problems).toEqual([]);
    expect(c.proxyKeys).toEqual(['k1', 'k2']);
    const pool = c.models.get('gpt-4')!;
    expect(pool.map((d) => [d.deployment, d.endpoint, d.apiKey, d.weight])).toEqual([
      ['gpt-4-1', 'https://res-one.openai.azure.com', 'default-key', 1],
      ['gpt-4-2', 'https://res-one.openai.azure.com', 'default-key', 1],
    ]);
    expect(new Set(pool.map((d) => d.id)).size).toBe(2);
  });

  it('takes deployments on other resources with their own key, version and weight, and never sends them the default key', () => {
    const c = loadConfig({
      ...base,
      MODEL_DEPLOYMENTS: JSON.stringify({ m: [{ deployment: 'd', endpoint: 'https://res-two.openai.azure.com', weight: 2, apiVersion: 'v1' }, { deployment: 'd', endpoint: 'https://res-three.openai.azure.com', apiKey: 'own' }] }),
    });
    expect(c.problems).toEqual([]);
    const [a, b] = c.models.get('m')!;
    expect(a).toMatchObject({ endpoint: 'https://res-two.openai.azure.com', apiKey: undefined, apiVersion: 'v1', weight: 2, label: 'd' });
    expect(b).toMatchObject({ apiKey: 'own', label: 'd#2' });
    expect(c.needsIdentity).toBe(true);
  });

  it('takes a priority per deployment (1 unless given) and a model object that opts in to prompt-cache affinity', () => {
    const c = loadConfig({
      ...base,
      MODEL_DEPLOYMENTS: JSON.stringify({
        tiers: [{ deployment: 'ptu', priority: 1 }, { deployment: 'paygo', priority: 2, weight: 3 }, 'plain'],
        cached: { deployments: ['c1', { deployment: 'c2', priority: 2 }], affinity: 'prompt_cache_key' },
        listed: { deployments: ['l1'] },
      }),
    });
    expect(c.problems).toEqual([]);
    expect(c.models.get('tiers')!.map((d) => [d.deployment, d.priority, d.weight])).toEqual([['ptu', 1, 1], ['paygo', 2, 3], ['plain', 1, 1]]);
    expect(c.models.get('cached')!.map((d) => [d.deployment, d.priority])).toEqual([['c1', 1], ['c2', 2]]);
    expect(c.models.get('listed')!.map((d) => d.deployment)).toEqual(['l1']);
    expect([...c.promptCacheAffinity]).toEqual(['cached']);
  });

  it('leaves out a deployment with a misspelt field, rather than serve it without what the field meant', () => {
    const c = loadConfig({ ...base, MODEL_DEPLOYMENTS: JSON.stringify({ m: [{ deployment: 'ptu' }, { deployment: 'paygo', priorty: 2 }, { deployment: 'eu', Weight: 2, region: 'eu' }] }) });
    expect(c.models.get('m')!.map((d) => d.deployment)).toEqual(['ptu']);
    expect(c.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/^model 1, deployment 2 has a field that is not one of a deployment's.* It looks like a misspelling of "priority"\.$/),
      // "region" resembles nothing, and is not named; "Weight" is "weight" in another case.
      expect.stringMatching(/^model 1, deployment 3 has 2 fields that are not one of a deployment's.* It looks like a misspelling of "weight"\.$/),
    ]);
    expect(JSON.stringify(c.problems)).not.toMatch(/priorty|Weight|region/);
  });

  it('a default resource that is set but not a URL is reported once as such, and its deployments say so rather than that it is unset', () => {
    const c = loadConfig({ ...base, AZURE_OPENAI_ENDPOINT: 'your-resource', MODEL_DEPLOYMENTS: '{"m":["d1","d2"]}' });
    expect(c.problems.map((p) => [p.setting, p.message])).toEqual([
      ['AZURE_OPENAI_ENDPOINT', expect.stringContaining('is not a URL')],
      ['MODEL_DEPLOYMENTS', expect.stringContaining('AZURE_OPENAI_ENDPOINT is not a usable URL (see its own problem)')],
      ['MODEL_DEPLOYMENTS', expect.stringContaining('AZURE_OPENAI_ENDPOINT is not a usable URL (see its own problem)')],
    ]);
    expect(loadConfig({ PROXY_API_KEY: 'k', MODEL_DEPLOYMENTS: '{"m":["d1"]}' }).problems[0].message).toContain('AZURE_OPENAI_ENDPOINT is not set');
  });

  it('accepts the original design\'s AZURE_OPENAI_URL, serving its deployment under its own name', () => {
    const c = loadConfig({ PROXY_API_KEY: 'k', AZURE_OPENAI_API_KEY: 'x', AZURE_OPENAI_URL: 'https://uplyf-ai-foundry.openai.azure.com/openai/deployments/gpt-4-04-14-uplyf/chat/completions?api-version=2025-01-01-preview' });
    expect(c.problems).toEqual([]);
    expect(c.models.get('gpt-4-04-14-uplyf')![0]).toMatchObject({ endpoint: 'https://uplyf-ai-foundry.openai.azure.com', deployment: 'gpt-4-04-14-uplyf', apiVersion: '2025-01-01-preview' });
  });

  it('names the setting in every problem and never echoes a secret', () => {
    const secret = 'sk-very-secret-value';
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com', MODEL_DEPLOYMENTS: '{"m":["d"]}' }, 'PROXY_API_KEY', /not set/],
      [{ ...base, MODEL_DEPLOYMENTS: `{"m":[{"deployment":"d","apiKey":"${secret}"` }, 'MODEL_DEPLOYMENTS', /not valid JSON/],
      [{ ...base, MODEL_DEPLOYMENTS: '["d"]' }, 'MODEL_DEPLOYMENTS', /JSON object/],
      // A trailing comma: the parser gives no position, so the usual causes are named instead.
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":["d",]}' }, 'MODEL_DEPLOYMENTS', /not valid JSON \(a trailing comma, single quotes or an unquoted name are the usual causes\)/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[]}' }, 'MODEL_DEPLOYMENTS', /non-empty list/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[{"endpoint":"https://x.openai.azure.com"}]}' }, 'MODEL_DEPLOYMENTS', /no "deployment"/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[{"deployment":"d","weight":0}]}' }, 'MODEL_DEPLOYMENTS', /weight/],
      [{ ...base, MODEL_DEPLOYMENTS: `{"m":[{"deployment":"d","apikey":"${secret}"}]}` }, 'MODEL_DEPLOYMENTS', /model 1, deployment 1 has a field that is not one of a deployment's \(deployment, endpoint, apiKey, apiVersion, weight, priority; names are case-sensitive\)/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[{"deployment":"d","priority":0}]}' }, 'MODEL_DEPLOYMENTS', /model 1, deployment 1 has a "priority" that is not a whole number from 1 \(served first\) to 10/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[{"deployment":"d","priority":1.5}]}' }, 'MODEL_DEPLOYMENTS', /"priority" that is not/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[{"deployment":"d","priority":"1"}]}' }, 'MODEL_DEPLOYMENTS', /"priority" that is not/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":[{"deployment":"d","priority":11}]}' }, 'MODEL_DEPLOYMENTS', /"priority" that is not/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":{"deployments":["d"],"affinity":"user"}}' }, 'MODEL_DEPLOYMENTS', /model 1 has an "affinity" other than "prompt_cache_key"/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":{"deployment":["d"]}}' }, 'MODEL_DEPLOYMENTS', /model 1 has a field other than "deployments" and "affinity"/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":{"affinity":"prompt_cache_key"}}' }, 'MODEL_DEPLOYMENTS', /model 1 must map to a non-empty list/],
      [{ PROXY_API_KEY: 'k', MODEL_DEPLOYMENTS: '{"m":["d"]}' }, 'MODEL_DEPLOYMENTS', /AZURE_OPENAI_ENDPOINT is not set/],
      [{ ...base, AZURE_OPENAI_ENDPOINT: 'http://res.openai.azure.com', MODEL_DEPLOYMENTS: '{"m":["d"]}' }, 'AZURE_OPENAI_ENDPOINT', /https/],
      [{ ...base, AZURE_OPENAI_URL: 'https://r.openai.azure.com/chat' }, 'AZURE_OPENAI_URL', /must look like/],
      [{ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', UPSTREAM_HEADERS_TIMEOUT_MS: 'soon' }, 'UPSTREAM_HEADERS_TIMEOUT_MS', /positive whole number/],
      [{ PROXY_API_KEY: 'k' }, 'MODEL_DEPLOYMENTS', /not set/],
    ];
    for (const [env, setting, message] of cases) {
      const c = loadConfig(env);
      const p = c.problems.find((x) => x.setting === setting);
      expect(p, `${setting} for ${JSON.stringify(env)}`).toBeDefined();
      expect(p!.message).toMatch(message);
      expect(JSON.stringify(c.problems)).not.toContain(secret);
      expect(JSON.stringify(c.problems)).not.toContain('default-key');
    }
  });
  it('reports a storage connection string the Tables SDK would refuse, by what it lacks, and balances alone rather than failing to start', () => {
    const key = 'c2VjcmV0LWFjY291bnQta2V5LXZhbHVl';
    for (const [setting, conn, lacks] of [
      ['BALANCER_STORAGE_CONNECTION', `DefaultEndpointsProtocol=https;AccountName=gwstore;AccountKey=${key}`, 'EndpointSuffix'],
      ['AzureWebJobsStorage', 'SharedAccessSignature=sv=2022-11-02&sig=abc123secret', 'TableEndpoint'],
    ] as const) {
      const c = loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', [setting]: conn });
      expect(c.balancerStorage, setting).toBeUndefined();
      expect(c.problems).toEqual([{ setting, message: expect.stringContaining(`Invalid ${lacks}`) }]);
      expect(JSON.stringify(c.problems)).not.toContain(key);
      expect(JSON.stringify(c.problems)).not.toContain('abc123secret');
    }
    // A whole one is taken as it is.
    const whole = loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', BALANCER_STORAGE_CONNECTION: `DefaultEndpointsProtocol=https;AccountName=gwstore;AccountKey=${key};EndpointSuffix=core.windows.net` });
    expect(whole.problems).toEqual([]);
    expect(whole.balancerStorage).toMatchObject({ setting: 'BALANCER_STORAGE_CONNECTION' });
  });
  it('takes both of a tenant\'s token issuers for Web PubSub\'s events by default, v1 (Entra ID\'s default) and v2', () => {
    const c = loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', WEBPUBSUB_ENDPOINT: 'https://wps.webpubsub.azure.com', WEBPUBSUB_EVENT_AUDIENCE: 'api://gateway', WEBPUBSUB_EVENT_PRINCIPAL_ID: 'p', AZURE_TENANT_ID: 'tid' });
    expect(c.problems).toEqual([]);
    expect(c.webPubSub).toMatchObject({ mode: 'identity', eventIssuers: ['https://sts.windows.net/tid/', 'https://login.microsoftonline.com/tid/v2.0'] });
    const one = loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', WEBPUBSUB_ENDPOINT: 'https://wps.webpubsub.azure.com', WEBPUBSUB_EVENT_AUDIENCE: 'api://gateway', WEBPUBSUB_EVENT_PRINCIPAL_ID: 'p', WEBPUBSUB_EVENT_ISSUER: 'https://login.microsoftonline.com/tid/v2.0' });
    expect(one.webPubSub).toMatchObject({ eventIssuers: ['https://login.microsoftonline.com/tid/v2.0'] });
  });
  it('names a Key Vault reference the platform left unresolved as such, not as a malformed connection string', () => {
    const c = loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', WEBPUBSUB_CONNECTION_STRING: '@Microsoft.KeyVault(VaultName=gw-kv;SecretName=webpubsub-connection-string)' });
    expect(c.webPubSub).toBeUndefined();
    expect(c.problems).toEqual([{ setting: 'WEBPUBSUB_CONNECTION_STRING', message: expect.stringContaining('Key Vault reference the platform could not resolve') }]);
  });
  it('keeps the failover deadline under Azure Functions\' 230 s by default, or to a headers timeout set longer', () => {
    expect(loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}' }).upstreamDeadlineMs).toBe(220_000);
    expect(loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', UPSTREAM_HEADERS_TIMEOUT_MS: '300000' }).upstreamDeadlineMs).toBe(300_000);
    expect(loadConfig({ ...base, MODEL_DEPLOYMENTS: '{"m":["d"]}', UPSTREAM_HEADERS_TIMEOUT_MS: '300000', UPSTREAM_DEADLINE_MS: '100000' }).upstreamDeadlineMs).toBe(100_000);
  });
});
