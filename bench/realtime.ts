/**
 * npm run bench:realtime — what the gateway adds to each realtime event. The
 * same round trip (client sends session.update, waits for session.updated) is
 * timed straight to the simulator's realtime socket, through the local host's
 * direct socket, and through the Web PubSub path (stand-in service, event
 * handler, owner's group connection, send-to-connection). All parts run in
 * this one process on loopback, so the figures include their sharing a core.
 */
import { performance } from 'node:perf_hooks';
import { mkdirSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { createGateway } from '../src/bootstrap';
import { MemoryLogger } from '../src/core/log';
import { LocalServer } from '../src/local/server';
import { routeTable } from '../src/routes';
import { installSimulatorOperations } from '../src/simulator/operations';
import { AzureOpenAISimulator } from '../src/simulator/server';
import { WebPubSubStandIn } from '../test/support/web-pubsub';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 500);
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
      ws.send(JSON.stringify({ type: 'session.update', event_id: `b${i}`, session: { instructions: 'x'.repeat(200) } }));
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

async function main() {
  const sim = new AzureOpenAISimulator({ apiKey: 'bench-azure' });
  installSimulatorOperations(sim);
  await sim.start();
  const pubsub = new WebPubSubStandIn('realtime');
  await pubsub.start();
  const gateway = createGateway({
    PROXY_API_KEY: 'bench-proxy', AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: 'bench-azure',
    MODEL_DEPLOYMENTS: JSON.stringify({ [MODEL]: ['rt'] }), WEBPUBSUB_CONNECTION_STRING: pubsub.connectionString,
  }, { logger: new MemoryLogger() });
  const server = new LocalServer(gateway, routeTable);
  const url = await server.listen(0);
  pubsub.handlers = [`${url}/realtime/events`];
  try {
    const direct = await opened(new WebSocket(`${sim.url.replace('http', 'ws')}/openai/realtime?api-version=2025-04-01-preview&deployment=rt`, { headers: { 'api-key': 'bench-azure' } }));
    const local = await opened(new WebSocket(`${url.replace('http', 'ws')}/v1/realtime?model=${MODEL}`, { headers: { authorization: 'Bearer bench-proxy' } }));
    const session = (await (await fetch(`${url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer bench-proxy', 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL }) })).json()) as { url: string };
    const viaPubSub = await opened(new WebSocket(session.url));
    // Warm up, then measure, alternating paths so they share the same conditions.
    for (const ws of [direct, local, viaPubSub]) await roundTrips(ws, 50);
    const d = await roundTrips(direct, EVENTS);
    const l = await roundTrips(local, EVENTS);
    const p = await roundTrips(viaPubSub, EVENTS);
    const rows = [
      { path: 'direct to the simulator', 'p50 ms': ms(pct(d, 50)), 'p99 ms': ms(pct(d, 99)), 'added p50 ms': 0, 'added p99 ms': 0 },
      { path: 'local host direct socket', 'p50 ms': ms(pct(l, 50)), 'p99 ms': ms(pct(l, 99)), 'added p50 ms': ms(pct(l, 50) - pct(d, 50)), 'added p99 ms': ms(pct(l, 99) - pct(d, 99)) },
      { path: 'Web PubSub (stand-in)', 'p50 ms': ms(pct(p, 50)), 'p99 ms': ms(pct(p, 99)), 'added p50 ms': ms(pct(p, 50) - pct(d, 50)), 'added p99 ms': ms(pct(p, 99) - pct(d, 99)) },
    ];
    console.table(rows);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/realtime.json', JSON.stringify({ date: new Date().toISOString(), events: EVENTS, rows }, null, 2));
    for (const ws of [direct, local, viaPubSub]) ws.close();
  } finally {
    await server.close();
    gateway.close();
    await pubsub.close();
    await sim.close();
  }
}

void main();
