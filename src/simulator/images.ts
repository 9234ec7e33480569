import { createHash } from 'node:crypto';
import http from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import { AzureOpenAISimulator, SimCall } from './server';
import { ReceivedFile, parseUpload } from './uploads';
import { countTokens } from './content';
import { SimModel } from './models';
import { AzureValidationError, invalid, missing, quotedList, typeName, unsupportedValue } from './requests';

/**
 * Azure's image operations for gpt-image-1 (azure-ai-docs how-to/dall-e.md):
 * generations take JSON, edits take multipart with the images as `image` or
 * `image[]` and an optional `mask`. Answers are always base64 (gpt-image-1
 * has no URL form), one small PNG per image whose colour comes from the
 * prompt and the input images, so a test can tell what reached Azure.
 */
export function installImages(sim: AzureOpenAISimulator): void {
  sim.handle('images/generations', generate);
  sim.handle('images/edits', edit);
}

type Json = Record<string, unknown>;

/** n is 1 to 10 for gpt-image-1; PNG or JPEG out, "WEBP … aren't supported" (dall-e.md). */
function checkOptions(get: (name: string) => unknown, model: SimModel): AzureValidationError | undefined {
  const prompt = get('prompt');
  if (typeof prompt !== 'string' || !prompt) return missing('prompt');
  const n = Number(get('n') ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 10) return invalid(`Invalid 'n': integer between 1 and 10 expected.`, 'n', 'integer_out_of_range');
  const format = get('output_format') ?? 'png';
  if (format !== 'png' && format !== 'jpeg') return invalid(`The output_format '${String(format)}' is not supported. Use png or jpeg.`, 'output_format');
  return sizeProblem(get('size'), model) ?? partialImagesProblem(get('partial_images'));
}

/** Only the model's documented sizes (models.ts); Azure's refusal is undocumented, so OpenAI's enum wording. */
function sizeProblem(size: unknown, model: SimModel): AzureValidationError | undefined {
  const sizes = model.imageSizes ?? [];
  if (size === undefined || size === null || sizes.includes(String(size))) return undefined;
  return unsupportedValue(size, quotedList(sizes), 'size');
}

/** "partial_images … a value between 0 and 3" (dall-e.md, Streaming); the refusal's wording is ours. */
function partialImagesProblem(value: unknown): AzureValidationError | undefined {
  if (value === undefined || value === null) return undefined;
  const count = Number(value);
  if (Number.isInteger(count) && count >= 0 && count <= 3) return undefined;
  return invalid(`Invalid 'partial_images': expected an integer between 0 and 3, but got ${JSON.stringify(value)} instead.`, 'partial_images', 'invalid_value');
}

/**
 * Azure documents streamed generation for gpt-image-1 only through the v1 API
 * (dall-e.md, Streaming: an OpenAI client on /openai/v1/; added in
 * MicrosoftDocs/azure-ai-docs#7049), never on a dated api-version: there it is
 * refused with Azure's answer to an argument a dated api-version does not know
 * (as for stream_options, requests.ts).
 */
function streamProblem(stream: unknown, call: SimCall): AzureValidationError | undefined {
  if (stream === undefined || stream === null || stream === false) return undefined;
  if (stream !== true) return invalid(`Invalid type for 'stream': expected a boolean, but got ${typeName(stream)} instead.`, 'stream', 'invalid_type');
  if (call.form === 'dated') return invalid('Unrecognized request argument supplied: stream');
  return undefined;
}

