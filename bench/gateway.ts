/**
 * npm run bench — what the gateway adds, judged against a calibration floor.
 * The simulator, the gateway and the floor (support/thin-proxy.ts: key check,
 * JSON parse for `model`, round-robin pick, pipe, on node:http) each run in a
 * process of their own on loopback. The same load goes straight to the
 * simulator, through the floor and through the gateway, in turn within each
 * pass, and every ratio is taken within the run: the load generator and the
 * servers share this machine's cores, so absolute figures move from run to run
 * while the ratios hold.
 *
 * BENCH_SECONDS (default 3) is the length of one pass, BENCH_ROUNDS (default 5)
 * the passes per load, BENCH_WARMUP_SECONDS (default 15) the load each process
 * takes first, untimed (see support/load.ts), BENCH_CONNECTIONS the loads
 * (default "1,10,50"), BENCH_STREAMED_CONNECTIONS the loads of streamed
 * requests (default "10"), BENCH_STREAMED the streamed requests timed per path
 * (default 400), BENCH_OPEN_STREAMS the streams held open for the memory figure
 * (default 1000; 0 skips either), BENCH_CPU_PROF a directory for CPU profiles,
 * and BENCH_BASELINE another built checkout whose gateway joins the same passes
 * as "baseline" (to compare a change with what it changes, in one run). A
 * second gateway, "limits", serves the same requests for a named key with
 * rpm, tpm and token quotas (never reached), so the cost of limits on the hot
 * path is read beside the same gateway without them. BENCH_CONTROL=1 adds
 * "control", a second process of the floor itself: its share of the floor's
 * throughput can only differ from 100% by the run's noise, so it says how far
 * any other ratio of the same run can be trusted. BENCH_UPSTREAM_MS (default
 * 0) makes the simulator wait that long before each answer, as Azure's
 * answers take time: give it more connections (BENCH_CONNECTIONS) to keep
 * the machine busy.
 *
 * Beside each proxy's CPU per request it reports the rest of the machine
 * (support/machine.ts): the CPU the simulator and the load generator spent per
 * request on each path, and the cores left idle, which explain a throughput
 * gap that the proxy's own CPU does not.
 *
 * Every figure is the median over the passes, and every ratio is taken within
 * a pass (paths that ran seconds apart) before its median: on a shared VM one
 * pass in a few runs slow for everything, and the best of the passes (what
 * this bench reported before) moved by ±10% between runs of the same build.
 * BENCH_PROCESSES (default 1) starts that many processes of each proxy, the
 * passes taking them in turn: one process of a build can run slower than
 * another of the same build for its whole life (up to 15% in CPU per request
 * here), and more of them keep one from deciding a comparison.
 */
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { closedLoop, LoadResult, median, percentile, Target, timeStream, WARMUP_MS } from './support/load';
import { MachineShare, medianShare, watchMachine } from './support/machine';
import { ServiceProcess, startGatewayProcess, startSimulatorProcess, startThinProxyProcess } from './support/processes';

const AZURE_KEY = 'bench-azure-key';
const PROXY_KEY = 'bench-proxy-key';
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 3) * 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const counts = (list: string) => list.split(',').filter((c) => c.trim() !== '').map(Number);
/** Non-streamed loads, then streamed ones: a stream's every event passes the gateway's filter, a cost a whole answer never shows. */
const LOADS = [
  ...counts(process.env.BENCH_CONNECTIONS ?? '1,10,50').map((connections) => ({ connections, streamed: false })),
  ...counts(process.env.BENCH_STREAMED_CONNECTIONS ?? '10').map((connections) => ({ connections, streamed: true })),
];
const OPEN_STREAMS = Number(process.env.BENCH_OPEN_STREAMS ?? 1000);
const STREAMED_REQUESTS = Number(process.env.BENCH_STREAMED ?? 400);
const BASELINE = process.env.BENCH_BASELINE;
const CONTROL = process.env.BENCH_CONTROL === '1';
const UPSTREAM_MS = Number(process.env.BENCH_UPSTREAM_MS ?? 0);
const PROCESSES = Math.max(1, Number(process.env.BENCH_PROCESSES ?? 1));
const MODELS = { 'gpt-4o-mini': ['chat-a'] };

type Proxy = 'floor' | 'gateway' | 'limits' | 'baseline' | 'control';
type PathName = 'direct' | Proxy;

