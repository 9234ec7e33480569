import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedUpload } from '../../src/simulator/audio';
import { AZURE_KEY, Harness, PROXY_KEY, startHarness } from '../support/harness';
import { GatewayChild, startGatewayChild } from '../support/gateway-process';

let h: Harness;
const LIMIT = 1024 * 1024;

beforeAll(async () => {
  h = await startHarness({ env: () => ({ MAX_AUDIO_FILE_BYTES: String(LIMIT) }) });
});
afterAll(async () => h.close());

function audioBytes(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const lastUpload = () => (h.sim.calls.at(-1) as unknown as { upload: ReceivedUpload }).upload;

describe('audio transcription and translation through the openai SDK', () => {
  const file = audioBytes(200_000);

  it('returns what Azure returns in every response_format', async () => {
    const json = await h.client.audio.transcriptions.create({ file: await toFile(file, 'speech.mp3'), model: 'whisper-1' });
    expect(json.text).toContain('speech.mp3 (200000 bytes');
    const text = await h.client.audio.transcriptions.create({ file: await toFile(file, 'speech.mp3'), model: 'whisper-1', response_format: 'text' });
    expect(text).toMatch(/^Simulated transcript of speech\.mp3/);
    const srt = await h.client.audio.transcriptions.create({ file: await toFile(file, 'speech.mp3'), model: 'whisper-1', response_format: 'srt' });
    expect(srt).toMatch(/^1\n00:00:00,000 --> /);
    const vtt = await h.client.audio.transcriptions.create({ file: await toFile(file, 'speech.mp3'), model: 'whisper-1', response_format: 'vtt' });
    expect(vtt).toMatch(/^WEBVTT/);
    const verbose = await h.client.audio.transcriptions.create({
      file: await toFile(file, 'speech.mp3'), model: 'whisper-1', response_format: 'verbose_json', timestamp_granularities: ['word', 'segment'],
    });
    expect(verbose.segments?.length).toBe(1);
    expect(verbose.words?.length).toBeGreaterThan(3);
  });

  it('forwards the same file bytes and every field the client sent', async () => {
    await h.client.audio.transcriptions.create({
      file: await toFile(file, 'meeting.wav', { type: 'audio/wav' }), model: 'whisper-1', language: 'de', prompt: 'Guten Tag', temperature: 0.2,
      response_format: 'verbose_json', timestamp_granularities: ['word', 'segment'],
    });
    const upload = lastUpload();
    expect(upload.file).toMatchObject({ field: 'file', filename: 'meeting.wav', mimeType: 'audio/wav', size: file.length, sha256: sha256(file) });
    const fields = upload.fields.map(([k, v]) => `${k}=${v}`);
    for (const f of ['model=whisper-1', 'language=de', 'prompt=Guten Tag', 'temperature=0.2', 'response_format=verbose_json', 'timestamp_granularities[]=word', 'timestamp_granularities[]=segment']) {
      expect(fields).toContain(f);
    }
  });

  it('translates too', async () => {
    const res = await h.client.audio.translations.create({ file: await toFile(file, 'fr.mp3'), model: 'whisper-1' });
    expect(res.text).toMatch(/^Simulated translation of fr\.mp3/);
    expect(h.sim.calls.at(-1)!.operation).toBe('audio/translations');
  });

  it('accepts the model field after the file', async () => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(file)]), 'late-model.mp3');
    form.append('model', 'whisper-1');
    const res = await fetch(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` }, body: form });
    expect(res.status).toBe(200);
    expect(lastUpload().file?.sha256).toBe(sha256(file));
  });

  it('the original design\'s curl -F upload works as written', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gw-audio-'));
    writeFileSync(path.join(dir, 'audio.mp3'), file);
    const { stdout } = await promisify(execFile)('curl', ['-s', '-X', 'POST', `${h.url}/v1/audio/transcriptions`, '-H', `Authorization: Bearer ${PROXY_KEY}`, '-F', 'file=@audio.mp3', '-F', 'model=whisper-1'], { cwd: dir });
    expect(JSON.parse(stdout).text).toContain('audio.mp3 (200000 bytes');
  });
});

describe('text to speech', () => {
  it('returns audio bytes with the right content type', async () => {
    const res = await h.client.audio.speech.create({ model: 'tts-1', input: 'Hello world', voice: 'alloy', response_format: 'wav' });
    expect(res.headers.get('content-type')).toBe('audio/wav');
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes.subarray(0, 4).toString()).toBe('RIFF');
    expect(bytes.readUInt32LE(40)).toBe(bytes.length - 44);
  });

  it('streams: the first bytes arrive before the simulator has sent the last', async () => {
    const release = h.sim.holdStreams();
    try {
      const res = await fetch(`${h.url}/v1/audio/speech`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tts-1', input: 'one two three four', voice: 'alloy' }) });
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(Buffer.from(first.value!).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xfb]));
      expect(h.sim.calls.at(-1)!.finished).toBe(false);
      release();
      let total = first.value!.length;
      for (let r = await reader.read(); !r.done; r = await reader.read()) total += r.value.length;
      expect(total % 417).toBe(0);
      expect(total).toBe(32 * 417);
    } finally {
      release();
    }
  });

  it('the original design\'s curl --output speech.mp3 writes a file of MPEG audio frames', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gw-tts-'));
    await promisify(execFile)('curl', ['-s', '-X', 'POST', `${h.url}/v1/audio/speech`, '-H', `Authorization: Bearer ${PROXY_KEY}`, '-H', 'Content-Type: application/json', '-d', '{\n    "model": "tts-1",\n    "input": "Hello world",\n    "voice": "alloy"\n  }', '--output', 'speech.mp3'], { cwd: dir });
    const mp3 = readFileSync(path.join(dir, 'speech.mp3'));
    expect(mp3.length).toBeGreaterThan(0);
    for (let at = 0; at < mp3.length; at += 417) expect(mp3.readUInt16BE(at)).toBe(0xfffb);
  });
});

describe('bad audio input gets a clear OpenAI-shaped error', () => {
  it('a transcription without a file is a BadRequestError naming "file"', async () => {
    const form = new FormData();
    form.append('model', 'whisper-1');
    const res = await fetch(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` }, body: form });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ param: 'file', type: 'invalid_request_error' });
  });

  it('an audio file under another field name, or a "file" sent as text, is a 400 that says how to send it', async () => {
    const before = h.sim.calls.length;
    const misnamed = new FormData();
    misnamed.append('model', 'whisper-1');
    misnamed.append('audio', new Blob([audioBytes(100)], { type: 'audio/mpeg' }), 'a.mp3');
    const res = await fetch(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` }, body: misnamed });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ param: 'file', message: 'The audio file came as the "audio" field; send it as the "file" field.' });
    const text = new FormData();
    text.append('model', 'whisper-1');
    text.append('file', 'hello');
    const asText = await fetch(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}` }, body: text });
    expect(asText.status).toBe(400);
    expect((await asText.json()).error).toMatchObject({ param: 'file', code: 'invalid_type', message: expect.stringContaining('came as text, not as a file') });
    expect(h.sim.calls.length).toBe(before);
  });

  it('a file of exactly the limit is taken, a byte more is a 413 that names the limit and its setting', async () => {
    const ok = await h.client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audioBytes(LIMIT), 'exact.mp3') });
    expect(ok.text).toBeTruthy();
    expect(h.sim.calls.at(-1)!.body.length).toBeGreaterThan(LIMIT);
    const err = await h.client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audioBytes(LIMIT + 1), 'over.mp3') }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(413);
    expect(err.message).toContain(`The uploaded file is larger than the gateway accepts: ${LIMIT} bytes (its MAX_AUDIO_FILE_BYTES setting). Send a smaller file.`);
  });

  it('an unknown model is a NotFoundError, and a JSON body a BadRequestError saying to send multipart', async () => {
    const err = await h.client.audio.transcriptions.create({ file: await toFile(audioBytes(10), 'a.mp3'), model: 'whisper-9' }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    const res = await fetch(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: '{"model":"whisper-1"}' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toContain('multipart/form-data');
  });

  it('a truncated multipart body is a 400 that says to send the complete upload', async () => {
    const body = `--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\nabcdef`;
    const res = await fetch(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'multipart/form-data; boundary=xyz' }, body });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toMatch(/complete upload/);
  });

  it('a file over the limit is refused with 413 as soon as it passes the limit, before the upload ends', async () => {
    const before = h.sim.calls.length;
    const boundary = 'big';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n`);
    const { status, body, sentWhenAnswered } = await new Promise<{ status: number; body: string; sentWhenAnswered: number }>((resolve, reject) => {
      let sent = 0;
      const req = http.request(`${h.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': `multipart/form-data; boundary=${boundary}` } }, (res) => {
        const at = sent;
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, sentWhenAnswered: at }));
      });
      req.on('error', reject);
      req.write(head);
      // Keep sending 64 KiB pieces, up to 8x the limit, unless the gateway answers first.
      const pump = () => {
        if (sent > LIMIT * 8 || req.destroyed) return;
        sent += 65536;
        if (req.write(audioBytes(65536))) setImmediate(pump);
        else req.once('drain', pump);
      };
      pump();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body).error.message).toContain(`${LIMIT} bytes`);
    expect(sentWhenAnswered).toBeLessThan(LIMIT * 8);
    expect(h.sim.calls.length).toBe(before);
  });
});

