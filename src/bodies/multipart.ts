import { once } from 'node:events';
import busboy from 'busboy';
import { GatewayRequest } from '../core/http';
import { badRequest, clip, filesTooLarge, GatewayError, uploadTooLarge, wrongContentType } from '../core/errors';
import { bodyBroke, refuseEncoded } from './body';

/** One uploaded file, kept as the chunks it arrived in (no copy into one buffer). */
export interface UploadedFile {
  readonly field: string;
  readonly filename: string;
  readonly mimeType: string;
  readonly chunks: Buffer[];
  size: number;
}

export interface MultipartForm {
  /** Every non-file field in arrival order; repeated names (timestamp_granularities[]) repeat. */
  readonly fields: [string, string][];
  /** Every file in arrival order (image[] repeats). */
  readonly files: UploadedFile[];
}

export interface MultipartLimits {
  /** Most bytes of files in one upload, all files together. */
  readonly fileBytes: number;
  /** The setting fileBytes comes from, named when an upload passes it. */
  readonly fileSetting: string;
  readonly fieldBytes: number;
  /** Most files in one upload (default 1). */
  readonly files?: number;
  /** What to send, for messages: 'a "file" field and a "model" field'. */
  readonly expected?: string;
}

/** Room in an upload for its fields and part headers beside the file. */
const FORM_OVERHEAD_BYTES = 1024 * 1024;

/** The largest multipart body accepted for a file limit: the file, plus its form around it. */
export function multipartLimit(fileBytes: number): number {
  return fileBytes + FORM_OVERHEAD_BYTES;
}

/**
 * Reads a multipart/form-data upload with busboy. Files may come before or
 * after the other fields; an upload whose files pass the limit is refused the
 * moment they do, and the rest of the body is not read.
 */
export async function readMultipart(req: GatewayRequest, limits: MultipartLimits): Promise<MultipartForm> {
  const type = req.header('content-type');
  const expected = `Send the upload as multipart/form-data with ${limits.expected ?? 'a "file" field and a "model" field'}.`;
  const maxFiles = limits.files ?? 1;
  const tooMany = maxFiles === 1 ? 'Send one file per request.' : `Send at most ${maxFiles} files per request.`;
  if (type === undefined || !/^multipart\/form-data/i.test(type.trim())) {
    throw wrongContentType(`Content-Type ${type ? `"${clip(type.split(';')[0])}"` : 'is missing and'} is not accepted here. ${expected}`);
  }
  refuseEncoded(req);
  const tooLarge = () => filesTooLarge(limits.fileBytes, limits.fileSetting, maxFiles);
  if (Number(req.header('content-length')) > multipartLimit(limits.fileBytes)) throw uploadTooLarge(limits.fileBytes, limits.fileSetting, FORM_OVERHEAD_BYTES);
  let parser: busboy.Busboy;
  try {
    // busboy cuts a file off on reaching fileSize, one of exactly the limit too: it is given a byte more, and the count below decides.
    parser = busboy({ headers: { 'content-type': type }, limits: { fileSize: limits.fileBytes + 1, files: maxFiles, fields: 64, fieldSize: limits.fieldBytes, parts: 64 + maxFiles + 16 } });
  } catch {
    throw wrongContentType(`The multipart Content-Type has no boundary. ${expected}`);
  }

  const fields: [string, string][] = [];
  const files: UploadedFile[] = [];
  let fileBytes = 0;
  let failure: GatewayError | undefined;
  const fail = (e: GatewayError) => {
    failure ??= e;
  };

  parser.on('field', (name, value, info) => {
    if (info.valueTruncated) fail(badRequest(`The field "${clip(name)}" is longer than ${limits.fieldBytes} bytes.`, clip(name), 'field_too_long'));
    else fields.push([name, value]);
  });
  parser.on('file', (name, stream, info) => {
    const upload: UploadedFile = { field: name, filename: info.filename ?? name.replace('[]', ''), mimeType: info.mimeType, chunks: [], size: 0 };
    files.push(upload);
    stream.on('data', (chunk: Buffer) => {
      fileBytes += chunk.length;
      if (fileBytes > limits.fileBytes) {
        stream.resume();
        return fail(tooLarge());
      }
      upload.chunks.push(chunk);
      upload.size += chunk.length;
    });
    stream.on('limit', () => fail(tooLarge()));
    // A cut-off body errors the file stream as well as the parser; the parser's error reports it.
    stream.on('error', () => {});
  });
  parser.on('filesLimit', () => fail(badRequest(tooMany, 'file', 'too_many_files')));
  parser.on('fieldsLimit', () => fail(badRequest('The upload has too many fields.', null, 'too_many_fields')));
  parser.on('partsLimit', () => fail(badRequest('The upload has too many parts.', null, 'too_many_parts')));
  const closed = new Promise<void>((resolve) => {
    parser.on('close', resolve);
    parser.on('error', () => {
      fail(badRequest('The multipart body is malformed or ended early. Send the complete upload.', null, 'invalid_multipart'));
      resolve();
    });
  });

  try {
    for await (const chunk of req.body) {
      if (failure) break;
      if (!parser.write(chunk)) await Promise.race([once(parser, 'drain'), closed]);
    }
  } catch (err) {
    throw bodyBroke(err);
  }
  if (failure) throw failure;
  parser.end();
  await closed;
  if (failure) throw failure;
  return { fields, files };
}

export function fieldValue(form: MultipartForm, name: string): string | undefined {
  return form.fields.find(([n]) => n === name)?.[1];
}

/**
 * The form as a multipart body for Azure, as a list of buffers that reuses the
 * uploaded chunks; `replace` swaps field values (the v1 form's model).
 */
export function encodeMultipart(form: MultipartForm, boundary: string, replace: Record<string, string> = {}): Buffer[] {
  const parts: Buffer[] = [];
  for (const [name, value] of form.fields) {
    const v = Object.hasOwn(replace, name) ? replace[name] : value;
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"\r\n\r\n${v}\r\n`));
  }
  for (const f of form.files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${quote(f.field)}"; filename="${quote(f.filename)}"\r\nContent-Type: ${f.mimeType.replace(/[\r\n]/g, '')}\r\n\r\n`));
    parts.push(...f.chunks);
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return parts;
}

function quote(s: string): string {
  return s.replace(/[\r\n]/g, ' ').replace(/"/g, '%22');
}
