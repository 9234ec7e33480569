import { randomBytes } from 'node:crypto';
import { usesModelField } from '../azure-openai/wire';
import { readJsonObject, requireModel } from '../bodies/body';
import { badRequest } from '../core/errors';
import { encodeMultipart, fieldValue, readMultipart } from '../bodies/multipart';
import { Handler } from '../gateway/route';
import { forward, passThrough } from './forward';

/**
 * Transcription and translation: the client's multipart upload, every field
 * kept, re-encoded once for Azure (the file's chunks are reused, not copied)
 * and replayed as is if a deployment fails over.
 */
export function audioUpload(operation: 'audio/transcriptions' | 'audio/translations'): Handler {
  return async (req, gateway, ctx) => {
    const form = await readMultipart(req, { fileBytes: gateway.config.maxAudioFileBytes, fieldBytes: 256 * 1024 });
    const model = requireModel({ model: fieldValue(form, 'model') });
    if (form.file === undefined) throw badRequest('No audio file was uploaded. Send it as the "file" field.', 'file', 'missing_required_parameter');
    if (form.file.size === 0) throw badRequest('The uploaded audio file is empty.', 'file', 'empty_file');
    const boundary = `gateway-${randomBytes(12).toString('hex')}`;
    const plain = encodeMultipart(form, boundary);
    return forward(req, gateway, ctx, model, {
      operation,
      contentType: `multipart/form-data; boundary=${boundary}`,
      body: (d) => (usesModelField(d) ? encodeMultipart(form, boundary, { model: d.deployment }) : plain),
      respond: (reply) => passThrough(reply, ctx),
    });
  };
}

/** Text to speech: the audio bytes stream back as Azure sends them. */
export const audioSpeech: Handler = async (req, gateway, ctx) => {
  const { raw, value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  const model = requireModel(value);
  if (typeof value.input !== 'string' || value.input.length === 0) throw badRequest('You must provide the text to speak as "input".', 'input', 'missing_required_parameter');
  return forward(req, gateway, ctx, model, {
    operation: 'audio/speech',
    contentType: 'application/json',
    accept: '*/*',
    body: (d) => (usesModelField(d) ? Buffer.from(JSON.stringify({ ...value, model: d.deployment })) : raw),
    respond: (reply) => passThrough(reply, ctx, false),
  });
};
