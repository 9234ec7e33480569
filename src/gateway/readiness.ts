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
    const problems: ConfigProblem[] = [];
    for (const r of upstream) {
      if (r.problem) problems.push({ setting: r.setting, message: `names an Azure OpenAI resource that does not answer (${r.problem}); requests for ${r.models.join(', ')} fail until it does.` });
      if (r.refused) problems.push(credentialProblem(r.refused.setting, r.refused.status, r.models));
    }
    if (storage?.problem) {
      problems.push({ setting: storage.setting, message: `names the balancer's storage, which does not work (${storage.problem}); each instance balances on its own until it does.` });
    }
    return problems;
  }

  /**
   * Each resource is checked once per credential its deployments use (the
   * default key or identity, and each deployment's own key), so a wrong key is
   * found whichever entry gives it, and a refusal names only the models that
   * use it. Then the checks are put together per resource: one that does not
   * answer is one finding, for all its models, and one that answers is one
   * line, besides a finding for each credential it refused.
   */
  private async run(): Promise<Reachability> {
    const { config } = this.options;
    const byCredential = new Map<string, { endpoint: string; models: Set<string>; first: Deployment }>();
    for (const [model, pool] of config.models) {
      for (const d of pool) {
        const key = `${d.endpoint}\n${d.usesDefaultKey ? 'default' : `own:${d.apiKey ?? ''}`}`;
        const group = byCredential.get(key) ?? { endpoint: d.endpoint, models: new Set<string>(), first: d };
        group.models.add(model);
        byCredential.set(key, group);
      }
    }
    const [probed, storageProblem] = await Promise.all([
      Promise.all([...byCredential.values()].map(async (group) => ({ group, ...(await this.options.probeUpstream(group.first)) }))),
      this.options.probeStorage?.(),
    ]);
    const byEndpoint = new Map<string, typeof probed>();
    for (const p of probed) {
      const checks = byEndpoint.get(p.group.endpoint);
      if (checks) checks.push(p);
      else byEndpoint.set(p.group.endpoint, [p]);
    }
    const modelsOf = (checks: typeof probed) => [...new Set(checks.flatMap((c) => [...c.group.models]))];
    const upstream: ResourceCheck[] = [];
    for (const [endpoint, checks] of byEndpoint) {
      const setting = endpoint === config.defaultResource?.endpoint ? config.defaultResource.setting : 'MODEL_DEPLOYMENTS';
      const silent = checks.find((c) => c.problem !== undefined);
      if (silent) {
        upstream.push({ setting, models: modelsOf(checks), problem: silent.problem });
        continue;
      }
      const accepted = checks.filter((c) => c.refused === undefined);
      if (accepted.length > 0) upstream.push({ setting, models: modelsOf(accepted), problem: undefined });
      for (const c of checks.filter((x) => x.refused !== undefined)) {
        upstream.push({ setting, models: [...c.group.models], problem: undefined, refused: { status: c.refused!, setting: credentialSetting(config, c.group.first) } });
      }
    }
    const storage = config.balancerStorage && this.options.probeStorage ? { setting: config.balancerStorage.setting, problem: storageProblem } : undefined;
    return { upstream, storage };
  }
}
