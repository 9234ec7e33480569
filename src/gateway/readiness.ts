/** @module Whether what the gateway depends on answers: each Azure OpenAI resource it forwards to, and the balancer's storage. */
import { ConfigProblem, GatewayConfig } from '../config/config';
import { Deployment } from '../azure-openai/deployment';
import type { ResourceProbe } from '../azure-openai/upstream';
import { credentialProblem, credentialSetting } from './refusals';

export interface ResourceCheck {
  /** The setting that names the resource (its address is never shown). */
  readonly setting: string;
  /** The models some of whose deployments live there. */
  readonly models: readonly string[];
  /** Why it does not answer; undefined when it does. */
  readonly problem?: string;
  /** It answers, but refused the gateway's credential: the status, and the setting that gives the credential. */
  readonly refused?: { readonly status: number; readonly setting: string };
}

export interface StorageCheck {
  readonly setting: string;
  readonly problem?: string;
}

export interface Reachability {
  readonly upstream: readonly ResourceCheck[];
  /** Unset when no storage is configured. */
  readonly storage?: StorageCheck;
}

export interface ReadinessOptions {
  readonly config: GatewayConfig;
  /** Whether the resource of `d` answers, and whether it refused the credential of `d` (see AzureOpenAI.probe). */
  probeUpstream(d: Deployment): Promise<ResourceProbe>;
  /** The same for the balancer's storage, when there is one. */
  probeStorage?(): Promise<string | undefined>;
  readonly now: () => number;
  /** How long one check's result stands (default 30 s): /health is public, and must not become a way to make the gateway call out. */
  readonly intervalMs?: number;
}

/**
 * Checks that each Azure OpenAI resource answers and that the balancer's
 * storage works, at most once per interval, however often asked: /health
 * reports what does not, and the local host says it at start. Once one check
 * has finished, a caller gets its result at once while a stale one is
 * refreshed behind it, so /health never waits on a slow upstream.
 */
export class Readiness {
  private startedAt = -Infinity;
  private running?: Promise<Reachability>;
  private settled?: Reachability;

  constructor(private readonly options: ReadinessOptions) {}

  check(): Promise<Reachability> {
    const now = this.options.now();
    if (now - this.startedAt >= (this.options.intervalMs ?? 30_000)) {
      this.startedAt = now;
      const running = this.run();
      this.running = running;
      void running.then((r) => (this.settled = r), () => {});
    }
    return this.settled !== undefined ? Promise.resolve(this.settled) : this.running!;
  }

  /** What does not answer, as problems named by setting, like configuration problems. */
  async problems(): Promise<ConfigProblem[]> {
    const { upstream, storage } = await this.check();
    const refusals: ConfigProblem[] = [];
    // A resource checked once per credential: if it does not answer, it is said once, for all its models.
    const silent = new Map<string, { setting: string; problem: string; models: Set<string> }>();
    for (const r of upstream) {
      if (r.problem) {
        const key = `${r.setting}\n${r.problem}`;
        const entry = silent.get(key) ?? { setting: r.setting, problem: r.problem, models: new Set<string>() };
        for (const m of r.models) entry.models.add(m);
        silent.set(key, entry);
      }
      if (r.refused) refusals.push(credentialProblem(r.refused.setting, r.refused.status, r.models));
    }
    const problems: ConfigProblem[] = [...silent.values()].map(({ setting, problem, models }) => ({
      setting, message: `names an Azure OpenAI resource that does not answer (${problem}); requests for ${[...models].join(', ')} fail until it does.`,
    }));
    problems.push(...refusals);
    if (storage?.problem) {
      problems.push({ setting: storage.setting, message: `names the balancer's storage, which does not work (${storage.problem}); each instance balances on its own until it does.` });
    }
    return problems;
  }

  private async run(): Promise<Reachability> {
    const { config } = this.options;
    // Each resource once per credential its deployments use (the default key, a deployment's own key, or the
    // identity), so a wrong key is found whichever entry gives it, and only the models that use it are named.
    const byCredential = new Map<string, { endpoint: string; models: Set<string>; first: Deployment }>();
    for (const [model, pool] of config.models) {
      for (const d of pool) {
        const key = `${d.endpoint}\n${d.usesDefaultKey ? 'default' : `own:${d.apiKey ?? ''}`}`;
        const resource = byCredential.get(key) ?? { endpoint: d.endpoint, models: new Set<string>(), first: d };
        resource.models.add(model);
        byCredential.set(key, resource);
      }
    }
    const [upstream, storageProblem] = await Promise.all([
      Promise.all([...byCredential.values()].map(async ({ endpoint, models, first }): Promise<ResourceCheck> => {
        const { problem, refused } = await this.options.probeUpstream(first);
        return {
          setting: endpoint === config.defaultResource?.endpoint ? config.defaultResource.setting : 'MODEL_DEPLOYMENTS',
          models: [...models],
          problem,
          ...(refused !== undefined ? { refused: { status: refused, setting: credentialSetting(config, first) } } : {}),
        };
      })),
      this.options.probeStorage?.(),
    ]);
    const storage = config.balancerStorage && this.options.probeStorage ? { setting: config.balancerStorage.setting, problem: storageProblem } : undefined;
    return { upstream, storage };
  }
}
