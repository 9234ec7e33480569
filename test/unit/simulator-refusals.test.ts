import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';

/**
 * The simulator refuses, over real HTTP and in Azure's body shapes, what Azure
 * OpenAI refuses: operations the deployment's model does not serve, and values
 * outside what Azure's references allow. Deployment names pick the model
 * (models.ts): "chat" a chat model, "embed" text-embedding-3-small, "whisper",
 * "tts" gpt-4o-mini-tts, "image" gpt-image-1.
 */
const KEY = 'sim-refusals-key';
let sim: AzureOpenAISimulator;
beforeAll(async () => {
  sim = new AzureOpenAISimulator({ apiKey: KEY });
  installSimulatorOperations(sim);
  await sim.start();
});
afterAll(async () => sim.close());

const DATED = 'api-version=2025-04-01-preview';

function post(path: string, body: Record<string, unknown> | FormData): Promise<Response> {
  const json = !(body instanceof FormData);
  return fetch(`${sim.url}/openai/${path}`, {
    method: 'POST',
    headers: { 'api-key': KEY, ...(json ? { 'content-type': 'application/json' } : {}) },
    body: json ? JSON.stringify(body) : body,
  });
}

/** The error of a 400, after checking it is one. */
async function refusal(res: Promise<Response>): Promise<{ code: string | null; message: string; param?: string | null; type?: string }> {
  const answer = await res;
  const text = await answer.text();
  expect(answer.status, text).toBe(400);
  return JSON.parse(text).error;
}

function form(fields: Record<string, string>, file?: { name: string; bytes: Buffer; type: string; field?: string }): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  if (file) f.append(file.field ?? 'file', new Blob([new Uint8Array(file.bytes)], { type: file.type }), file.name);
  return f;
}

const audio = { name: 'a.wav', bytes: Buffer.alloc(3200, 1), type: 'audio/wav' };
const png = { name: 'a.png', bytes: Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), type: 'image/png', field: 'image' };

describe('an operation the deployment\'s model does not serve is Azure\'s OperationNotSupported', () => {
  it.each([
    ['responses on an embeddings deployment (v1)', () => post('v1/responses', { model: 'embed', input: 'x' }), 'responses', 'text-embedding-3-small'],
    ['responses on a whisper deployment (deployment form)', () => post(`deployments/whisper/responses?${DATED}`, { input: 'x' }), 'responses', 'whisper'],
    ['images/generations on a chat deployment', () => post('v1/images/generations', { model: 'gpt-4o-mini', prompt: 'x' }), 'imageGenerations', 'gpt-4o'],
    ['images/edits on a chat deployment', () => post(`deployments/chat/images/edits?${DATED}`, form({ prompt: 'x' }, png)), 'imageEdits', 'gpt-4o'],
    ['audio/transcriptions on a chat deployment', () => post(`deployments/gpt-4o-mini/audio/transcriptions?${DATED}`, form({}, audio)), 'audioTranscription', 'gpt-4o'],
    ['audio/translations on a chat deployment', () => post(`deployments/chat/audio/translations?${DATED}`, form({}, audio)), 'audioTranslation', 'gpt-4o'],
    ['audio/speech on a chat deployment', () => post(`deployments/chat/audio/speech?${DATED}`, { input: 'hi', voice: 'alloy' }), 'audioSpeech', 'gpt-4o'],
  ])('%s', async (_what, send, operation, model) => {
    const error = await refusal(send());
    expect(error).toEqual({ code: 'OperationNotSupported', message: expect.stringContaining(`The ${operation} operation does not work with the specified model, ${model}.`) });
  });

  it('while the model that serves it still answers', async () => {
    expect((await post('v1/responses', { model: 'chat', input: 'x' })).status).toBe(200);
    expect((await post(`deployments/whisper/audio/transcriptions?${DATED}`, form({}, audio))).status).toBe(200);
    expect((await post('v1/audio/speech', { model: 'tts', input: 'hi', voice: 'coral', speed: 4 })).status).toBe(200);
    expect((await post('v1/images/generations', { model: 'image', prompt: 'x', size: '1536x1024' })).status).toBe(200);
    // Deployments named as people name these models are those models, not chat ones.
    expect((await post(`deployments/gpt-4o-mini-transcribe/audio/transcriptions?${DATED}`, form({}, audio))).status).toBe(200);
    expect((await post('v1/images/generations', { model: 'dall-e-3', prompt: 'x', size: '1792x1024' })).status).toBe(200);
    expect((await refusal(post(`deployments/dall-e-3/images/edits?${DATED}`, form({ prompt: 'x' }, png)))).code).toBe('OperationNotSupported');
  });
});

