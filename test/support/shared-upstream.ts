import { afterAll, afterEach, beforeAll } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { Azurite, startAzurite } from './azurite';
import { AZURE_KEY, Harness } from './harness';

export interface SharedUpstream {
  readonly azurite: Azurite;
  readonly sim: AzureOpenAISimulator;
  /** Gateways to close after each test. */
  readonly running: Harness[];
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
