import { afterEach, describe, expect, it } from 'vitest';
import type { TokenCredential } from '@azure/core-auth';
import { Harness, startHarness } from '../support/harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const ask = (harness: Harness, model: string) =>
  harness.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });

describe('upstream forms and credentials', () => {
  it('a deployment with apiVersion "v1" is called on /openai/v1 with the deployment as the model', async () => {
    h = await startHarness({ env: (sim) => ({ MODEL_DEPLOYMENTS: JSON.stringify({ 'my-model': [{ deployment: 'dep-v1', endpoint: sim, apiKey: 'azure-key-4f8a1c2e9b7d', apiVersion: 'v1' }] }) }) });
    const res = await ask(h, 'my-model');
    expect(res.choices[0].message.content).toContain('hi');
    const call = h.sim.calls.at(-1)!;
    expect(call.form).toBe('v1');
    expect(call.deployment).toBe('dep-v1');
    expect(JSON.parse(call.body.toString()).model).toBe('dep-v1');
  });

  it('the original AZURE_OPENAI_URL setting alone serves its deployment', async () => {
    h = await startHarness({ env: (sim) => ({ MODEL_DEPLOYMENTS: '', AZURE_OPENAI_ENDPOINT: '', AZURE_OPENAI_URL: `${sim}/openai/deployments/gpt-4-04-14-uplyf/chat/completions?api-version=2025-01-01-preview` }) });
    await ask(h, 'gpt-4-04-14-uplyf');
    expect(h.sim.calls.at(-1)).toMatchObject({ deployment: 'gpt-4-04-14-uplyf', apiVersion: '2025-01-01-preview', form: 'dated' });
  });

  it('without AZURE_OPENAI_API_KEY it sends an Entra ID token for the Cognitive Services scope, reused across requests', async () => {
    const scopes: string[] = [];
    let issued = 0;
    const credential: TokenCredential = {
      async getToken(scope) {
        scopes.push(...[scope].flat());
        return { token: `token-${++issued}`, expiresOnTimestamp: Date.now() + 3600_000 };
      },
    };
    h = await startHarness({
      simulator: { apiKey: undefined, verifyToken: (t) => t.startsWith('token-') },
      env: () => ({ AZURE_OPENAI_API_KEY: '' }),
      deps: { credential },
    });
    await ask(h, 'gpt-4o-mini');
    await ask(h, 'gpt-4o-mini');
    expect(scopes).toEqual(['https://cognitiveservices.azure.com/.default']);
    expect(h.sim.calls.map((c) => [c.auth, c.bearer])).toEqual([['bearer', 'token-1'], ['bearer', 'token-1']]);
  });
});

describe('one deployment name on several models', () => {
  it('each model reaches the deployment in its own form, whatever the other model uses', async () => {
    // A URL cache keyed by endpoint and name alone once sent model "b" to the v1 form of model "a".
    h = await startHarness({ env: () => ({ MODEL_DEPLOYMENTS: JSON.stringify({ a: [{ deployment: 'd', apiVersion: 'v1' }], b: ['d'] }) }) });
    await ask(h, 'a');
    await ask(h, 'b');
    await ask(h, 'a');
    expect(h.sim.calls.map((c) => c.form)).toEqual(['v1', 'dated', 'v1']);
  });
});
