/**
 * npm run bench:cursor — the shared cursor's cost against Azurite: how long a
 * request waits for its position (amortised, including the storage round
 * trips of block reservations) and how many conditional writes lose a race,
 * per 1,000 requests, with 1, 2 and 4 instances drawing from one pool at once.
 */
import { performance } from 'node:perf_hooks';
import { writeFileSync, mkdirSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { HealthView } from '../src/balancer/cooldowns';
import { MemoryLogger } from '../src/core/log';
import { SharedBalancerState } from '../src/balancer/shared-state';
import { TableBalancerStore } from '../src/balancer/table-store';
import { startAzurite } from '../test/support/azurite';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const CONCURRENCY_PER_INSTANCE = 16;
const POOL_CYCLE = 2;

async function run(instances: number, connectionString: string, table: string) {
  const states = Array.from({ length: instances }, () => new SharedBalancerState({
    store: new TableBalancerStore(TableClient.fromConnectionString(connectionString, table, { allowInsecureConnection: true })),
    health: new HealthView(),
    logger: new MemoryLogger(),
  }));
  // Warm up: create the table and the cursor entity.
  await states[0].next('pool', POOL_CYCLE);
  const positions = new Set<number>();
  let issued = 0;
  let waitedMs = 0;
  const started = performance.now();
  const loop = async (state: SharedBalancerState) => {
    while (issued < REQUESTS) {
      issued++;
      const t = performance.now();
      const p = await state.next('pool', POOL_CYCLE);
      waitedMs += performance.now() - t;
      positions.add(p);
      await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all(states.flatMap((s) => Array.from({ length: CONCURRENCY_PER_INSTANCE }, () => loop(s))));
  const wallMs = performance.now() - started;
  const total = (k: 'reservations' | 'conflicts' | 'fallbacks' | 'storageMs') => states.reduce((n, s) => n + s.stats[k], 0);
  return {
    instances,
    requests: issued,
    distinctPositions: positions.size,
    reservations: total('reservations'),
    conflictsPer1000: Math.round((total('conflicts') / issued) * 1000 * 100) / 100,
    fallbacks: total('fallbacks'),
    waitPerRequestMs: Math.round((waitedMs / issued) * 1000) / 1000,
    storageMsPerRequest: Math.round((total('storageMs') / issued) * 1000) / 1000,
    requestsPerSecond: Math.round(issued / (wallMs / 1000)),
  };
}

async function main() {
  const azurite = await startAzurite();
  try {
    const rows = [];
    for (const m of [1, 2, 4]) rows.push(await run(m, azurite.connectionString, `bench${m}x${Date.now() % 100000}`));
    console.table(rows);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/cursor.json', JSON.stringify({ date: new Date().toISOString(), requests: REQUESTS, rows }, null, 2));
  } finally {
    await azurite.stop();
  }
}

void main();
