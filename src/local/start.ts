import { randomBytes } from 'node:crypto';
import { createGateway } from '../bootstrap';
import { Gateway, GatewayDeps } from '../gateway/gateway';
import { Env } from '../config/settings';
import { routeTable } from '../routes';
import { AzureOpenAISimulator } from '../simulator/server';
import { installSimulatorOperations } from '../simulator/operations';
import { LocalServer } from './server';
import { wantsSimulator } from './settings';

/** The models the built-in simulator serves, named as in the original design. */
export const SIMULATOR_MODELS: Record<string, string[]> = {
  'gpt-4-04-14-uplyf': ['gpt-4-04-14-uplyf-1', 'gpt-4-04-14-uplyf-2'],
  'model-router-uplyf': ['model-router-uplyf'],
  'gpt-4o-mini': ['gpt-4o-mini'],
  'text-embedding-3-small': ['text-embedding-3-small'],
  'gpt-35-turbo-instruct': ['gpt-35-turbo-instruct'],
  'whisper-1': ['whisper-1'],
  'tts-1': ['gpt-4o-mini-tts'],
  'gpt-4o-mini-realtime-preview': ['gpt-4o-mini-realtime-preview'],
};

/** The proxy key of the original design's examples, used when none is set in simulator mode. */
export const SIMULATOR_PROXY_KEY = 'your-proxy-api-key';

export interface LocalHost {
  readonly url: string;
  readonly gateway: Gateway;
  readonly server: LocalServer;
  readonly simulator?: AzureOpenAISimulator;
  /** One line that says where the gateway listens and what its upstream is. */
  readonly banner: string;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly env: Env;
  readonly port?: number;
  readonly host?: string;
  readonly deps?: Partial<GatewayDeps>;
}

/** Starts the local host; with no Azure settings, also the simulator it forwards to. */
export async function startLocalHost(options: StartOptions): Promise<LocalHost> {
  let env = options.env;
  let simulator: AzureOpenAISimulator | undefined;
  const notes: string[] = [];
  if (wantsSimulator(env)) {
    const apiKey = randomBytes(16).toString('hex');
    simulator = new AzureOpenAISimulator({ apiKey });
    installSimulatorOperations(simulator);
    const simulatorUrl = await simulator.start();
    env = {
      ...env,
      AZURE_OPENAI_ENDPOINT: simulatorUrl,
      AZURE_OPENAI_API_KEY: apiKey,
      MODEL_DEPLOYMENTS: JSON.stringify(SIMULATOR_MODELS),
      PROXY_API_KEY: env.PROXY_API_KEY?.trim() ? env.PROXY_API_KEY : SIMULATOR_PROXY_KEY,
    };
    notes.push('upstream: built-in Azure OpenAI simulator (set AZURE_OPENAI_ENDPOINT to use Azure)');
    if (!options.env.PROXY_API_KEY?.trim()) notes.push(`proxy key: "${SIMULATOR_PROXY_KEY}" (PROXY_API_KEY is not set)`);
  } else {
    notes.push('upstream: Azure OpenAI');
  }
  const gateway = createGateway(env, { directRealtime: true, ...options.deps });
  notes.push(gateway.shared ? 'balancer: shared through Table Storage' : 'balancer: in-process cursor (no AzureWebJobsStorage or BALANCER_STORAGE_CONNECTION set)');
  notes.push(`models: ${[...gateway.config.models.keys()].join(', ') || 'none'}`);
  if (gateway.config.problems.length > 0) notes.push(`configuration problems: ${gateway.config.problems.length} (see GET /health)`);
  const server = new LocalServer(gateway, routeTable);
  const url = await server.listen(options.port ?? 7071, options.host ?? '127.0.0.1');
  return {
    url,
    gateway,
    server,
    simulator,
    banner: `Gateway listening on ${url.replace('127.0.0.1', 'localhost')}; ${notes.join('; ')}`,
    async close() {
      await server.close();
      gateway.close();
      await simulator?.close();
    },
  };
}
