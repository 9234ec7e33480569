import { randomBytes } from 'node:crypto';
import { createGateway } from '../bootstrap';
import { loadConfig } from '../config/config';
import { Gateway, GatewayDeps } from '../gateway/gateway';
import { Env } from '../config/settings';
import { routeTable } from '../routes';
import { AzureOpenAISimulator } from '../simulator/server';
import { installSimulatorOperations } from '../simulator/operations';
import { LocalServer } from './server';
import { wantsSimulator } from './settings';
import { AzuriteProcess, azuriteAddress, azuriteTableMain, portAnswers, spawnAzurite } from './azurite';

/** The models the built-in simulator serves, named as in the original design. */
export const SIMULATOR_MODELS: Record<string, string[]> = {
  'gpt-4-04-14-uplyf': ['gpt-4-04-14-uplyf-1', 'gpt-4-04-14-uplyf-2'],
  'model-router-uplyf': ['model-router-uplyf'],
  'gpt-4o-mini': ['gpt-4o-mini'],
  'text-embedding-3-small': ['text-embedding-3-small'],
  'gpt-35-turbo-instruct': ['gpt-35-turbo-instruct'],
  'whisper-1': ['whisper-1'],
  'tts-1': ['gpt-4o-mini-tts'],
  'gpt-image-1': ['gpt-image-1'],
  'gpt-4o-mini-realtime-preview': ['gpt-4o-mini-realtime-preview'],
};

/** The proxy key of the original design's examples, used when none is set in simulator mode. */
export const SIMULATOR_PROXY_KEY = 'your-proxy-api-key';

export interface LocalHost {
  readonly url: string;
  readonly gateway: Gateway;
  readonly server: LocalServer;
  readonly simulator?: AzureOpenAISimulator;
  /** Where it listens, then one line per fact: settings read, upstream and storage (and whether they answer), models, problems. */
  readonly banner: string;
  close(): Promise<void>;
  /** Ends its child processes at once, synchronously: for a process that is exiting without close(). */
  abandon(): void;
}

export interface StartOptions {
  readonly env: Env;
  readonly port?: number;
  readonly host?: string;
  readonly deps?: Partial<GatewayDeps>;
  /** What the settings were read from, in a few words (see localSettings). */
  readonly settingsSource?: string;
}

/**
 * Starts the local host: with no Azure settings, the simulator it forwards
 * to; with development storage (UseDevelopmentStorage=true) and nothing
 * answering where it points, Azurite, in memory. Then it checks that the
 * upstream and the storage answer, and says so.
 */
export async function startLocalHost(options: StartOptions): Promise<LocalHost> {
  let env = options.env;
  let simulator: AzureOpenAISimulator | undefined;
  let azurite: AzuriteProcess | undefined;
  const facts: string[] = [];
  if (options.settingsSource) facts.push(`settings: ${options.settingsSource}`);
  try {
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
    }
    const config = loadConfig(env);
    let storageName = config.balancerStorage?.setting;
    const dev = config.balancerStorage && 'connectionString' in config.balancerStorage ? azuriteAddress(config.balancerStorage.connectionString) : undefined;
    if (dev) {
      const where = `${dev.host}:${dev.port}`;
      if (await portAnswers(dev)) {
        storageName = `Azurite already running on ${where} (${storageName})`;
      } else if (azuriteTableMain() === undefined) {
        storageName = `${storageName} expects Azurite on ${where}, and the azurite package is not installed (npm install)`;
      } else {
        azurite = await spawnAzurite(dev).catch(() => undefined);
        storageName = azurite ? `Azurite on ${where}, started by the gateway, in memory (${storageName})` : `${storageName} expects Azurite on ${where}, which could not be started`;
      }
    }

    const gateway = createGateway(env, { config, directRealtime: true, ...options.deps });
    const server = new LocalServer(gateway, routeTable);
    const listening = server.listen(options.port ?? 7071, options.host ?? '127.0.0.1');
    const [url, reachable] = await Promise.all([listening.catch(async (err) => {
      void gateway.close();
      throw err;
    }), gateway.readiness.check()]);

    for (const r of reachable.upstream) {
      const what = simulator ? 'the built-in Azure OpenAI simulator (set AZURE_OPENAI_ENDPOINT to use Azure)' : `Azure OpenAI (${r.setting}${reachable.upstream.length > 1 ? `: ${r.models.join(', ')}` : ''})`;
      const answer = r.problem ? `does not answer (${r.problem}); its requests fail until it does` : r.refused ? `answers, but refuses the gateway's credential (${r.refused.status}): check ${r.refused.setting} (GET /health says more)` : 'answers';
      facts.push(`upstream: ${what}, ${answer}`);
    }
    facts.push(reachable.storage
      ? `storage: ${storageName}, ${reachable.storage.problem ? `does not work (${reachable.storage.problem}); balancing on this process alone until it does` : 'answers; the round-robin cursor and deployment health are shared through it'}`
      : 'storage: none (AzureWebJobsStorage is not set); the round-robin cursor is this process\'s own');
    facts.push(`models: ${[...gateway.config.models.keys()].join(', ') || 'none'}`);
    if (simulator && !options.env.PROXY_API_KEY?.trim()) facts.push(`proxy key: "${SIMULATOR_PROXY_KEY}" (PROXY_API_KEY is not set)`);
    const problems = gateway.config.problems;
    if (problems.length > 0) facts.push(`configuration problems: ${[...new Set(problems.map((p) => p.setting))].join(', ')} (GET /health says what is wrong)`);

    return {
      url,
      gateway,
      server,
      simulator,
      banner: [`Gateway listening on ${url.replace('127.0.0.1', 'localhost')}`, ...facts.map((f) => `  ${f}`)].join('\n'),
      async close() {
        await Promise.all([server.close().then(() => gateway.close()), simulator?.close(), azurite?.stop()]);
      },
      abandon() {
        azurite?.child.kill('SIGKILL');
      },
    };
  } catch (err) {
    await simulator?.close();
    await azurite?.stop();
    throw err;
  }
}