async function generate(sim: AzureOpenAISimulator, call: SimCall, _req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let body: Json;
  try {
    body = JSON.parse(call.body.toString('utf8'));
  } catch {
    return sim.send(call, res, 400, invalid('We could not parse the JSON body of your request.', null));
  }
  if (!sim.serves(call, res, 'imageGenerations')) return;
  const problem = checkOptions((name) => body[name], sim.modelOf(call.deployment)) ?? streamProblem(body.stream, call);
  if (problem) return sim.send(call, res, 400, problem);
  const prompt = String(body.prompt);
  const n = Number(body.n ?? 1);
  if (body.stream === true) return void (await sim.writeEvents(call, res, imageEvents(body, prompt, n)));
  sim.send(call, res, 200, images(prompt, n, []));
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
const JPEG = Buffer.from([0xff, 0xd8, 0xff]);

async function edit(sim: AzureOpenAISimulator, call: SimCall, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (!String(req.headers['content-type'] ?? '').startsWith('multipart/form-data')) {
    return sim.send(call, res, 400, invalid('Image edits take multipart/form-data.', null, 'invalid_content_type'));
  }
  let upload;
  try {
    upload = await parseUpload(call, req);
  } catch {
    return sim.send(call, res, 400, invalid('The request body is not valid multipart/form-data.', null));
  }
  if (!sim.serves(call, res, 'imageEdits')) return;
  const field = (name: string) => upload.fields.find(([k]) => k === name)?.[1];
  const problem = checkOptions(field, sim.modelOf(call.deployment)) ?? editStreamProblem(field('stream'));
  if (problem) return sim.send(call, res, 400, problem);
  // openai@7.57.0 sends one image as `image` and several as repeated `image[]` (research notes B).
  const inputs = upload.files.filter((f) => f.field === 'image' || f.field === 'image[]');
  if (inputs.length === 0) return sim.send(call, res, 400, invalid("Missing required parameter: 'image'.", 'image', 'missing_required_parameter'));
  if (inputs.length > 16) return sim.send(call, res, 400, invalid('You can provide up to 16 images.', 'image'));
  // "The input image must be … PNG or JPG" (dall-e.md): judged by the bytes, not the declared type.
  const bad = [...inputs, ...upload.files.filter((f) => f.field === 'mask')].find((f) => !isImage(f));
  if (bad) return sim.send(call, res, 400, invalid(`Invalid image file for '${bad.field}': upload a PNG or JPEG image.`, bad.field.replace('[]', ''), 'invalid_image_format'));
  sim.send(call, res, 200, images(String(field('prompt')), Number(field('n') ?? 1), inputs));
}

/** Azure documents streaming for generations only (dall-e.md): an edit asking for a stream is refused, in words of ours. */
function editStreamProblem(stream: string | undefined): AzureValidationError | undefined {
  if (stream === undefined || stream === 'false') return undefined;
  return invalid('Streaming is not supported for image edits on Azure OpenAI.', 'stream', 'invalid_value');
}

function isImage(f: ReceivedFile): boolean {
  return f.head.subarray(0, 4).equals(PNG) || f.head.subarray(0, 3).equals(JPEG);
}

/** Each image's colour, from the prompt and the input images: what reached Azure decides what comes back. */
function colours(prompt: string, n: number, inputs: readonly ReceivedFile[]): [number, number, number][] {
  const seed = createHash('sha256').update(prompt);
  for (const f of inputs) seed.update(f.sha256);
  const digest = seed.digest();
  return Array.from({ length: n }, (_, i) => [digest[i % 30], digest[(i % 30) + 1], digest[(i % 30) + 2]]);
}

function usage(prompt: string, inputs: number, outputs: number): Json {
  const textTokens = countTokens(prompt);
  const imageTokens = inputs * 65;
  return {
    input_tokens: textTokens + imageTokens,
    input_tokens_details: { image_tokens: imageTokens, text_tokens: textTokens },
    output_tokens: 272 * outputs,
    total_tokens: textTokens + imageTokens + 272 * outputs,
  };
}

function images(prompt: string, n: number, inputs: readonly ReceivedFile[]): Json {
  return {
    created: Math.floor(Date.now() / 1000),
    data: colours(prompt, n, inputs).map(([r, g, b]) => ({ b64_json: onePixelPng(r, g, b).toString('base64') })),
    usage: usage(prompt, inputs.length, n),
  };
}

/**
 * A streamed generation as OpenAI documents it (API reference, Image
 * streaming): per image, `partial_images` image_generation.partial_image
 * events (partial_image_index from 0, each a darker draft) and then
 * image_generation.completed with the image and its usage. The prompt's
 * tokens are counted once, on the first image, so the usages add up.
 */
function imageEvents(body: Json, prompt: string, n: number): string[] {
  const partials = Number(body.partial_images ?? 0);
  const settings = {
    size: body.size ?? '1024x1024', quality: body.quality ?? 'high', background: body.background ?? 'auto', output_format: body.output_format ?? 'png',
  };
  const created_at = Math.floor(Date.now() / 1000);
  const events: Json[] = [];
  colours(prompt, n, []).forEach(([r, g, b], i) => {
    for (let p = 0; p < partials; p++) {
      const f = (p + 1) / (partials + 1);
      const draft = onePixelPng(Math.round(r * f), Math.round(g * f), Math.round(b * f));
      events.push({ type: 'image_generation.partial_image', b64_json: draft.toString('base64'), created_at, ...settings, partial_image_index: p });
    }
    const done = onePixelPng(r, g, b).toString('base64');
    events.push({ type: 'image_generation.completed', b64_json: done, created_at, ...settings, usage: usage(i === 0 ? prompt : '', 0, 1) });
  });
  return events.map((e) => `event: ${e.type as string}\ndata: ${JSON.stringify(e)}\n\n`);
}

/** A valid one-pixel RGB PNG: signature, IHDR, IDAT, IEND. */
export function onePixelPng(r: number, g: number, b: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.from([0, r, g, b]))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
