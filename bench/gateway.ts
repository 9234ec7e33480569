/**
 * npm run bench — what the gateway adds. The simulator and the gateway run in
 * processes of their own on loopback; the same load goes straight to the
 * simulator and through the gateway, alternating, and the table reports the
 * ratios taken in the same run (the load generator, the simulator and the
 * gateway share this machine's cores, so ratios are what to judge by).
 */
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { closedLoop, LoadResult, percentile, Target, timeStream } from './support/load';
import { startGatewayProcess, startSimulatorProcess } from './support/processes';

const AZURE_KEY = 'bench-azure-key';
const PROXY_KEY = 'bench-proxy-key';
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 3) * 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const OPEN_STREAMS = Number(process.env.BENCH_OPEN_STREAMS ?? 1000);

const chatBody = (stream: boolean) => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'Hello, how are you today?' }], ...(stream ? { max_tokens: 20 } : {}) });

async function main() {
  const sim = await startSimulatorProcess(AZURE_KEY);
  const gw = await startGatewayProcess({
    PROXY_API_KEY: PROXY_KEY, AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: AZURE_KEY,
    MODEL_DEPLOYMENTS: '{"gpt-4o-mini":["chat-a"]}',
  });
  const direct = (stream: boolean): Target => ({ url: `${sim.url}/openai/deployments/chat-a/chat/completions?api-version=2025-04-01-preview`, headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: chatBody(stream) });
  const viaGateway = (stream: boolean): Target => ({ url: `${gw.url}/v1/chat/completions`, headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: chatBody(stream) });
  const rows: Record<string, unknown>[] = [];
  const report: Record<string, unknown> = { date: new Date().toISOString(), durationMs: DURATION_MS, rounds: ROUNDS };
  try {
    // Warm both paths (JIT, connection pools).
    await closedLoop(direct(false), 10, 500);
    await closedLoop(viaGateway(false), 10, 500);

    let gatewayRequests = 0;
    let gatewayCpuMs = 0;
    for (const connections of [1, 10, 50]) {
      const d: LoadResult[] = [];
      const g: LoadResult[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        d.push(await closedLoop(direct(false), connections, DURATION_MS));
        const cpu = gw.cpuMs();
        const result = await closedLoop(viaGateway(false), connections, DURATION_MS);
        gatewayCpuMs += gw.cpuMs() - cpu;
        gatewayRequests += result.requests;
        g.push(result);
      }
      const best = (xs: LoadResult[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a));
      const bd = best(d);
      const bg = best(g);
      rows.push({
        test: `chat, ${connections} conn`,
        'direct rps': Math.round(bd.rps), 'gateway rps': Math.round(bg.rps), 'gateway/direct': ratio(bg.rps / bd.rps),
        'direct p50 ms': ms(bd.p50), 'gateway p50 ms': ms(bg.p50), 'added p50 ms': ms(bg.p50 - bd.p50),
        'direct p99 ms': ms(bd.p99), 'gateway p99 ms': ms(bg.p99), 'added p99 ms': ms(bg.p99 - bd.p99),
      });
    }
    report.cpuMsPerRequest = gatewayCpuMs / gatewayRequests;

    // Streamed: time to first and last chunk, one request at a time, alternating paths.
    const agentD = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const agentG = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sd: { first: number; last: number }[] = [];
    const sg: { first: number; last: number }[] = [];
    for (let i = 0; i < 400; i++) {
      sd.push(await timeStream(direct(true), agentD));
      sg.push(await timeStream(viaGateway(true), agentG));
    }
    agentD.destroy();
    agentG.destroy();
    const med = (xs: { first: number; last: number }[], k: 'first' | 'last', p: number) => percentile(xs.map((x) => x[k]).sort((a, b) => a - b), p);
    rows.push({
      test: 'stream, first chunk',
      'direct p50 ms': ms(med(sd, 'first', 50)), 'gateway p50 ms': ms(med(sg, 'first', 50)), 'added p50 ms': ms(med(sg, 'first', 50) - med(sd, 'first', 50)),
      'direct p99 ms': ms(med(sd, 'first', 99)), 'gateway p99 ms': ms(med(sg, 'first', 99)), 'added p99 ms': ms(med(sg, 'first', 99) - med(sd, 'first', 99)),
    });
    rows.push({
      test: 'stream, last chunk',
      'direct p50 ms': ms(med(sd, 'last', 50)), 'gateway p50 ms': ms(med(sg, 'last', 50)), 'added p50 ms': ms(med(sg, 'last', 50) - med(sd, 'last', 50)),
      'direct p99 ms': ms(med(sd, 'last', 99)), 'gateway p99 ms': ms(med(sg, 'last', 99)), 'added p99 ms': ms(med(sg, 'last', 99) - med(sd, 'last', 99)),
    });

    report.openStreams = await openStreams(sim.url, viaGateway(true), gw.memory);
    report.rows = rows;
    console.table(rows);
    console.log(`gateway CPU per non-streamed request: ${ms(report.cpuMsPerRequest as number)} ms`);
    const os = report.openStreams as Record<string, number>;
    console.log(`${os.streams} open streams: gateway RSS ${os.baselineMb} MB -> ${os.peakMb} MB, ${os.kbPerStream} KB per stream`);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/gateway.json', JSON.stringify(report, null, 2));
  } finally {
    await gw.stop();
    await sim.stop();
  }
}

/** Holds OPEN_STREAMS streams open at once through the gateway and reads its memory. */
async function openStreams(simUrl: string, target: Target, memory: () => { rssKb: number; peakKb: number }) {
  const control = (path: string) => fetch(`${simUrl}/_simulator/${path}`, { method: 'POST' });
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const baseline = memory().rssKb;
  await control('hold');
  let firstChunks = 0;
  const body = Buffer.from(target.body);
  const done: Promise<void>[] = [];
  for (let i = 0; i < OPEN_STREAMS; i++) {
    done.push(new Promise<void>((resolve, reject) => {
      const req = http.request(target.url, { method: 'POST', agent, headers: { ...target.headers, 'content-length': String(body.length) } }, (res) => {
        let seen = false;
        res.on('data', () => {
          if (!seen) {
            seen = true;
            firstChunks++;
          }
        });
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end(body);
    }));
  }
  const deadline = Date.now() + 60_000;
  while (firstChunks < OPEN_STREAMS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  const held = memory().rssKb;
  await control('release');
  await Promise.all(done);
  agent.destroy();
  return { streams: OPEN_STREAMS, open: firstChunks, baselineMb: Math.round(baseline / 1024), peakMb: Math.round(held / 1024), kbPerStream: Math.round((held - baseline) / OPEN_STREAMS * 10) / 10 };
}

const ms = (x: number) => Math.round(x * 1000) / 1000;
const ratio = (x: number) => `${Math.round(x * 100)}%`;

void main();
