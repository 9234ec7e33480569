import { createHash } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { onePixelPng } from '../../src/simulator/images';
import type { ReceivedUpload } from '../../src/simulator/uploads';
import { AZURE_KEY, PROXY_KEY, eventually } from '../support/harness';
import { harnessForFile } from '../support/suite';

const LIMIT = 2_000_000;
const suite = harnessForFile({
  env: (sim) => ({
    MAX_IMAGE_UPLOAD_BYTES: String(LIMIT),
    // Image uploads have their own limit, above what JSON bodies and audio files may take.
    MAX_REQUEST_BODY_BYTES: '10000',
    MAX_AUDIO_FILE_BYTES: '1000',
    MODEL_DEPLOYMENTS: JSON.stringify({
      'gpt-image-1': ['img-a', 'img-b'],
      'image-v1': [{ deployment: 'img-v1', endpoint: sim, apiKey: AZURE_KEY, apiVersion: 'v1' }],
    }),
  }),
});
const png = (seed: number) => onePixelPng(seed, seed + 1, seed + 2);

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

describe('images through the gateway, with the openai SDK', () => {
  it('generates images on the deployment form, the images and their usage passed back', async () => {
    const { data, response } = await suite.h.client.images.generate({ model: 'gpt-image-1', prompt: 'a red bicycle', n: 2, size: '1024x1024' }).withResponse();
    expect(data.data).toHaveLength(2);
    expect(Buffer.from(data.data![0].b64_json!, 'base64').subarray(1, 4).toString()).toBe('PNG');
    const call = suite.h.sim.calls.at(-1)!;
    expect(call).toMatchObject({ form: 'dated', operation: 'images/generations' });
    expect(JSON.parse(call.body.toString())).toMatchObject({ prompt: 'a red bicycle', n: 2, size: '1024x1024' });
    const line = suite.h.logger.entries().find((e) => e.requestId === response.headers.get('x-request-id'))!;
    expect(line).toMatchObject({ route: 'imageGenerations', status: 200, usage: { total_tokens: data.usage!.total_tokens } });
  });

  it('streams a generation on the v1 form, partial images then the image, its usage counted; the dated form refuses the stream as Azure does', async () => {
    const { data: stream, response } = await suite.h.client.images.generate({ model: 'image-v1', prompt: 'a red bicycle', stream: true, partial_images: 2 }).withResponse();
    const events: OpenAI.Images.ImageGenStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type)).toEqual(['image_generation.partial_image', 'image_generation.partial_image', 'image_generation.completed']);
    expect(events.map((e) => (e as { partial_image_index?: number }).partial_image_index)).toEqual([0, 1, undefined]);
    const done = events.at(-1) as OpenAI.Images.ImageGenCompletedEvent;
    expect(Buffer.from(done.b64_json, 'base64').subarray(1, 4).toString()).toBe('PNG');
    await eventually(() => suite.h.logger.entries().some((e) => e.requestId === response.headers.get('x-request-id')), 2000, 'the stream\'s log line');
    const line = suite.h.logger.entries().find((e) => e.requestId === response.headers.get('x-request-id'))!;
    expect(line).toMatchObject({ route: 'imageGenerations', status: 200, usage: { total_tokens: done.usage.total_tokens } });
    const dated = await suite.h.client.images.generate({ model: 'gpt-image-1', prompt: 'a red bicycle', stream: true }).catch((e) => e);
    expect(dated).toBeInstanceOf(OpenAI.BadRequestError);
    expect(dated.message).toContain('Unrecognized request argument supplied: stream');
  });

  it('edits from one `image`, or several `image[]` and a mask, every file and field arriving as sent', async () => {
    await suite.h.client.images.edit({ model: 'gpt-image-1', prompt: 'add a hat', image: await toFile(png(1), 'cat.png', { type: 'image/png' }) });
    const one = lastUpload(suite.h.sim);
    expect(one.files.map((f) => [f.field, f.filename, f.sha256])).toEqual([['image', 'cat.png', sha256(png(1))]]);
    expect(one.fields).toContainEqual(['prompt', 'add a hat']);

    const res = await suite.h.client.images.edit({
      model: 'image-v1', prompt: 'both', n: 2,
      image: [await toFile(png(1), 'a.png', { type: 'image/png' }), await toFile(png(2), 'b.png', { type: 'image/png' })],
      mask: await toFile(png(3), 'mask.png', { type: 'image/png' }),
    });
    expect(res.data).toHaveLength(2);
    const several = lastUpload(suite.h.sim);
    expect(several.files.map((f) => `${f.field} ${f.sha256}`).sort()).toEqual([`image[] ${sha256(png(1))}`, `image[] ${sha256(png(2))}`, `mask ${sha256(png(3))}`].sort());
    // The GA v1 form names the deployment in the model field.
    expect(several.fields).toContainEqual(['model', 'img-v1']);
    expect(suite.h.sim.calls.at(-1)!.form).toBe('v1');
  });

  it('takes an upload within MAX_IMAGE_UPLOAD_BYTES however small the other limits are', async () => {
    const large = Buffer.concat([png(4), Buffer.alloc(1_500_000)]);
    await suite.h.client.images.edit({ model: 'gpt-image-1', prompt: 'large', image: await toFile(large, 'large.png', { type: 'image/png' }) });
    expect(lastUpload(suite.h.sim).files[0].sha256).toBe(sha256(large));
  });

  it('refuses uploads past MAX_IMAGE_UPLOAD_BYTES with 413, and an edit without an image with 400', async () => {
    const big = Buffer.concat([png(1), Buffer.alloc(LIMIT)]);
    const tooBig = await suite.h.client.images.edit({ model: 'gpt-image-1', prompt: 'x', image: await toFile(big, 'big.png', { type: 'image/png' }) }).catch((e) => e);
    expect(tooBig.status).toBe(413);
    const form = new FormData();
    form.append('model', 'gpt-image-1');
    form.append('prompt', 'no image');
    const res = await suite.raw('/v1/images/edits', { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` }, body: form });
    expect(res.status).toBe(400);
    expect(JSON.parse(await res.text()).error).toMatchObject({ param: 'image', code: 'missing_required_parameter' });
  });

  it('an image blocked by Azure\'s content filter is OpenAI\'s 400 content_filter with a plain message', async () => {
    for (const d of ['img-a', 'img-b']) suite.h.sim.setBehaviour(d, { mode: 'block', times: 1 });
    const err = await suite.h.client.images.generate({ model: 'gpt-image-1', prompt: 'something blocked' }).catch((e) => e);
    for (const d of ['img-a', 'img-b']) suite.h.sim.setBehaviour(d, { mode: 'ok' });
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.error.code).toBe('content_filter');
    expect(err.message).not.toContain('safety system');
  });
});
