import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { Readiness } from '../../src/gateway/readiness';

const config = loadConfig({
  PROXY_API_KEY: 'k',
  AZURE_OPENAI_ENDPOINT: 'https://main.openai.azure.com',
  AZURE_OPENAI_API_KEY: 'x',
  MODEL_DEPLOYMENTS: JSON.stringify({ a: ['d1'], b: ['d2', { deployment: 'd3', endpoint: 'https://other.openai.azure.com', apiKey: 'y' }] }),
  BALANCER_STORAGE_CONNECTION: 'UseDevelopmentStorage=true',
});

describe('readiness: what the gateway depends on, and whether it answers', () => {
  it('names each resource by the setting that names it, with its models, and storage by its setting', async () => {
    const readiness = new Readiness({
      config,
      probeUpstream: async (d) => (d.endpoint.includes('other') ? { problem: 'no such host' } : {}),
      probeStorage: async () => 'connection refused',
      now: () => 0,
    });
    expect(await readiness.problems()).toEqual([
      { setting: 'MODEL_DEPLOYMENTS', message: expect.stringMatching(/does not answer \(no such host\); requests for b fail/) },
      { setting: 'BALANCER_STORAGE_CONNECTION', message: expect.stringContaining('does not work (connection refused)') },
    ]);
    const { upstream } = await readiness.check();
    expect(upstream).toContainEqual({ setting: 'AZURE_OPENAI_ENDPOINT', models: ['a', 'b'], problem: undefined });
  });

  it('checks each resource once, with one of its deployments\' credential, naming the setting that gives it', async () => {
    const asked: string[] = [];
    const readiness = new Readiness({
      config,
      probeUpstream: async (d) => {
        asked.push(d.deployment);
        return d.endpoint.includes('other') ? { problem: 'no such host' } : { refused: 401 };
      },
      now: () => 0,
    });
    expect(await readiness.problems()).toContainEqual({ setting: 'AZURE_OPENAI_API_KEY', kind: 'credential', message: expect.stringMatching(/^is the key the gateway uses .* Azure OpenAI refused it \(401\) when the gateway checked the resource that serves a, b\.$/) });
    // One probe per resource, with the first of its deployments.
    expect(asked).toEqual(['d1', 'd3']);
  });

  it('checks each credential a resource is reached with, so a deployment\'s wrong key is found in any order, and blames only its models', async () => {
    for (const models of [{ good: ['d1'], bad: [{ deployment: 'd2', apiKey: 'wrong' }] }, { bad: [{ deployment: 'd2', apiKey: 'wrong' }], good: ['d1'] }]) {
      const readiness = new Readiness({
        config: loadConfig({ PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://main.openai.azure.com', AZURE_OPENAI_API_KEY: 'x', MODEL_DEPLOYMENTS: JSON.stringify(models) }),
        probeUpstream: async (d) => (d.apiKey === 'wrong' ? { refused: 401 } : {}),
        now: () => 0,
      });
      expect(await readiness.problems()).toEqual([{ setting: 'MODEL_DEPLOYMENTS', kind: 'credential', message: expect.stringMatching(/refused it \(401\) when the gateway checked the resource that serves bad\.$/) }]);
    }
    // A resource that does not answer is said once, for every model it serves, however many credentials reach it.
    const silent = new Readiness({
      config: loadConfig({ PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://main.openai.azure.com', AZURE_OPENAI_API_KEY: 'x', MODEL_DEPLOYMENTS: JSON.stringify({ good: ['d1'], bad: [{ deployment: 'd2', apiKey: 'wrong' }] }) }),
      probeUpstream: async () => ({ problem: 'no such host' }),
      now: () => 0,
    });
    expect(await silent.problems()).toEqual([{ setting: 'AZURE_OPENAI_ENDPOINT', message: expect.stringMatching(/requests for good, bad fail until it does\.$/) }]);

    // Two resources that fail alike are two findings, each with its own models.
    const two = new Readiness({
      config: loadConfig({ PROXY_API_KEY: 'k', MODEL_DEPLOYMENTS: JSON.stringify({ east: [{ deployment: 'e', endpoint: 'https://east.openai.azure.com', apiKey: 'a' }], west: [{ deployment: 'w', endpoint: 'https://west.openai.azure.com', apiKey: 'b' }] }) }),
      probeUpstream: async () => ({ problem: 'no answer within 5 s' }),
      now: () => 0,
    });
    expect((await two.problems()).map((p) => p.message)).toEqual([expect.stringMatching(/requests for east fail/), expect.stringMatching(/requests for west fail/)]);
  });

  it('checks at most once per interval however often it is asked (/health is public), answering from the last check while the next runs', async () => {
    let t = 0;
    let probes = 0;
    let answer: string | undefined = 'connection refused';
    const waiting: (() => void)[] = [];
    const readiness = new Readiness({
      config,
      probeUpstream: async () => {
        probes++;
        if (probes > 2) await new Promise<void>((r) => waiting.push(r));
        return { problem: answer };
      },
      now: () => t,
      intervalMs: 30_000,
    });
    await Promise.all([readiness.problems(), readiness.problems(), readiness.check()]);
    t = 29_999;
    expect(await readiness.problems()).toHaveLength(2);
    expect(probes).toBe(2);
    t = 30_000;
    answer = undefined;
    // The refresh is under way and slow: the last result comes back at once.
    expect(await readiness.problems()).toHaveLength(2);
    expect(probes).toBe(4);
    for (const r of waiting) r();
    await new Promise((r) => setImmediate(r));
    expect(await readiness.problems()).toEqual([]);
  });
});
