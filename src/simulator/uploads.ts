import { createHash } from 'node:crypto';
import http from 'node:http';
import busboy from 'busboy';
import { SimCall } from './server';

/** One file of a multipart upload as the simulator received it: enough for a test to compare with what was sent. */
export interface ReceivedFile {
  readonly field: string;
  readonly filename: string;
  readonly mimeType: string;
  readonly size: number;
  readonly sha256: string;
  /** The first bytes, to tell an image's format by its signature. */
  readonly head: Buffer;
}

/** What the simulator received in a multipart upload, for tests to compare with what the client sent. */
export interface ReceivedUpload {
  readonly fields: [string, string][];
  /** The first file (audio takes one). */
  readonly file?: ReceivedFile;
  readonly files: ReceivedFile[];
}

/** Parses the call's multipart body and keeps what was received on the call, where tests read it. */
export async function parseUpload(call: SimCall, req: http.IncomingMessage): Promise<ReceivedUpload> {
  const fields: [string, string][] = [];
  const files: ReceivedFile[] = [];
  await new Promise<void>((resolve, reject) => {
    const bb = busboy({ headers: req.headers });
    bb.on('field', (name, value) => fields.push([name, value]));
    bb.on('file', (field, stream, info) => {
      const hash = createHash('sha256');
      let size = 0;
      let head = Buffer.alloc(0);
      stream.on('data', (c: Buffer) => {
        hash.update(c);
        if (head.length < 16) head = Buffer.concat([head, c]).subarray(0, 16);
        size += c.length;
      });
      stream.on('end', () => files.push({ field, filename: info.filename ?? '', mimeType: info.mimeType, size, sha256: hash.digest('hex'), head }));
    });
    bb.on('close', resolve);
    bb.on('error', reject);
    bb.end(call.body);
  });
  const upload = { fields, file: files[0], files };
  (call as SimCall & { upload?: ReceivedUpload }).upload = upload;
  return upload;
}
