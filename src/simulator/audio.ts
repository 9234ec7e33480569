import http from 'node:http';
import { AzureOpenAISimulator, SimCall } from './server';
import { ReceivedUpload, parseUpload } from './uploads';
import { SimModel } from './models';
import { AzureValidationError, decimalRangeProblem, invalid, missing, quotedList, unsupportedValue } from './requests';

export type { ReceivedUpload } from './uploads';

const SPEECH_TYPES: Record<string, string> = {
  mp3: 'audio/mpeg', opus: 'audio/opus', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm',
};

/** Adds Azure's audio operations to a simulator. */
export function installAudio(sim: AzureOpenAISimulator): void {
  sim.handle('audio/transcriptions', (s, call, req, res) => transcribe(s, call, req, res, 'transcribe'));
  sim.handle('audio/translations', (s, call, req, res) => transcribe(s, call, req, res, 'translate'));
  sim.handle('audio/speech', speak);
}

async function transcribe(sim: AzureOpenAISimulator, call: SimCall, req: http.IncomingMessage, res: http.ServerResponse, task: 'transcribe' | 'translate'): Promise<void> {
  let upload: ReceivedUpload;
  try {
    upload = await parseUpload(call, req);
  } catch {
    return sim.send(call, res, 400, { error: { code: 'invalidPayload', message: 'The request body is not valid multipart/form-data.' } });
  }
  if (!sim.serves(call, res, task === 'translate' ? 'audioTranslation' : 'audioTranscription')) return;
  if (!upload.file) return sim.send(call, res, 400, { error: { code: 'invalidPayload', message: "Missing required 'file' field." } });
  const field = (n: string) => upload.fields.filter(([k]) => k === n).map(([, v]) => v);
  const problem = transcriptFormatProblem(field('response_format')[0]) ?? temperatureProblem(field('temperature')[0]);
  if (problem) return sim.send(call, res, 400, problem);
  const text = `Simulated ${task === 'translate' ? 'translation' : 'transcript'} of ${upload.file.filename} (${upload.file.size} bytes, sha256 ${upload.file.sha256.slice(0, 12)}).`;
  const format = field('response_format')[0] ?? 'json';
  const duration = Math.max(1, Math.round(upload.file.size / 16000));
  call.status = 200;
  switch (format) {
    case 'text':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end(`${text}\n`);
    case 'srt':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end(`1\n00:00:00,000 --> 00:00:${String(duration).padStart(2, '0')},000\n${text}\n\n`);
    case 'vtt':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end(`WEBVTT\n\n00:00:00.000 --> 00:00:${String(duration).padStart(2, '0')}.000\n${text}\n\n`);
    case 'verbose_json': {
      const words = field('timestamp_granularities[]').includes('word')
        ? text.split(' ').map((word, i) => ({ word, start: i * 0.3, end: i * 0.3 + 0.25 }))
        : undefined;
      const body = {
        task, language: task === 'translate' ? 'english' : field('language')[0] ?? 'english', duration, text,
        segments: [{ id: 0, seek: 0, start: 0, end: duration, text, tokens: [50364, 50414], temperature: Number(field('temperature')[0] ?? 0), avg_logprob: -0.2, compression_ratio: 1.1, no_speech_prob: 0.01 }],
        ...(words ? { words } : {}),
      };
      return sim.send(call, res, 200, body);
    }
    default:
      return sim.send(call, res, 200, { text });
  }
}

/**
 * "json, text, srt, verbose_json, or vtt" and a temperature "between 0 and 1"
 * (Azure's transcription and translation reference). Multipart fields arrive
 * as text, so the temperature is read as a number first. Azure's refusals are
 * undocumented: these are OpenAI's enum and range wordings.
 */
const TRANSCRIPT_FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt'];

function transcriptFormatProblem(format: string | undefined): AzureValidationError | undefined {
  if (format === undefined || TRANSCRIPT_FORMATS.includes(format)) return undefined;
  return unsupportedValue(format, quotedList(TRANSCRIPT_FORMATS), 'response_format');
}