interface LoadRow {
  readonly connections: number;
  readonly streamed: boolean;
  /** Each path's median pass (by throughput), for its latencies. */
  readonly results: Record<PathName, LoadResult>;
  /** Median over the passes of each pass's ratio, e.g. "gateway/floor". */
  readonly ratios: Record<string, number>;
  readonly cpuMsPerRequest: Partial<Record<Proxy, number>>;
  /** Each path's median over the passes of the simulator's and load generator's CPU and the idle cores (support/machine.ts). */
  readonly machine: Record<PathName, MachineShare>;
}
interface StreamTimes { readonly firstP50: number; readonly firstP99: number; readonly lastP50: number; readonly lastP99: number }
interface HeldStreams { readonly streams: number; readonly open: number; readonly baselineMb: number; readonly peakMb: number; readonly kbPerStream: number }
interface Report {
  readonly date: string;
  readonly durationMs: number;
  readonly rounds: number;
  /** BENCH_UPSTREAM_MS: how long the simulator waited before each answer. */
  readonly upstreamMs: number;
  loads?: LoadRow[];
  streamed?: Record<PathName, StreamTimes>;
  openStreams?: Partial<Record<Proxy, HeldStreams>>;
}

const chatBody = (stream: boolean) => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'Hello, how are you today?' }], ...(stream ? { max_tokens: 20 } : {}) });

async function main() {
  const sim = await startSimulatorProcess(AZURE_KEY);
  if (UPSTREAM_MS > 0) await slowDown(sim.url, 'chat-a', UPSTREAM_MS);
  const gatewayEnv = { PROXY_API_KEY: PROXY_KEY, AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: AZURE_KEY, MODEL_DEPLOYMENTS: JSON.stringify(MODELS) };
  const proxies: Partial<Record<Proxy, ServiceProcess[]>> = {};
  /** BENCH_PROCESSES of one proxy, the first named as before and the others numbered (their CPU profiles too). */
  const start = async (launch: (name: string) => Promise<ServiceProcess>, name: string) => {
    const started: ServiceProcess[] = [];
    for (let i = 0; i < PROCESSES; i++) started.push(await launch(i === 0 ? name : `${name}-${i + 1}`));
    return started;
  };
  try {
    const floorEnv = { FLOOR_KEY: PROXY_KEY, FLOOR_UPSTREAM: sim.url, FLOOR_UPSTREAM_KEY: AZURE_KEY, FLOOR_MODELS: JSON.stringify(MODELS) };
    proxies.floor = await start((name) => startThinProxyProcess(floorEnv, name), 'floor');
    proxies.gateway = await start((name) => startGatewayProcess(gatewayEnv, undefined, name), 'gateway');
    // Limits high enough never to refuse: what is measured is their bookkeeping on every request.
    const limited = [{ name: 'bench', key: PROXY_KEY, rpm: 1e9, tpm: 1e12, tokensPerDay: 1e13, tokensPerMonth: 1e14 }];
    proxies.limits = await start((name) => startGatewayProcess({ ...gatewayEnv, PROXY_API_KEY: '', PROXY_KEYS: JSON.stringify(limited) }, undefined, name), 'limits');
    if (BASELINE) proxies.baseline = await start((name) => startGatewayProcess(gatewayEnv, BASELINE, name), 'baseline');
    if (CONTROL) proxies.control = await start((name) => startThinProxyProcess(floorEnv, name), 'control');
    const measured = Object.keys(proxies) as Proxy[];
    const paths: PathName[] = ['direct', ...measured];
    /** The request for a path, sent to its `which`-th process. */
    const target = (path: PathName, stream: boolean, which = 0): Target => path === 'direct'
      ? { url: `${sim.url}/openai/deployments/chat-a/chat/completions?api-version=2025-04-01-preview`, headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: chatBody(stream) }
      : { url: `${proxies[path]![which].url}/v1/chat/completions`, headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: chatBody(stream) };

    const report: Report = { date: new Date().toISOString(), durationMs: DURATION_MS, rounds: ROUNDS, upstreamMs: UPSTREAM_MS };
    // Warm every path (JIT, connection pools), streamed too: 400 streams timed on a cold streaming path measured V8, not the gateway.
    for (const path of paths) {
      for (let i = 0; i < (path === 'direct' ? 1 : PROCESSES); i++) {
        await closedLoop(target(path, false, i), 10, WARMUP_MS * 0.7);
        await closedLoop(target(path, true, i), 10, WARMUP_MS * 0.3);
      }
    }

    report.loads = [];
    for (const { connections, streamed } of LOADS) {
      const runs = Object.fromEntries(paths.map((p) => [p, [] as LoadResult[]])) as Record<PathName, LoadResult[]>;
      const cpu = Object.fromEntries(measured.map((p) => [p, [] as number[]])) as Record<Proxy, number[]>;
      const machine = Object.fromEntries(paths.map((p) => [p, [] as MachineShare[]])) as Record<PathName, MachineShare[]>;
      for (let r = 0; r < ROUNDS; r++) {
        // Each pass starts on a different path, so none always runs on the warmest or the coldest machine.
        for (let k = 0; k < paths.length; k++) {
          const path = paths[(r + k) % paths.length];
          const which = r % PROCESSES;
          const server = path === 'direct' ? undefined : proxies[path]![which];
          const before = server?.cpuMs() ?? 0;
          const watch = watchMachine(sim);
          const result = await closedLoop(target(path, streamed, which), connections, DURATION_MS);
          if (result.requests > 0) machine[path].push(watch.done(result.requests));
          if (path !== 'direct' && result.requests > 0) cpu[path].push((server!.cpuMs() - before) / result.requests);
          runs[path].push(result);
        }
      }
      const ratio = (a: PathName, b: PathName) => median(runs[a].map((run, r) => run.rps / runs[b][r].rps));
      const pairs: [PathName, PathName][] = [...measured.map((p): [PathName, PathName] => [p, 'direct']), ['gateway', 'floor'], ['limits', 'gateway']];
      if (BASELINE) pairs.push(['gateway', 'baseline']);
      if (CONTROL) pairs.push(['control', 'floor']);
      report.loads.push({
        connections,
        streamed,
        results: Object.fromEntries(paths.map((p) => [p, medianRun(runs[p])])) as Record<PathName, LoadResult>,
        ratios: Object.fromEntries(pairs.map(([a, b]) => [`${a}/${b}`, ratio(a, b)])),
        cpuMsPerRequest: Object.fromEntries(measured.map((p) => [p, median(cpu[p])])),
        machine: Object.fromEntries(paths.map((p) => [p, medianShare(machine[p])])) as Record<PathName, MachineShare>,
      });
    }

    if (STREAMED_REQUESTS > 0) report.streamed = await streamed(paths, target);
    if (OPEN_STREAMS > 0) {
      report.openStreams = {};
      for (const p of measured) if (p !== 'limits' && p !== 'control') report.openStreams[p] = await openStreams(sim.url, target(p, true), proxies[p]![0]);
    }

    printReport(report, measured);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/gateway.json', JSON.stringify(report, null, 2));
  } finally {
    for (const started of Object.values(proxies)) for (const p of started) await p.stop();
    await sim.stop();
  }
}

