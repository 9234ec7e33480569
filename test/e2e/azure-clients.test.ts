import OpenAI, { AzureOpenAI, toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { onePixelPng } from '../../src/simulator/images';
import { PROXY_KEY } from '../support/harness';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile({
  env: () => ({
    MODEL_DEPLOYMENTS: JSON.stringify({
      'gpt-4o-mini': ['chat-a', 'chat-b'],
      'text-embedding-3-small': ['embed'],
      'gpt-35-turbo-instruct': ['instruct'],
      'whisper-1': ['whisper'],
      'tts-1': ['tts'],
      'gpt-image-1': ['image'],
    }),
  }),
});

/** The AzureOpenAI client as an Azure user builds it, with the gateway as its endpoint and a gateway model as its deployment. */
const azure = (deployment?: string) => new AzureOpenAI({ endpoint: suite.h.url, apiKey: PROXY_KEY, apiVersion: '2025-04-01-preview', deployment, maxRetries: 0 });
const lastCall = () => suite.h.sim.calls.at(-1)!;

describe('AzureOpenAI clients: /openai/deployments/{model}/{operation}?api-version=', () => {
  it('chat, whole and streamed, balanced across the model\'s pool, with the proxy key as api-key', async () => {
    const client = azure('gpt-4o-mini');
    const whole = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'Hello from Azure land' }] });
    expect(whole.choices[0].message.content).toBe('Simulated reply to: Hello from Azure land');
    const first = lastCall().deployment;
    const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: 'stream it' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Simulated reply to: stream it');
    expect([first, lastCall().deployment].sort()).toEqual(['chat-a', 'chat-b']);
    const line = suite.h.logger.entries().at(-1)!;
    expect(line).toMatchObject({ route: 'chatCompletions', model: 'gpt-4o-mini', status: 200 });
  });

  it('completions, embeddings, audio and images, each reaching the deployment of the model in the path', async () => {
    expect((await azure('gpt-35-turbo-instruct').completions.create({ model: '', prompt: 'Say this' })).choices[0].text).toContain('Say this');
    expect(lastCall().deployment).toBe('instruct');
    expect((await azure('text-embedding-3-small').embeddings.create({ model: '', input: 'vector me' })).data[0].embedding).toHaveLength(1536);
    expect(lastCall().deployment).toBe('embed');
    const transcript = await azure('whisper-1').audio.transcriptions.create({ model: 'whisper-1', file: await toFile(Buffer.alloc(32_000, 1), 'talk.wav') });
    expect(transcript.text).toContain('talk.wav');
    expect(lastCall().deployment).toBe('whisper');
    const speech = await azure('tts-1').audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Say it out loud' });
    expect((await speech.arrayBuffer()).byteLength).toBeGreaterThan(0);
    expect(lastCall().deployment).toBe('tts');
    expect((await azure('gpt-image-1').images.generate({ model: 'gpt-image-1', prompt: 'a kite' })).data).toHaveLength(1);
    const edit = await azure('gpt-image-1').images.edit({ model: 'gpt-image-1', prompt: 'add a tail', image: await toFile(onePixelPng(9, 9, 9), 'kite.png', { type: 'image/png' }) });
    expect(edit.data).toHaveLength(1);
    expect(lastCall()).toMatchObject({ deployment: 'image', operation: 'images/edits' });
  });

  it('responses through the dated /openai/responses paths the AzureOpenAI client uses', async () => {
    const client = azure();
    const created = await client.responses.create({ model: 'gpt-4o-mini', input: 'Azure-style responses' });
    expect(created.output_text).toBe('Simulated reply to: Azure-style responses');
    expect((await client.responses.retrieve(created.id)).id).toBe(created.id);
    expect((await client.responses.inputItems.list(created.id)).data).toHaveLength(1);
  });

  it('an unknown model is 404 model_not_found, an unknown operation 404 unknown_url, a wrong api-key 401', async () => {
    await expect(azure('nope').chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const unknown = await suite.raw('/openai/deployments/gpt-4o-mini/fine_tuning/jobs?api-version=2025-04-01-preview', { method: 'POST', headers: { 'api-key': PROXY_KEY } });
    expect(unknown.status).toBe(404);
    expect(JSON.parse(await unknown.text()).error.code).toBe('unknown_url');
    const wrong = new AzureOpenAI({ endpoint: suite.h.url, apiKey: 'not-the-key', apiVersion: '2025-04-01-preview', deployment: 'gpt-4o-mini', maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe('OpenAI clients pointed at /openai/v1', () => {
  const v1 = () => new OpenAI({ baseURL: `${suite.h.url}/openai/v1`, apiKey: PROXY_KEY, maxRetries: 0 });

  it('chat and responses with the model in the body', async () => {
    const chat = await v1().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'v1 chat' }] });
    expect(chat.choices[0].message.content).toBe('Simulated reply to: v1 chat');
    const created = await v1().responses.create({ model: 'gpt-4o-mini', input: 'v1 responses' });
    const next = await v1().responses.create({ model: 'gpt-4o-mini', input: 'again', previous_response_id: created.id });
    expect(next.previous_response_id).toBe(created.id);
    await v1().responses.delete(created.id);
    await expect(v1().responses.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('lists each model once, whatever path the list is asked on', async () => {
    const ids = (await v1().models.list()).data.map((m) => m.id);
    expect(ids).toEqual([...new Set(ids)]);
    expect(ids.sort()).toEqual((await suite.h.client.models.list()).data.map((m) => m.id).sort());
    const dated = await suite.raw('/openai/models?api-version=2025-04-01-preview', { headers: { 'api-key': PROXY_KEY } });
    expect(JSON.parse(await dated.text()).data.map((m: { id: string }) => m.id).sort()).toEqual(ids);
  });
});