function temperatureProblem(text: string | undefined): AzureValidationError | undefined {
  if (text === undefined) return undefined;
  const temperature = text.trim() === '' ? NaN : Number(text);
  if (Number.isNaN(temperature)) return invalid(`Invalid type for 'temperature': expected a number, but got '${text}' instead.`, 'temperature', 'invalid_type');
  if (temperature < 0 || temperature > 1) return invalid(`Invalid 'temperature': expected a number between 0 and 1, but got ${temperature} instead.`, 'temperature', 'invalid_value');
  return undefined;
}

/** A silent MPEG-1 Layer III frame (128 kb/s, 44.1 kHz): a player decodes a run of them as silence. */
const MP3_FRAME = (() => {
  const frame = Buffer.alloc(417);
  frame.set([0xff, 0xfb, 0x90, 0x64]);
  return frame;
})();

function wavHeader(dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(24000, 24);
  h.writeUInt32LE(48000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/** Audio bytes for the input, written in pieces so a test can see the first before the last. */
function speechChunks(input: string, format: string): Buffer[] {
  const frames = Math.max(8, input.split(/\s+/).length * 8);
  if (format === 'mp3') return Array.from({ length: Math.ceil(frames / 8) }, () => Buffer.concat(Array(8).fill(MP3_FRAME)));
  const pcm = Array.from({ length: Math.ceil(frames / 8) }, () => Buffer.alloc(4800));
  const bytes = pcm.reduce((n, b) => n + b.length, 0);
  return format === 'wav' ? [wavHeader(bytes), ...pcm] : pcm;
}

/**
 * Azure's speech reference: `voice` is required and one of the model's
 * voices (models.ts), `speed` is 0.25 to 4.0, `input` at most 4096 characters.
 * The wordings are OpenAI's validator's (a measured "Invalid 'speed': decimal
 * above maximum value. Expected a value <= 4.0, but got 99" among them);
 * Azure's own are undocumented.
 */
function speechProblem(body: Record<string, unknown>, model: SimModel): AzureValidationError | undefined {
  const input = body.input as string;
  if (input.length > 4096) return invalid(`Invalid 'input': string too long. Expected a string with maximum length 4096, but got a string with length ${input.length} instead.`, 'input', 'string_above_max_length');
  return voiceProblem(body.voice, model.voices ?? []) ?? speedProblem(body.speed);
}

function voiceProblem(voice: unknown, voices: readonly string[]): AzureValidationError | undefined {
  if (voice === undefined || voice === null) return missing('voice');
  if (typeof voice === 'string' && voices.includes(voice)) return undefined;
  return unsupportedValue(voice, quotedList(voices), 'voice');
}

function speedProblem(speed: unknown): AzureValidationError | undefined {
  return decimalRangeProblem('speed', speed, 0.25, 4, '4.0');
}

async function speak(sim: AzureOpenAISimulator, call: SimCall, _req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(call.body.toString('utf8'));
  } catch {
    return sim.send(call, res, 400, { error: { code: 'BadRequest', message: 'Invalid JSON.' } });
  }
  if (!sim.serves(call, res, 'audioSpeech')) return;
  if (typeof body.input !== 'string' || !body.input) return sim.send(call, res, 400, { error: { code: 'BadRequest', message: "'input' is required." } });
  const problem = speechProblem(body, sim.modelOf(call.deployment));
  if (problem) return sim.send(call, res, 400, problem);
  const format = typeof body.response_format === 'string' ? body.response_format : 'mp3';
  const type = SPEECH_TYPES[format];
  if (!type) return sim.send(call, res, 400, { error: { code: 'BadRequest', message: `Unsupported response_format ${format}.`, param: 'response_format' } });
  call.status = 200;
  res.writeHead(200, { 'content-type': type, 'transfer-encoding': 'chunked' });
  const chunks = speechChunks(body.input, format);
  for (let i = 0; i < chunks.length; i++) {
    if (res.destroyed) return;
    if (i === 1) await sim.streamGate();
    if (!res.write(chunks[i])) await new Promise((r) => res.once('drain', r));
  }
  res.end();
}
