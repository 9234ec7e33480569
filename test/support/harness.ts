import OpenAI from 'openai';
import { Gateway, GatewayDeps } from '../../src/gateway/gateway';
import { createGateway } from '../../src/bootstrap';
import { MemoryLogger } from '../../src/core/log';
import { Env } from '../../src/config/settings';
import { LocalServer } from '../../src/local/server';
import { routeTable } from '../../src/routes';
import { AzureOpenAISimulator, SimulatorOptions } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';

export const AZURE_KEY = 'azure-key-4f8a1c2e9b7d';
export const PROXY_KEY = 'proxy-key-7e3b9a0c51';

export interface Harness {
  readonly sim: AzureOpenAISimulator;
  readonly simUrl: string;
  readonly gateway: Gateway;
  readonly server: LocalServer;
  readonly url: string;
  readonly logger: MemoryLogger;
  readonly client: OpenAI;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Settings; AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY and PROXY_API_KEY default to the simulator's. */
  readonly env?: (simUrl: string) => Env;
  readonly simulator?: SimulatorOptions;
  readonly deps?: Partial<GatewayDeps>;
  /** Reuse a running simulator (several gateway instances in front of one upstream). */
  readonly sharedSimulator?: AzureOpenAISimulator;
}

/** A simulator and a gateway on the local host, on real loopback sockets, with an SDK client for it. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const sim = options.sharedSimulator ?? new AzureOpenAISimulator({ apiKey: AZURE_KEY, ...options.simulator });
  if (!options.sharedSimulator) {
    installSimulatorOperations(sim);
    await sim.start();
  }
  const simUrl = sim.url;
  const env: Env = {
    PROXY_API_KEY: PROXY_KEY,
    AZURE_OPENAI_ENDPOINT: simUrl,
    AZURE_OPENAI_API_KEY: AZURE_KEY,
    MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini': ['chat-a', 'chat-b'], 'text-embedding-3-small': ['embed'], 'gpt-35-turbo-instruct': ['instruct'], 'whisper-1': ['whisper'], 'tts-1': ['tts'] }),
    ...options.env?.(simUrl),
  };
  const logger = new MemoryLogger();
  const gateway = createGateway(env, { logger, directRealtime: true, ...options.deps });
  const server = new LocalServer(gateway, routeTable);
  const url = await server.listen(0);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: PROXY_KEY, maxRetries: 0 });
  return {
    sim, simUrl, gateway, server, url, logger, client,
    async close() {
      await server.close();
      await gateway.close();
      assertLogsClean(logger.lines, [AZURE_KEY, PROXY_KEY, new URL(simUrl).host, ...promptsSeenBy(sim)]);
      if (!options.sharedSimulator) await sim.close();
    },
  };
}

/**
 * Every end-to-end suite ends with this scan of what its gateways logged: no
 * key, no upstream host, no prompt text the simulator received.
 */
export function assertLogsClean(lines: readonly string[], forbidden: readonly string[]): void {
  for (const line of lines) {
    for (const word of forbidden) {
      if (word && line.includes(word)) throw new Error(`a log line contains "${word.slice(0, 12)}…": ${line.slice(0, 200)}`);
    }
  }
}

/** The prompt texts (of a useful length) the simulator was sent. */
export function promptsSeenBy(sim: AzureOpenAISimulator): string[] {
  const prompts = new Set<string>();
  for (const call of sim.calls) {
    try {
      const body = JSON.parse(call.body.toString('utf8'));
      for (const m of body.messages ?? []) if (typeof m.content === 'string' && m.content.length >= 8) prompts.add(m.content);
      if (typeof body.prompt === 'string' && body.prompt.length >= 8) prompts.add(body.prompt);
      if (typeof body.input === 'string' && body.input.length >= 8) prompts.add(body.input);
    } catch {
      // Not JSON (an audio upload): nothing to look for.
    }
  }
  return [...prompts];
}

/** Polls until the condition holds, or fails after the timeout. */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
