/** @module One Azure OpenAI deployment: where it lives, how it is reached, and its share of a pool. */
import { createHash } from 'node:crypto';
import { PoolMember } from '../balancer/balancer';

export const DEFAULT_API_VERSION = '2025-04-01-preview';

/** One Azure OpenAI deployment a model can be served from. */
export interface Deployment extends PoolMember {
  readonly deployment: string;
  /** Origin of the resource, no trailing slash. */
  readonly endpoint: string;
  readonly apiKey?: string;
  /** On the default resource without a key of its own: takes the default key, which Key Vault may rotate. */
  readonly usesDefaultKey: boolean;
  /** A dated api-version, or "v1" for the GA /openai/v1 form. */
  readonly apiVersion: string;
  /** The api-version this deployment names itself, if any (not the resource-wide default). */
  readonly namedApiVersion?: string;
}

/** What a deployment takes from the default resource unless it names its own. */
export interface DeploymentDefaults {
  readonly endpoint?: string;
  readonly apiKey?: string;
  readonly apiVersion: string;
}

export interface DeploymentOverrides {
  endpoint?: string;
  apiKey?: string;
  apiVersion?: string;
  weight?: number;
  priority?: number;
}

export function makeDeployment(name: string, defaults: DeploymentDefaults, o: DeploymentOverrides): Deployment {
  const endpoint = o.endpoint ?? defaults.endpoint ?? '';
  // The default key belongs to the default resource only: never send it to another one.
  const usesDefaultKey = o.apiKey === undefined && (o.endpoint === undefined || o.endpoint === defaults.endpoint);
  const apiKey = o.apiKey ?? (usesDefaultKey ? defaults.apiKey : undefined);
  return Object.freeze({
    usesDefaultKey,
    // Stable across instances and restarts: keys the shared cursor and cooldowns.
    id: createHash('sha256').update(`${endpoint}\n${name}`).digest('hex').slice(0, 24),
    label: name,
    deployment: name,
    endpoint,
    apiKey,
    apiVersion: o.apiVersion ?? defaults.apiVersion,
    namedApiVersion: o.apiVersion,
    weight: o.weight ?? 1,
    priority: o.priority ?? 1,
  });
}

/** Two deployments of one name on different resources need different labels in logs. */
export function labelled(pool: Deployment[]): Deployment[] {
  const seen = new Map<string, number>();
  return pool.map((d) => {
    const n = (seen.get(d.deployment) ?? 0) + 1;
    seen.set(d.deployment, n);
    return n === 1 ? d : Object.freeze({ ...d, label: `${d.deployment}#${n}` });
  });
}