describe('values outside Azure\'s references are a 400 naming the parameter', () => {
  it.each([
    ['responses: previous_response_id not a string', () => post('v1/responses', { model: 'chat', input: 'x', previous_response_id: 123 }), 'previous_response_id', 'invalid_type', /expected a string, but got an integer/],
    ['responses: stream not a boolean', () => post('v1/responses', { model: 'chat', input: 'x', stream: 'yes' }), 'stream', 'invalid_type', /expected a boolean, but got a string/],
    ['responses: store not a boolean', () => post(`responses?${DATED}`, { model: 'chat', input: 'x', store: 'no' }), 'store', 'invalid_type', /expected a boolean/],
    ['responses: background not a boolean', () => post('v1/responses', { model: 'chat', input: 'x', background: 1 }), 'background', 'invalid_type', /expected a boolean, but got an integer/],
    ['images: a size gpt-image-1 does not make', () => post('v1/images/generations', { model: 'image', prompt: 'x', size: '13x13' }), 'size', 'invalid_value', /'13x13'.*'1024x1024', '1024x1536', '1536x1024'/],
    ['images: size auto, not among Azure\'s documented sizes', () => post('v1/images/generations', { model: 'image', prompt: 'x', size: 'auto' }), 'size', 'invalid_value', /'auto'/],
    ['image edits: a size gpt-image-1 does not make', () => post(`deployments/image/images/edits?${DATED}`, form({ prompt: 'x', size: '13x13' }, png)), 'size', 'invalid_value', /'13x13'/],
    ['images: partial_images above 3', () => post('v1/images/generations', { model: 'image', prompt: 'x', stream: true, partial_images: 4 }), 'partial_images', 'invalid_value', /between 0 and 3/],
    ['images: stream not a boolean', () => post('v1/images/generations', { model: 'image', prompt: 'x', stream: 'yes' }), 'stream', 'invalid_type', /expected a boolean/],
    ['image edits: stream', () => post(`deployments/image/images/edits?${DATED}`, form({ prompt: 'x', stream: 'true' }, png)), 'stream', 'invalid_value', /not supported for image edits/],
    ['transcriptions: an unknown response_format', () => post(`deployments/whisper/audio/transcriptions?${DATED}`, form({ response_format: 'bogus' }, audio)), 'response_format', 'invalid_value', /'bogus'.*'json', 'text', 'srt', 'verbose_json', 'vtt'/],
    ['transcriptions: a temperature that is not a number', () => post(`deployments/whisper/audio/transcriptions?${DATED}`, form({ temperature: 'abc' }, audio)), 'temperature', 'invalid_type', /expected a number/],
    ['translations: a temperature above 1', () => post(`deployments/whisper/audio/translations?${DATED}`, form({ temperature: '2' }, audio)), 'temperature', 'invalid_value', /between 0 and 1/],
    ['speech: no voice', () => post('v1/audio/speech', { model: 'tts', input: 'hi' }), 'voice', 'missing_required_parameter', /Missing required parameter: 'voice'/],
    ['speech: a voice that does not exist', () => post('v1/audio/speech', { model: 'tts', input: 'hi', voice: 'nobody' }), 'voice', 'invalid_value', /'nobody'.*'alloy'/],
    ['speech: speed above 4.0', () => post('v1/audio/speech', { model: 'tts', input: 'hi', voice: 'alloy', speed: 100 }), 'speed', 'decimal_above_max_value', /<= 4\.0, but got 100/],
    ['speech: speed below 0.25', () => post('v1/audio/speech', { model: 'tts', input: 'hi', voice: 'alloy', speed: 0.1 }), 'speed', 'decimal_below_min_value', />= 0\.25/],
    ['speech: speed not a number', () => post('v1/audio/speech', { model: 'tts', input: 'hi', voice: 'alloy', speed: 'fast' }), 'speed', 'invalid_type', /expected a number/],
    ['speech: input over 4096 characters', () => post('v1/audio/speech', { model: 'tts', input: 'a'.repeat(4097), voice: 'alloy' }), 'input', 'string_above_max_length', /maximum length 4096, but got a string with length 4097/],
    ['embeddings: encoding_format hex', () => post('v1/embeddings', { model: 'embed', input: 'x', encoding_format: 'hex' }), 'encoding_format', 'invalid_value', /'float' and 'base64'/],
    ['embeddings: dimensions below 1', () => post('v1/embeddings', { model: 'embed', input: 'x', dimensions: -1 }), 'dimensions', 'integer_below_min_value', />= 1, but got -1/],
    ['embeddings: dimensions above the model\'s 1536', () => post(`deployments/embed/embeddings?${DATED}`, { input: 'x', dimensions: 1537 }), 'dimensions', 'integer_above_max_value', /<= 1536, but got 1537/],
    ['embeddings: dimensions not an integer', () => post('v1/embeddings', { model: 'embed', input: 'x', dimensions: 1.5 }), 'dimensions', 'invalid_type', /expected an integer/],
  ])('%s', async (_what, send, param, code, message) => {
    const error = await refusal(send());
    expect(error).toMatchObject({ type: 'invalid_request_error', param, code });
    expect(error.message).toMatch(message);
  });

  it('embeddings: an empty input, alone or in an array, is Azure\'s "\'$.input\' is invalid"', async () => {
    for (const input of ['', ['a', '']]) {
      const error = await refusal(post('v1/embeddings', { model: 'embed', input }));
      expect(error).toEqual({ message: expect.stringMatching(/^'\$\.input' is invalid\./), type: 'invalid_request_error', param: null, code: null });
    }
  });

  it('embeddings: one input over 8192 tokens (the larger of words and characters / 4) is Azure\'s context-length 400', async () => {
    const error = await refusal(post('v1/embeddings', { model: 'embed', input: ['short', 'x'.repeat(32_772)] }));
    expect(error.message).toBe("This model's maximum context length is 8192 tokens, however you requested 8193 tokens (8193 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.");
    const wordy = await refusal(post('v1/embeddings', { model: 'embed', input: 'a '.repeat(8193) }));
    expect(wordy.message).toMatch(/requested 8193 tokens/);
    expect((await post('v1/embeddings', { model: 'embed', input: 'x'.repeat(32_768) })).status).toBe(200);
  });
});

