import { installAudio } from './audio';
import { AzureOpenAISimulator } from './server';

/** Adds the simulator's operations beyond chat, completions and embeddings. */
export function installSimulatorOperations(sim: AzureOpenAISimulator): void {
  installAudio(sim);
}
