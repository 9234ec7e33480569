import { installAudio } from './audio';
import { installImages } from './images';
import { RealtimeSimulator } from './realtime';
import { installResponses } from './responses';
import { AzureOpenAISimulator } from './server';

/** Adds the simulator's operations beyond chat, completions and embeddings: audio, images, responses and realtime. */
export function installSimulatorOperations(sim: AzureOpenAISimulator): RealtimeSimulator {
  installAudio(sim);
  installImages(sim);
  installResponses(sim);
  const realtime = new RealtimeSimulator(sim);
  sim.realtime = realtime;
  return realtime;
}
