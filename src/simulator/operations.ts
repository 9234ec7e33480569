import { AzureOpenAISimulator } from './server';

/** Adds the simulator's optional operations (audio, speech) as they are built. */
export function installSimulatorOperations(_sim: AzureOpenAISimulator): void {}
