/** @module Deployments Azure keeps refusing for the gateway's own configuration: reported on /health by the setting to fix. */
import { ConfigProblem, GatewayConfig } from '../config/config';
import { Deployment } from '../azure-openai/deployment';
import { Counts } from '../balancer/stats';

/**
 * What this instance's recent counts say is wrong with the configuration:
 * deployments whose every recent try Azure refused for the gateway's
 * credential (401, 403) or answered that it has no such deployment, with
 * nothing served since. Named by setting and model, never by deployment or
 * address (/health is public).
 */
export function refusalProblems(config: GatewayConfig, recent: (d: Deployment) => Counts): ConfigProblem[] {
  const refused = new Map<string, Set<string>>();
  const missing = new Set<string>();
  for (const [model, pool] of config.models) {
    for (const d of pool) {
      const counts = recent(d);
      if ((counts.ok ?? 0) > 0) continue;
      // More than one refusal: one may be a key mid-rotation, or a passing firewall or sign-in failure.
      if ((counts.rejected ?? 0) >= REFUSALS_TO_REPORT) {
        const setting = credentialSetting(config, d);
        refused.set(setting, (refused.get(setting) ?? new Set()).add(model));
      } else if ((counts.missing ?? 0) > 0) {
        missing.add(model);
      }
    }
  }
  const problems: ConfigProblem[] = [];
  for (const [setting, models] of refused) {
    problems.push({ setting, kind: 'credential', message: `${CREDENTIAL_WORDS[setting]} Azure OpenAI refused the gateway (401, 403 or a redirect), or it could not sign in, on every recent request to a deployment of ${[...models].join(', ')}.` });
  }
  if (missing.size > 0) {
    problems.push({ setting: 'MODEL_DEPLOYMENTS', message: `names deployments Azure OpenAI says do not exist (DeploymentNotFound) for ${[...missing].join(', ')}: check their names (GET /health/deployments, with a proxy key, says which), or create them.` });
  }
  return problems;
}

/** The readiness check's finding: the resource of `models` refused the credential `setting` gives, with `status`. */
export function credentialProblem(setting: string, status: number, models: readonly string[]): ConfigProblem {
  return { setting, kind: 'credential', message: `${CREDENTIAL_WORDS[setting]} Azure OpenAI refused it (${status}) when the gateway checked the resource that serves ${models.join(', ')}.` };
}

/** Whether a problem is about a credential Azure refused (from the readiness check or from requests). */
export function isCredentialProblem(p: ConfigProblem): boolean {
  return p.kind === 'credential';
}

/** Refusals of one deployment, with nothing served, before /health reports its credential. */
const REFUSALS_TO_REPORT = 3;

/** The setting that gives a deployment its credential. */
export function credentialSetting(config: GatewayConfig, d: Deployment): string {
  if (!d.usesDefaultKey) return 'MODEL_DEPLOYMENTS';
  if (config.keyVault !== undefined) return 'KEY_VAULT_URL';
  return 'AZURE_OPENAI_API_KEY';
}

const CREDENTIAL_WORDS: Record<string, string> = {
  MODEL_DEPLOYMENTS: 'gives a deployment its own key, or none (the gateway then signs in with its managed identity, which needs the Cognitive Services OpenAI User role on that resource);',
  KEY_VAULT_URL: 'names the Key Vault whose Azure OpenAI key secret the gateway uses, or the managed identity it signs in with when there is none;',
  AZURE_OPENAI_API_KEY: 'is the key the gateway uses (when unset, it signs in with its managed identity, which needs the Cognitive Services OpenAI User role on the resource);',
};
