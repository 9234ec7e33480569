import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { Azurite, startAzurite } from './azurite';
import { Env } from '../../src/config/settings';
import { AZURE_KEY, Harness, startHarness } from './harness';

export interface SharedUpstream {
  readonly azurite: Azurite;
  readonly sim: AzureOpenAISimulator;
  /** Gateways to close after each test. */
  readonly running: Harness[];
}

/**
 * `count` gateway instances in front of the shared simulator, sharing the
 * balancer table `table` in Azurite (health read every 100 ms); closed after the test.
 */
export async function sharingInstances(shared: SharedUpstream, count: number, table: string, env: Env): Promise<Harness[]> {
  const list: Harness[] = [];
  for (let i = 0; i < count; i++) {
    const h = await startHarness({
      sharedSimulator: shared.sim,
      env: () => ({ BALANCER_STORAGE_CONNECTION: shared.azurite.connectionString, BALANCER_TABLE: table, BALANCER_HEALTH_REFRESH_MS: '100', ...env }),
    });
    list.push(h);
    shared.running.push(h);
  }
  return list;
}

/** Sends n requests, each to a random instance, `parallel` at a time; `send` returns the status, which must be 200. */
export async function spread(hs: readonly Harness[], n: number, send: (h: Harness) => Promise<number>, parallel = 8): Promise<void> {
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      sent++;
      expect(await send(hs[Math.floor(Math.random() * hs.length)])).toBe(200);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/**
 * One Azurite and one simulator for a whole test file, in front of which each
 * test starts the gateway instances it needs; those are closed, and the
 * simulator's switches reset, after every test.
 */
export function useSharedUpstream(): SharedUpstream {
  const shared = { running: [] as Harness[] } as { azurite: Azurite; sim: AzureOpenAISimulator; running: Harness[] };
  beforeAll(async () => {
    shared.azurite = await startAzurite();
    shared.sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
    await shared.sim.start();
  });
  afterAll(async () => {
    await shared.sim.close();
    await shared.azurite.stop();
  });
  afterEach(async () => {
    await Promise.all(shared.running.splice(0).map((h) => h.close()));
    shared.sim.reset();
  });
  return shared;
}
