import { installSimulatorOperations } from './operations';
import { AzureOpenAISimulator } from './server';

/**
 * The simulator on its own (`node dist/src/simulator/main.js`): for pointing a
 * gateway or a benchmark at it from another process. SIM_PORT picks the port
 * (default: any free one), SIM_API_KEY the api-key it accepts, SIM_CONTROL=1
 * turns on its control surface (/_simulator/…) for loopback clients.
 */
async function main(): Promise<void> {
  const sim = new AzureOpenAISimulator({ apiKey: process.env.SIM_API_KEY || undefined, control: process.env.SIM_CONTROL === '1' });
  installSimulatorOperations(sim);
  sim.recordCalls = process.env.SIM_RECORD_CALLS === '1';
  const url = await sim.start(Number(process.env.SIM_PORT ?? 0));
  console.log(`Azure OpenAI simulator listening on ${url}`);
  process.once('SIGTERM', () => void sim.close().then(() => process.exit(0)));
  process.once('SIGINT', () => void sim.close().then(() => process.exit(0)));
}

void main();