/** Every answer of a deployment comes `ms` late (the simulator's control surface, which the bench's simulator serves). */
async function slowDown(simUrl: string, deployment: string, ms: number): Promise<void> {
  const res = await fetch(`${simUrl}/_simulator/deployments/${deployment}/behaviour`, { method: 'POST', body: JSON.stringify({ mode: 'ok', delayMs: ms }) });
  if (res.status !== 204) throw new Error(`the simulator refused the delay (${res.status})`);
}

/** The pass whose throughput is the median (the lower middle of an even count). */
function medianRun(runs: readonly LoadResult[]): LoadResult {
  return [...runs].sort((a, b) => a.rps - b.rps)[Math.floor((runs.length - 1) / 2)];
}

/** Times streamed requests one at a time, the paths in turn: to the first chunk and to the end. */
async function streamed(paths: readonly PathName[], target: (path: PathName, stream: boolean) => Target): Promise<Record<PathName, StreamTimes>> {
  const agents = Object.fromEntries(paths.map((p) => [p, new http.Agent({ keepAlive: true, maxSockets: 1 })])) as Record<PathName, http.Agent>;
  const times = Object.fromEntries(paths.map((p) => [p, [] as { first: number; last: number }[]])) as Record<PathName, { first: number; last: number }[]>;
  for (let i = 0; i < STREAMED_REQUESTS; i++) {
    for (const path of paths) times[path].push(await timeStream(target(path, true), agents[path]));
  }
  for (const agent of Object.values(agents)) agent.destroy();
  const at = (path: PathName, k: 'first' | 'last', p: number) => percentile(times[path].map((x) => x[k]).sort((a, b) => a - b), p);
  return Object.fromEntries(paths.map((path) => [path, {
    firstP50: at(path, 'first', 50), firstP99: at(path, 'first', 99), lastP50: at(path, 'last', 50), lastP99: at(path, 'last', 99),
  }])) as Record<PathName, StreamTimes>;
}

