import { createHash } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { onePixelPng } from '../../src/simulator/images';
import type { ReceivedUpload } from '../../src/simulator/uploads';
import { AZURE_KEY } from '../support/harness';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const lastUpload = (sim: AzureOpenAISimulator) => (sim.calls.at(-1) as unknown as { upload: ReceivedUpload }).upload;

describe('the simulator serves images as Azure does', () => {
  let sim: AzureOpenAISimulator;
  let azure: OpenAI;
  beforeAll(async () => {
    sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
    installSimulatorOperations(sim);
    await sim.start();
    azure = new OpenAI({ baseURL: `${sim.url}/openai/v1`, apiKey: 'unused', defaultHeaders: { 'api-key': AZURE_KEY }, maxRetries: 0 });
  });
  afterAll(async () => sim.close());

  it('generates n base64 PNGs with usage, on the dated and the v1 form', async () => {
    const res = await azure.images.generate({ model: 'gpt-image-1', prompt: 'a lighthouse at dusk', n: 2 });
    expect(res.data).toHaveLength(2);
    expect(Buffer.from(res.data![0].b64_json!, 'base64').subarray(1, 4).toString()).toBe('PNG');
    expect(res.usage?.total_tokens).toBeGreaterThan(0);
    const dated = await fetch(`${sim.url}/openai/deployments/gpt-image-1/images/generations?api-version=2025-04-01-preview`, {
      method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x' }),
    });
    expect(dated.status).toBe(200);
  });

  it('edits from `image` or `image[]` uploads, refusing what is not PNG or JPEG', async () => {
    const a = onePixelPng(1, 2, 3);
    const b = onePixelPng(4, 5, 6);
    await azure.images.edit({ model: 'gpt-image-1', prompt: 'paint it', image: await toFile(a, 'a.png', { type: 'image/png' }) });
    expect(lastUpload(sim).files.map((f) => [f.field, f.sha256])).toEqual([['image', sha256(a)]]);
    await azure.images.edit({ model: 'gpt-image-1', prompt: 'paint both', image: [await toFile(a, 'a.png', { type: 'image/png' }), await toFile(b, 'b.png', { type: 'image/png' })] });
    expect(lastUpload(sim).files.map((f) => [f.field, f.sha256])).toEqual([['image[]', sha256(a)], ['image[]', sha256(b)]]);
    const err = await azure.images.edit({ model: 'gpt-image-1', prompt: 'x', image: await toFile(Buffer.from('not an image'), 'a.png', { type: 'image/png' }) }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('a blocked prompt gets Azure\'s image content-filter error', async () => {
    sim.setBehaviour('gpt-image-1', { mode: 'block', times: 1 });
    const res = await fetch(`${sim.url}/openai/v1/images/generations`, {
      method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-image-1', prompt: 'x' }),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('contentFilter');
  });
});
