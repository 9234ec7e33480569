import { modelRewriter } from '../bodies/json-model';
import { usesModelField } from '../azure-openai/wire';
import { readJsonObject, requestModel } from '../bodies/body';
import { badRequest, clip } from '../core/errors';
import { fieldValue, readMultipart } from '../bodies/multipart';
import { Handler } from '../gateway/route';
import { forward, passThrough } from './forward';
import { forwardUpload } from './uploads';
import { estimateTokens } from '../limits/estimate';

/** Transcription and translation: the client's multipart upload, passed on whole (see forwardUpload). */
export function audioUpload(operation: 'audio/transcriptions' | 'audio/translations'): Handler {
  return async (req, gateway, ctx) => {
    const form = await readMultipart(req, { fileBytes: gateway.config.maxAudioFileBytes, fileSetting: 'MAX_AUDIO_FILE_BYTES', fieldBytes: 256 * 1024 });
    const model = requestModel(req, { model: fieldValue(form, 'model') });
    const file = form.files[0];
    if (file === undefined) {
      // A "file" part without a filename is text to a multipart reader, and so to Azure.
      if (fieldValue(form, 'file') !== undefined) throw badRequest('The "file" field came as text, not as a file: send the audio as a file part with a filename (curl: -F file=@audio.mp3).', 'file', 'invalid_type');
      throw badRequest('No audio file was uploaded. Send it as the "file" field.', 'file', 'missing_required_parameter');
    }
    // Azure reads the audio from "file" alone: under any other name the upload would fail there, in Azure's words.
    if (file.field !== 'file') throw badRequest(`The audio file came as the "${clip(file.field)}" field; send it as the "file" field.`, 'file', 'missing_required_parameter');
    if (file.size === 0) throw badRequest('The uploaded audio file is empty.', 'file', 'empty_file');
    return forwardUpload(req, gateway, ctx, model, operation, form);
  };
}

/** Text to speech: the audio bytes stream back as Azure sends them. */
export const audioSpeech: Handler = async (req, gateway, ctx) => {
  const { raw, value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  const model = requestModel(req, value);
  const withModel = modelRewriter(raw);
  if (typeof value.input !== 'string' || value.input.length === 0) throw badRequest('You must provide the text to speak as "input".', 'input', 'missing_required_parameter');
  return forward(req, gateway, ctx, model, {
    operation: 'audio/speech',
    contentType: 'application/json',
    accept: '*/*',
    estimate: estimateTokens(raw, value),
    body: (d) => (usesModelField(d) ? withModel(d.deployment) : raw),
    respond: (reply) => passThrough(reply, ctx, false),
  });
};
