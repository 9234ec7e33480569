/**
 * npm run bench:realtime — what the gateway adds to each realtime event, and
 * how long a session takes to come back after its owning instance is lost.
 *
 * Latency: the same round trip (the client sends session.update and waits for
 * session.updated) is timed straight to the simulator's realtime socket,
 * through the local host's direct socket, and through the Web PubSub path
 * (stand-in service, two gateway instances taking the events in turn, the
 * owner's group connection, send-to-connection), alternating paths.
 *
 * Resume: a session owned by a gateway in a process of its own, which is
 * killed (SIGKILL); the client at once asks for a response, which another
 * instance answers after taking the session over. Timed from the kill to the
 * answer's response.done, with the default lease and a short one.
 */
import { performance } from 'node:perf_hooks';
import { mkdirSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { createGateway } from '../src/bootstrap';
import { MemoryLogger } from '../src/core/log';
import { Env } from '../src/config/settings';
import { LocalServer } from '../src/local/server';
import { routeTable } from '../src/routes';
import { installSimulatorOperations } from '../src/simulator/operations';
import { AzureOpenAISimulator } from '../src/simulator/server';
import { startAzurite } from '../test/support/azurite';
import { WebPubSubStandIn } from '../test/support/web-pubsub';
import { startGatewayProcess } from './support/processes';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 500);
const RESUMES = Number(process.env.BENCH_RESUMES ?? 3);
const MODEL = 'gpt-4o-mini-realtime-preview';

async function roundTrips(ws: WebSocket, n: number): Promise<number[]> {
  const times: number[] = [];
  let waiting: (() => void) | undefined;
  ws.on('message', (d) => {
    if (String(d).includes('"session.updated"')) waiting?.();
  });
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      waiting = resolve;
      ws.send(JSON.stringify({ type: 'session.update', event_id: `b${i}`, session: { type: 'realtime', instructions: 'x'.repeat(200) } }));
    });
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b);
}

async function opened(ws: WebSocket): Promise<WebSocket> {
  const created = new Promise((r) => ws.once('message', r));
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  await created;
  return ws;
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const ms = (x: number) => Math.round(x * 1000) / 1000;

async function newSession(url: string): Promise<string> {
  const res = await fetch(`${url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer bench-proxy', 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL }) });
  return ((await res.json()) as { url: string }).url;
}

async function main() {
  const sim = new AzureOpenAISimulator({ apiKey: 'bench-azure' });
  installSimulatorOperations(sim);
  await sim.start();
  const azurite = await startAzurite();
  const pubsub = new WebPubSubStandIn('realtime');
  await pubsub.start();
  const env = (extra: Env = {}): Env => ({
    PROXY_API_KEY: 'bench-proxy', AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: 'bench-azure',
    MODEL_DEPLOYMENTS: JSON.stringify({ [MODEL]: ['rt'] }), WEBPUBSUB_CONNECTION_STRING: pubsub.connectionString(),
    BALANCER_STORAGE_CONNECTION: azurite.connectionString, ...extra,
  });
  const instances = [0, 1].map(() => {
    const gateway = createGateway(env(), { logger: new MemoryLogger() });
    return { gateway, server: new LocalServer(gateway, routeTable) };
  });
  const urls = await Promise.all(instances.map((i) => i.server.listen(0)));
  const handlers = urls.map((u) => `${u}/realtime/events`);
  pubsub.handlers = handlers;
  pubsub.alternate = true;
  const results: Record<string, unknown> = { date: new Date().toISOString(), events: EVENTS };
  try {
    const direct = await opened(new WebSocket(`${sim.url.replace('http', 'ws')}/openai/v1/realtime?model=rt`, { headers: { 'api-key': 'bench-azure' } }));
    const local = await opened(new WebSocket(`${urls[0].replace('http', 'ws')}/v1/realtime?model=${MODEL}`, { headers: { authorization: 'Bearer bench-proxy' } }));
    const viaPubSub = await opened(new WebSocket(await newSession(urls[0])));
    // Warm up, then measure, the paths one after another under the same conditions.
    for (const ws of [direct, local, viaPubSub]) await roundTrips(ws, 50);
    const d = await roundTrips(direct, EVENTS);
    const l = await roundTrips(local, EVENTS);
    const p = await roundTrips(viaPubSub, EVENTS);
    const rows = [
      { path: 'direct to the simulator', 'p50 ms': ms(pct(d, 50)), 'p99 ms': ms(pct(d, 99)), 'added p50 ms': 0, 'added p99 ms': 0 },
      { path: 'local host direct socket', 'p50 ms': ms(pct(l, 50)), 'p99 ms': ms(pct(l, 99)), 'added p50 ms': ms(pct(l, 50) - pct(d, 50)), 'added p99 ms': ms(pct(l, 99) - pct(d, 99)) },
      { path: 'Web PubSub (stand-in), 2 instances', 'p50 ms': ms(pct(p, 50)), 'p99 ms': ms(pct(p, 99)), 'added p50 ms': ms(pct(p, 50) - pct(d, 50)), 'added p99 ms': ms(pct(p, 99) - pct(d, 99)) },
    ];
    console.table(rows);
    results.latency = rows;
    for (const ws of [direct, local, viaPubSub]) ws.close();

    const resumes: { leaseMs: number; ms: number[] }[] = [];
    for (const leaseMs of [6000, 2000]) {
      const times: number[] = [];
      for (let i = 0; i < RESUMES; i++) times.push(await resumeAfterLoss(env({ REALTIME_LEASE_MS: String(leaseMs) }), pubsub, handlers));
      resumes.push({ leaseMs, ms: times.map((t) => Math.round(t)) });
    }
    console.table(resumes.map((r) => ({ 'lease ms': r.leaseMs, 'kill to answer, each run (ms)': r.ms.join(', '), 'median ms': [...r.ms].sort((x, y) => x - y)[Math.floor(r.ms.length / 2)] })));
    results.resume = resumes;
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/realtime.json', JSON.stringify(results, null, 2));
  } finally {
    for (const i of instances) {
      await i.server.close();
      await i.gateway.close();
    }
    await pubsub.close();
    await azurite.stop();
    await sim.close();
  }
}

/** One owner killed mid-session; milliseconds from the kill to the answer of the client's next response.create. */
async function resumeAfterLoss(env: Env, pubsub: WebPubSubStandIn, survivors: string[]): Promise<number> {
  const owner = await startGatewayProcess(env as Record<string, string>);
  pubsub.handlers = [`${owner.url}/realtime/events`];
  pubsub.alternate = false;
  const ws = await opened(new WebSocket(await newSession(owner.url)));
  const answered = () => new Promise<void>((resolve) => {
    const onMessage = (d: unknown) => {
      if (String(d).includes('"response.done"') && String(d).includes('"completed"')) {
        ws.off('message', onMessage);
        resolve();
      }
    };
    ws.on('message', onMessage);
  });
  let done = answered();
  ws.send(JSON.stringify({ type: 'response.create' }));
  await done;
  await new Promise<void>((resolve) => {
    owner.child.once('exit', () => resolve());
    owner.child.kill('SIGKILL');
  });
  const killed = performance.now();
  pubsub.handlers = survivors;
  pubsub.alternate = true;
  done = answered();
  ws.send(JSON.stringify({ type: 'response.create' }));
  await done;
  const took = performance.now() - killed;
  ws.close();
  return took;
}

void main();
