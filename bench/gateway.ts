/**
 * npm run bench — what the gateway adds, judged against a calibration floor.
 * The simulator, the gateway and the floor (support/thin-proxy.ts: key check,
 * JSON parse for `model`, round-robin pick, pipe, on node:http) each run in a
 * process of their own on loopback. The same load goes straight to the
 * simulator, through the floor and through the gateway, in turn within each
 * pass, and every ratio is taken within the run: the load generator and the
 * three servers share this machine's cores, so absolute figures move from run
 * to run while the ratios hold.
 *
 * BENCH_SECONDS (default 3) is the length of one pass, BENCH_ROUNDS (default 2)
 * the passes per load (the best of them counts), BENCH_CONNECTIONS the loads
 * (default "1,10,50"), BENCH_OPEN_STREAMS the streams held open for the memory
 * figure (default 1000), BENCH_CPU_PROF a directory for the gateway's CPU profile.
 */
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { closedLoop, LoadResult, percentile, Target, timeStream } from './support/load';
import { ServiceProcess, startGatewayProcess, startSimulatorProcess, startThinProxyProcess } from './support/processes';

const AZURE_KEY = 'bench-azure-key';
const PROXY_KEY = 'bench-proxy-key';
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 3) * 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '1,10,50').split(',').map(Number);
const OPEN_STREAMS = Number(process.env.BENCH_OPEN_STREAMS ?? 1000);
const STREAMED_REQUESTS = Number(process.env.BENCH_STREAMED ?? 400);
const MODELS = { 'gpt-4o-mini': ['chat-a'] };

const PATHS = ['direct', 'floor', 'gateway'] as const;
type PathName = (typeof PATHS)[number];
type Proxy = Exclude<PathName, 'direct'>;

const chatBody = (stream: boolean) => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'Hello, how are you today?' }], ...(stream ? { max_tokens: 20 } : {}) });

async function main() {
  const sim = await startSimulatorProcess(AZURE_KEY);
  const gateway = await startGatewayProcess({
    PROXY_API_KEY: PROXY_KEY, AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: AZURE_KEY,
    MODEL_DEPLOYMENTS: JSON.stringify(MODELS),
  });
  const floor = await startThinProxyProcess({ FLOOR_KEY: PROXY_KEY, FLOOR_UPSTREAM: sim.url, FLOOR_UPSTREAM_KEY: AZURE_KEY, FLOOR_MODELS: JSON.stringify(MODELS) });
  const proxies: Record<Proxy, ServiceProcess> = { floor, gateway };
  const target = (path: PathName, stream: boolean): Target => path === 'direct'
    ? { url: `${sim.url}/openai/deployments/chat-a/chat/completions?api-version=2025-04-01-preview`, headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: chatBody(stream) }
    : { url: `${proxies[path].url}/v1/chat/completions`, headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: chatBody(stream) };

  const report: Record<string, unknown> = { date: new Date().toISOString(), durationMs: DURATION_MS, rounds: ROUNDS };
  try {
    // Warm every path (JIT, connection pools).
    for (const path of PATHS) await closedLoop(target(path, false), 10, 500);

    const loads: Record<string, unknown>[] = [];
    for (const connections of CONNECTIONS) {
      const runs: Record<PathName, LoadResult[]> = { direct: [], floor: [], gateway: [] };
      const cpu: Record<Proxy, { ms: number; requests: number }> = { floor: { ms: 0, requests: 0 }, gateway: { ms: 0, requests: 0 } };
      for (let r = 0; r < ROUNDS; r++) {
        // Each pass starts on a different path, so none always runs on the warmest or the coldest machine.
        for (let k = 0; k < PATHS.length; k++) {
          const path = PATHS[(r + k) % PATHS.length];
          const before = path === 'direct' ? 0 : proxies[path].cpuMs();
          const result = await closedLoop(target(path, false), connections, DURATION_MS);
          if (path !== 'direct') {
            cpu[path].ms += proxies[path].cpuMs() - before;
            cpu[path].requests += result.requests;
          }
          runs[path].push(result);
        }
      }
      const best = (xs: LoadResult[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a));
      loads.push({
        connections,
        direct: best(runs.direct), floor: best(runs.floor), gateway: best(runs.gateway),
        cpuMsPerRequest: { floor: cpu.floor.ms / cpu.floor.requests, gateway: cpu.gateway.ms / cpu.gateway.requests },
      });
    }
    report.loads = loads;

    // Streamed: time to first and last chunk, one request at a time, the paths in turn.
    const agents = Object.fromEntries(PATHS.map((p) => [p, new http.Agent({ keepAlive: true, maxSockets: 1 })])) as Record<PathName, http.Agent>;
    const times: Record<PathName, { first: number; last: number }[]> = { direct: [], floor: [], gateway: [] };
    for (let i = 0; i < STREAMED_REQUESTS; i++) {
      for (const path of PATHS) times[path].push(await timeStream(target(path, true), agents[path]));
    }
    for (const agent of Object.values(agents)) agent.destroy();
    const at = (path: PathName, k: 'first' | 'last', p: number) => percentile(times[path].map((x) => x[k]).sort((a, b) => a - b), p);
    report.streamed = Object.fromEntries(PATHS.map((path) => [path, {
      firstP50: at(path, 'first', 50), firstP99: at(path, 'first', 99), lastP50: at(path, 'last', 50), lastP99: at(path, 'last', 99),
    }]));

    report.openStreams = {
      floor: await openStreams(sim.url, target('floor', true), floor),
      gateway: await openStreams(sim.url, target('gateway', true), gateway),
    };

    printReport(report);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/gateway.json', JSON.stringify(report, null, 2));
  } finally {
    await gateway.stop();
    await floor.stop();
    await sim.stop();
  }
}

