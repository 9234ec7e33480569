import { requestModel } from '../bodies/body';
import { fieldValue, readMultipart } from '../bodies/multipart';
import { badRequest } from '../core/errors';
import { Handler } from '../gateway/route';
import { jsonOperation } from './json-operation';
import { forwardUpload } from './uploads';

/** POST /v1/images/generations: JSON in, base64 images out, as Azure sends them. */
export const imageGenerations: Handler = jsonOperation('images/generations');

/** Azure's gpt-image-1 takes up to 16 input images (azure-ai-docs how-to/dall-e.md), plus a mask. */
const MAX_IMAGES = 16;

/**
 * POST /v1/images/edits: the images (one as `image`, several as `image[]`, as
 * the openai SDK sends them), an optional `mask` and every other field,
 * passed on whole; all files together stay within MAX_IMAGE_UPLOAD_BYTES.
 */
export const imageEdits: Handler = async (req, gateway, ctx) => {
  const form = await readMultipart(req, {
    fileBytes: gateway.config.maxImageUploadBytes,
    fileSetting: 'MAX_IMAGE_UPLOAD_BYTES',
    fieldBytes: 256 * 1024,
    files: MAX_IMAGES + 1,
    expected: 'the image as an "image" file (several as "image[]"), a "prompt" and a "model" field',
  });
  const model = requestModel(req, { model: fieldValue(form, 'model') });
  const images = form.files.filter((f) => f.field === 'image' || f.field === 'image[]');
  if (images.length === 0) throw badRequest('No image was uploaded. Send it as the "image" file field (several as "image[]").', 'image', 'missing_required_parameter');
  if (images.length > MAX_IMAGES) throw badRequest(`Send at most ${MAX_IMAGES} images.`, 'image', 'too_many_files');
  const empty = form.files.find((f) => f.size === 0);
  if (empty) throw badRequest(`The uploaded file "${empty.filename}" is empty.`, empty.field.replace('[]', ''), 'empty_file');
  return forwardUpload(req, gateway, ctx, model, 'images/edits', form);
};