describe('an upload over the limit, to a gateway in a process of its own', () => {
  let child: GatewayChild;
  let client: OpenAI;
  beforeAll(async () => {
    child = await startGatewayChild({ PROXY_API_KEY: PROXY_KEY, AZURE_OPENAI_ENDPOINT: h.simUrl, AZURE_OPENAI_API_KEY: AZURE_KEY, MODEL_DEPLOYMENTS: JSON.stringify({ 'whisper-1': ['whisper'] }), MAX_AUDIO_FILE_BYTES: String(LIMIT), MAX_IMAGE_UPLOAD_BYTES: String(4 * LIMIT) });
    client = new OpenAI({ baseURL: `${child.url}/v1`, apiKey: PROXY_KEY, maxRetries: 0 });
  });
  afterAll(() => child.stop());

  it('is a 413 the SDK reads, however far over, not a broken connection it would send again', async () => {
    // Just over, well over, and over the largest body any route takes (refused before a byte is read).
    for (const size of [LIMIT + 1, LIMIT * 2, LIMIT * 12, LIMIT * 30]) {
      const err = await client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audioBytes(size), 'big.wav') }).catch((e) => e);
      expect(err, `${size} bytes`).toBeInstanceOf(OpenAI.APIError);
      expect(err, `${size} bytes`).not.toBeInstanceOf(OpenAI.APIConnectionError);
      expect(err.status).toBe(413);
      // Refused by its declared length, it says what the form may hold; read past the limit, that the file is too large.
      expect(err.message).toContain(size >= LIMIT * 2 ? `${LIMIT} bytes for its files (its MAX_AUDIO_FILE_BYTES setting) and 1048576 for the rest of the form` : `The uploaded file is larger than the gateway accepts: ${LIMIT} bytes`);
    }
    const ok = await client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audioBytes(1000), 'small.wav') });
    expect(ok.text).toBeTruthy();
  });
});

