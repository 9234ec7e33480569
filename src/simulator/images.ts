import { createHash } from 'node:crypto';
import http from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import { AzureOpenAISimulator, SimCall } from './server';
import { ReceivedFile, parseUpload } from './uploads';
import { countTokens } from './content';

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

const invalid = (message: string, param: string | null, code: string | null = null) =>
  ({ error: { message, type: 'invalid_request_error', param, code } });

/** n is 1 to 10 for gpt-image-1; PNG or JPEG out, "WEBP … aren't supported" (dall-e.md). */
function checkOptions(get: (name: string) => unknown): Json | undefined {
  const prompt = get('prompt');
  if (typeof prompt !== 'string' || !prompt) return invalid("Missing required parameter: 'prompt'.", 'prompt', 'missing_required_parameter');
  const n = Number(get('n') ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 10) return invalid(`Invalid 'n': integer between 1 and 10 expected.`, 'n', 'integer_out_of_range');
  const format = get('output_format') ?? 'png';
  if (format !== 'png' && format !== 'jpeg') return invalid(`The output_format '${String(format)}' is not supported. Use png or jpeg.`, 'output_format');
  return undefined;
}

function generate(sim: AzureOpenAISimulator, call: SimCall, _req: http.IncomingMessage, res: http.ServerResponse): void {
  let body: Json;
  try {
    body = JSON.parse(call.body.toString('utf8'));
  } catch {
    return sim.send(call, res, 400, invalid('We could not parse the JSON body of your request.', null));
  }
  const problem = checkOptions((name) => body[name]);
  if (problem) return sim.send(call, res, 400, problem);
  sim.send(call, res, 200, images(String(body.prompt), Number(body.n ?? 1), []));
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
  const field = (name: string) => upload.fields.find(([k]) => k === name)?.[1];
  const problem = checkOptions(field);
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

function isImage(f: ReceivedFile): boolean {
  return f.head.subarray(0, 4).equals(PNG) || f.head.subarray(0, 3).equals(JPEG);
}

function images(prompt: string, n: number, inputs: readonly ReceivedFile[]): Json {
  const seed = createHash('sha256').update(prompt);
  for (const f of inputs) seed.update(f.sha256);
  const digest = seed.digest();
  const textTokens = countTokens(prompt);
  const imageTokens = inputs.length * 65;
  return {
    created: Math.floor(Date.now() / 1000),
    data: Array.from({ length: n }, (_, i) => ({ b64_json: onePixelPng(digest[i % 30], digest[(i % 30) + 1], digest[(i % 30) + 2]).toString('base64') })),
    usage: {
      input_tokens: textTokens + imageTokens,
      input_tokens_details: { image_tokens: imageTokens, text_tokens: textTokens },
      output_tokens: 272 * n,
      total_tokens: textTokens + imageTokens + 272 * n,
    },
  };
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
