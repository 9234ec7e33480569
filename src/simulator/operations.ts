import { installAudio } from './audio';
import { RealtimeSimulator } from './realtime';
import { AzureOpenAISimulator } from './server';

/** Adds the simulator's operations beyond chat, completions and embeddings: audio and realtime. */
export function installSimulatorOperations(sim: AzureOpenAISimulator): RealtimeSimulator {
  installAudio(sim);
  const realtime = new RealtimeSimulator(sim);
  sim.realtime = realtime;
  return realtime;
}