/** Holds OPEN_STREAMS streams open at once through one proxy and reads its memory. */
async function openStreams(simUrl: string, target: Target, proxy: ServiceProcess): Promise<HeldStreams> {
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

/** Prints the run as the README's tables: throughput, added latency, streaming, CPU (the rest of the machine's too) and memory. */
function printReport(report: Report, measured: readonly Proxy[]): void {
  const hasBaseline = measured.includes('baseline');
  const hasControl = measured.includes('control');
  const paths: PathName[] = ['direct', ...measured];
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rule = (n: number) => row(Array(n).fill('---'));
  const throughputHead = ['load', 'direct', ...measured, ...measured.map((p) => `${p} / direct`), 'gateway / floor', 'limits / gateway', ...(hasBaseline ? ['gateway / baseline'] : []), ...(hasControl ? ['control / floor'] : [])];
  const latencyHead = ['added over direct, p50 / p99', ...measured, 'gateway − floor', 'limits − gateway'];
  const lines = [row(throughputHead), rule(throughputHead.length)];
  for (const load of report.loads ?? []) {
    const { results, ratios } = load;
    const ratio = (a: PathName, b: PathName) => pct(ratios[`${a}/${b}`]);
    lines.push(row([
      loadName(load), rps(results.direct.rps), ...measured.map((p) => rps(results[p].rps)),
      ...measured.map((p) => ratio(p, 'direct')), ratio('gateway', 'floor'), ratio('limits', 'gateway'),
      ...(hasBaseline ? [ratio('gateway', 'baseline')] : []), ...(hasControl ? [ratio('control', 'floor')] : []),
    ]));
  }
  lines.push('', row(latencyHead), rule(latencyHead.length));
  for (const load of report.loads ?? []) {
    const results = load.results;
    const added = (p: Proxy) => [results[p].p50 - results.direct.p50, results[p].p99 - results.direct.p99];
    const [g, f, l] = [added('gateway'), added('floor'), added('limits')];
    lines.push(row([loadName(load), ...measured.map((p) => pair(added(p))), pair([g[0] - f[0], g[1] - f[1]]), pair([l[0] - g[0], l[1] - g[1]])]));
  }
  for (const k of report.streamed ? (['first', 'last'] as const) : []) {
    const s = report.streamed!;
    const [p50, p99] = [`${k}P50`, `${k}P99`] as const;
    const added = (p: Proxy) => [s[p][p50] - s.direct[p50], s[p][p99] - s.direct[p99]];
    const [g, f, l] = [added('gateway'), added('floor'), added('limits')];
    lines.push(row([`streamed, ${k} chunk (direct ${ms(s.direct[p50])} / ${ms(s.direct[p99])} ms)`, ...measured.map((p) => pair(added(p))), pair([g[0] - f[0], g[1] - f[1]]), pair([l[0] - g[0], l[1] - g[1]])]));
  }
  lines.push('', row(['per request and per stream', 'direct', ...measured]), rule(measured.length + 2));
  for (const load of report.loads ?? []) {
    const { cpuMsPerRequest, machine } = load;
    const name = loadName(load);
    lines.push(row([`CPU per request, ${name}`, '', ...measured.map((p) => `${ms(cpuMsPerRequest[p]!)} ms`)]));
    lines.push(row([`simulator + load generator CPU per request, ${name}`, ...paths.map((p) => `${ms(machine[p].othersMsPerRequest)} ms`)]));
    lines.push(row([`idle cores, ${name}`, ...paths.map((p) => machine[p].idleCores.toFixed(2))]));
  }
  const os = report.openStreams;
  if (os) lines.push(row([`memory per open stream (${OPEN_STREAMS} held)`, '', ...measured.map((p) => (os[p] ? `${os[p]!.kbPerStream} KB` : '(not held)'))]));
  console.log(lines.join('\n'));
  for (const p of measured) {
    const held = os?.[p];
    if (held && held.open < held.streams) console.log(`warning: only ${held.open} of ${held.streams} streams through the ${p} opened`);
  }
}

const loadName = ({ connections, streamed }: { connections: number; streamed: boolean }) => `chat${streamed ? ' streamed' : ''}, ${connections} conn`;
const ms = (x: number) => (Math.round(x * 1000) / 1000).toString();
const pair = ([a, b]: number[]) => `${ms(a)} / ${ms(b)} ms`;
const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
const pct = (x: number) => `${Math.round(x * 100)}%`;

void main();
