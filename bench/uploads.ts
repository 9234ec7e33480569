/**
 * npm run bench:uploads — peak memory of the gateway process while 20 clients
 * each upload a 20 MB audio file for transcription at the same time. The
 * gateway must hold no more than the uploads themselves plus a small constant.
 */
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { AzureOpenAISimulator } from '../src/simulator/server';
import { installSimulatorOperations } from '../src/simulator/operations';
import { startGatewayProcess } from './support/processes';

const UPLOADS = Number(process.env.BENCH_UPLOADS ?? 20);
const SIZE = Number(process.env.BENCH_UPLOAD_BYTES ?? 20 * 1024 * 1024);
const KEY = 'bench-proxy-key';

function upload(url: string, file: Buffer): Promise<number> {
  const boundary = 'benchboundary';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + file.length + tail.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write(head);
    for (let at = 0; at < file.length; at += 256 * 1024) req.write(file.subarray(at, at + 256 * 1024));
    req.end(tail);
  });
}

async function main() {
  const sim = new AzureOpenAISimulator({ apiKey: 'bench-azure-key' });
  installSimulatorOperations(sim);
  await sim.start();
  const gw = await startGatewayProcess({
    PROXY_API_KEY: KEY, AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: 'bench-azure-key',
    MODEL_DEPLOYMENTS: '{"whisper-1":["whisper-a","whisper-b"]}',
  });
  try {
    const file = Buffer.alloc(SIZE, 7);
    await upload(gw.url, Buffer.alloc(1024, 1));
    const baseline = gw.memory();
    const statuses = await Promise.all(Array.from({ length: UPLOADS }, () => upload(gw.url, file)));
    const after = gw.memory();
    const sumMb = (UPLOADS * SIZE) / 1024 / 1024;
    const growthMb = (after.peakKb - baseline.rssKb) / 1024;
    const result = {
      uploads: UPLOADS,
      uploadMb: SIZE / 1024 / 1024,
      allSucceeded: statuses.every((s) => s === 200),
      baselineRssMb: Math.round(baseline.rssKb / 1024),
      peakRssMb: Math.round(after.peakKb / 1024),
      growthMb: Math.round(growthMb),
      sumOfUploadsMb: sumMb,
      overheadBeyondUploadsMb: Math.round(growthMb - sumMb),
    };
    console.table([result]);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/uploads.json', JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2));
  } finally {
    await gw.stop();
    await sim.close();
  }
}

void main();