describe('streamed image generation: on the v1 API as Azure documents it, refused on a dated api-version', () => {
  it('answers stream: true with partial images, then the completed image, as server-sent events the SDK reads', async () => {
    const azure = new OpenAI({ baseURL: `${sim.url}/openai/v1`, apiKey: 'unused', defaultHeaders: { 'api-key': KEY }, maxRetries: 0 });
    const stream = await azure.images.generate({ model: 'image', prompt: 'a sea otter', stream: true, partial_images: 2 });
    const events: OpenAI.Images.ImageGenStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type)).toEqual(['image_generation.partial_image', 'image_generation.partial_image', 'image_generation.completed']);
    expect(events.slice(0, 2).map((e) => (e as OpenAI.Images.ImageGenPartialImageEvent).partial_image_index)).toEqual([0, 1]);
    for (const e of events) expect(Buffer.from(e.b64_json, 'base64').subarray(1, 4).toString()).toBe('PNG');
    const completed = events[2] as OpenAI.Images.ImageGenCompletedEvent;
    expect(completed).toMatchObject({ size: '1024x1024', output_format: 'png' });
    expect(completed.usage.output_tokens).toBeGreaterThan(0);
    // The finished image is the one a whole (non-streamed) answer gives for the same prompt.
    const whole = await azure.images.generate({ model: 'image', prompt: 'a sea otter' });
    expect(completed.b64_json).toBe(whole.data![0].b64_json);
  });

  it('refuses stream: true on the dated deployment form, where no api-version documents it, rather than answering JSON', async () => {
    const error = await refusal(post(`deployments/image/images/generations?${DATED}`, { prompt: 'x', stream: true, partial_images: 1 }));
    expect(error).toEqual({ message: 'Unrecognized request argument supplied: stream', type: 'invalid_request_error', param: null, code: null });
  });
});
