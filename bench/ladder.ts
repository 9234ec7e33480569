/**
 * npm run bench:ladder — where the CPU the gateway spends beyond the floor
 * goes, part by part. Six proxies for the same chat request run in
 * processes of their own beside the simulator: the floor (node:http), then
 * the rungs of support/rungs.ts: the floor with undici's one-turn wait before
 * it calls upstream, then each with one more part of the gateway (undici's
 * Pool; the gateway's upstream client; its local server and request
 * pipeline), then the gateway. The same load goes to each in turn
 * within a pass, each pass starting at another, and every figure is the
 * median over the passes of what each took within its pass.
 *
 * Read the steps, not the rungs: "wait − floor" is what undici's wait does to
 * a proxy's own CPU, "undici − wait" what undici's Pool saves over
 * node:http's client with that wait in both, "client − undici" is what the gateway's
 * upstream client costs beyond a bare handler on undici's Pool (which neither
 * holds the upstream back for a slow client nor cancels for one that left),
 * "host −
 * client" its server and pipeline, "gateway − host" its handlers, balancer,
 * usage and limits. CPU per request is the steady figure; a step of under
 * about 10 µs is within a run's noise on a shared 2-core machine. Each rung's
 * row also has the simulator's and load generator's CPU per request and the
 * idle cores (support/machine.ts): what its throughput owes to the rest of
 * the machine.
 *
 * BENCH_SECONDS (default 3) per pass, BENCH_ROUNDS (default 6) passes,
 * BENCH_WARMUP_SECONDS (default 15) of untimed load per rung first,
 * BENCH_CONNECTIONS (default 50) the load; BENCH_CPU_PROF=<dir> writes each
 * process's CPU profile there, as for `npm run bench`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { closedLoop, median, Target, WARMUP_MS } from './support/load';
import { MachineShare, medianShare, watchMachine } from './support/machine';
import { ServiceProcess, profileFlags, startGatewayProcess, startService, startSimulatorProcess, startThinProxyProcess } from './support/processes';

const AZURE_KEY = 'bench-azure-key';
const PROXY_KEY = 'bench-proxy-key';
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 3) * 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const MODELS = { 'gpt-4o-mini': ['chat-a'] };
const BODY = JSON.stringify({ model: 'gpt-4o-mini', stream: false, messages: [{ role: 'user', content: 'Hello, how are you today?' }] });

const RUNGS = ['floor', 'wait', 'undici', 'client', 'host', 'gateway'] as const;
type Rung = (typeof RUNGS)[number];
/** What each rung adds to the one below it. */
const ADDS: Record<Rung, string> = {
  floor: 'node:http server and client (the calibration floor)',
  wait: 'its call upstream one turn of the event loop later, as undici waits before reusing a connection',
  undici: "undici's Pool in place of node:http's client (its wait included)",
  client: "the gateway's upstream client",
  host: "the gateway's local server and request pipeline",
  gateway: 'handlers, balancer, usage, limits: the whole gateway',
};

interface RungResult {
  readonly rung: Rung;
  readonly adds: string;
  /** Medians over the passes. */
  readonly rps: number;
  readonly shareOfFloor: number;
  readonly cpuMsPerRequest: number;
  /** The simulator's and load generator's CPU per request, and the idle cores (support/machine.ts). */
  readonly machine: MachineShare;
  /** Median over the passes of this rung's CPU per request less the rung below's, in µs. */
  readonly stepUs?: number;
}

async function main(): Promise<void> {
  const sim = await startSimulatorProcess(AZURE_KEY);
  const floorEnv = { FLOOR_KEY: PROXY_KEY, FLOOR_UPSTREAM: sim.url, FLOOR_UPSTREAM_KEY: AZURE_KEY, FLOOR_MODELS: JSON.stringify(MODELS) };
  const rungScript = path.resolve(__dirname, 'support/rungs.js');
  const procs: Partial<Record<Rung, ServiceProcess>> = {};
  try {
    procs.floor = await startThinProxyProcess(floorEnv);
    for (const rung of ['wait', 'undici', 'client', 'host'] as const) procs[rung] = await startService(rungScript, { ...floorEnv, RUNG: rung }, profileFlags(rung));
    procs.gateway = await startGatewayProcess({ PROXY_API_KEY: PROXY_KEY, AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: AZURE_KEY, MODEL_DEPLOYMENTS: JSON.stringify(MODELS) });
    const target = (rung: Rung): Target => ({ url: `${procs[rung]!.url}/v1/chat/completions`, headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: BODY });

    // Warm every rung as npm run bench does: a gateway still compiling spent about 14 µs more CPU per request (perf).
    for (const rung of RUNGS) await closedLoop(target(rung), CONNECTIONS, WARMUP_MS);
    const rps = Object.fromEntries(RUNGS.map((r) => [r, [] as number[]])) as Record<Rung, number[]>;
    const cpu = Object.fromEntries(RUNGS.map((r) => [r, [] as number[]])) as Record<Rung, number[]>;
    const machine = Object.fromEntries(RUNGS.map((r) => [r, [] as MachineShare[]])) as Record<Rung, MachineShare[]>;
    for (let pass = 0; pass < ROUNDS; pass++) {
      for (let k = 0; k < RUNGS.length; k++) {
        const rung = RUNGS[(pass + k) % RUNGS.length];
        const before = procs[rung]!.cpuMs();
        const watch = watchMachine(sim);
        const result = await closedLoop(target(rung), CONNECTIONS, DURATION_MS);
        // A status other than 200 fails the load itself: every rung must answer like the others.
        if (result.requests === 0) throw new Error(`${rung} answered no request`);
        rps[rung].push(result.rps);
        cpu[rung].push((procs[rung]!.cpuMs() - before) / result.requests);
        machine[rung].push(watch.done(result.requests));
      }
    }
    const results: RungResult[] = RUNGS.map((rung, i) => ({
      rung,
      adds: ADDS[rung],
      rps: median(rps[rung]),
      shareOfFloor: median(rps[rung].map((x, pass) => x / rps.floor[pass])),
      cpuMsPerRequest: median(cpu[rung]),
      machine: medianShare(machine[rung]),
      stepUs: i === 0 ? undefined : median(cpu[rung].map((x, pass) => (x - cpu[RUNGS[i - 1]][pass]) * 1000)),
    }));
    print(results);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/ladder.json', JSON.stringify({ date: new Date().toISOString(), connections: CONNECTIONS, durationMs: DURATION_MS, rounds: ROUNDS, results }, null, 2));
  } finally {
    for (const p of Object.values(procs)) await p.stop();
    await sim.stop();
  }
}

function print(results: readonly RungResult[]): void {
  const lines = [
    `chat, ${CONNECTIONS} connections, ${ROUNDS} passes of ${DURATION_MS / 1000} s`,
    '',
    '| rung | adds | throughput | share of floor | CPU per request | step over the rung below | simulator + load generator CPU per request | idle cores |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map((r) => `| ${r.rung} | ${r.adds} | ${Math.round(r.rps).toLocaleString('en-US')}/s | ${Math.round(r.shareOfFloor * 100)}% | ${r.cpuMsPerRequest.toFixed(3)} ms | ${r.stepUs === undefined ? '' : `${r.stepUs >= 0 ? '+' : ''}${r.stepUs.toFixed(0)} µs`} | ${r.machine.othersMsPerRequest.toFixed(3)} ms | ${r.machine.idleCores.toFixed(2)} |`),
  ];
  console.log(lines.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