/** Holds OPEN_STREAMS streams open at once through one proxy and reads its memory. */
async function openStreams(simUrl: string, target: Target, proxy: ServiceProcess) {
  const control = (path: string) => fetch(`${simUrl}/_simulator/${path}`, { method: 'POST' });
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const baseline = proxy.memory().rssKb;
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
  const held = proxy.memory().rssKb;
  await control('release');
  await Promise.all(done);
  agent.destroy();
  return { streams: OPEN_STREAMS, open: firstChunks, baselineMb: Math.round(baseline / 1024), peakMb: Math.round(held / 1024), kbPerStream: Math.round(((held - baseline) / OPEN_STREAMS) * 10) / 10 };
}

/** Prints the run as the README's tables: throughput, added latency, streaming, CPU and memory. */
function printReport(report: Record<string, unknown>): void {
  const loads = report.loads as { connections: number; direct: LoadResult; floor: LoadResult; gateway: LoadResult; cpuMsPerRequest: Record<Proxy, number> }[];
  const lines = [
    '| load | direct | floor | gateway | floor / direct | gateway / direct | gateway / floor |',
    '|---|---|---|---|---|---|---|',
    ...loads.map((l) => `| chat, ${l.connections} conn | ${rps(l.direct.rps)} | ${rps(l.floor.rps)} | ${rps(l.gateway.rps)} | ${pct(l.floor.rps / l.direct.rps)} | ${pct(l.gateway.rps / l.direct.rps)} | ${pct(l.gateway.rps / l.floor.rps)} |`),
    '',
    '| added over direct, p50 / p99 | floor | gateway | gateway − floor |',
    '|---|---|---|---|',
    ...loads.map((l) => {
      const f = [l.floor.p50 - l.direct.p50, l.floor.p99 - l.direct.p99];
      const g = [l.gateway.p50 - l.direct.p50, l.gateway.p99 - l.direct.p99];
      return `| chat, ${l.connections} conn | ${pair(f)} | ${pair(g)} | ${pair([g[0] - f[0], g[1] - f[1]])} |`;
    }),
  ];
  const s = report.streamed as Record<PathName, { firstP50: number; firstP99: number; lastP50: number; lastP99: number }>;
  for (const k of ['first', 'last'] as const) {
    const p50 = `${k}P50` as const;
    const p99 = `${k}P99` as const;
    const f = [s.floor[p50] - s.direct[p50], s.floor[p99] - s.direct[p99]];
    const g = [s.gateway[p50] - s.direct[p50], s.gateway[p99] - s.direct[p99]];
    lines.push(`| streamed, ${k} chunk (direct ${ms(s.direct[p50])} / ${ms(s.direct[p99])} ms) | ${pair(f)} | ${pair(g)} | ${pair([g[0] - f[0], g[1] - f[1]])} |`);
  }
  const os = report.openStreams as Record<Proxy, { streams: number; open: number; kbPerStream: number; baselineMb: number; peakMb: number }>;
  lines.push(
    '',
    '| per request and per stream | floor | gateway |',
    '|---|---|---|',
    ...loads.map((l) => `| CPU per request, ${l.connections} conn | ${ms(l.cpuMsPerRequest.floor)} ms | ${ms(l.cpuMsPerRequest.gateway)} ms |`),
    `| memory per open stream (${os.gateway.streams} held) | ${os.floor.kbPerStream} KB | ${os.gateway.kbPerStream} KB |`,
  );
  console.log(lines.join('\n'));
  for (const p of ['floor', 'gateway'] as const) {
    if (os[p].open < os[p].streams) console.log(`warning: only ${os[p].open} of ${os[p].streams} streams through the ${p} opened`);
  }
}

const ms = (x: number) => (Math.round(x * 1000) / 1000).toString();
const pair = ([a, b]: number[]) => `${ms(a)} / ${ms(b)} ms`;
const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
const pct = (x: number) => `${Math.round(x * 100)}%`;

void main();
