/** @module Settings parsed and validated once, at start, into a frozen configuration. */
import { DEFAULT_API_VERSION, Deployment, DeploymentDefaults, DeploymentOverrides, labelled, makeDeployment } from '../azure-openai/deployment';
import { Env, SettingName } from './settings';
import { meantClause } from './misspelt';
import { MAX_COOLDOWN_MS } from '../balancer/cooldowns';
import { KeyEntry, parseNamedKeys } from '../keys/parse';
import { TableClient } from '@azure/data-tables';

/** A storage account reached by connection string, or by URI with the managed identity. */
export type StorageTarget = ({ readonly connectionString: string } | { readonly tableServiceUri: string }) & {
  /** The setting it came from, for messages about it. */
  readonly setting: string;
};

export interface KeyVaultSettings {
  readonly url: string;
  readonly proxyKeysSecret: string;
  readonly namedKeysSecret: string;
  readonly azureOpenAIKeySecret: string;
  /** Read when realtime uses Web PubSub by key: the connection string, so its key can rotate. */
  readonly webPubSubSecret: string;
  readonly refreshMs: number;
}

/**
 * Web PubSub by access key (connection string: the key checks each event's
 * signature), or by identity (endpoint: the gateway's managed identity calls
 * the service, and each event must carry an Entra ID token from the
 * service's identity for the configured audience).
 */
export type WebPubSubSettings =
  | { readonly mode: 'key'; readonly hub: string; readonly endpoint: string; readonly connectionString: string; readonly accessKey: string }
  | { readonly mode: 'identity'; readonly hub: string; readonly endpoint: string; readonly eventAudience: string; readonly eventIssuers: readonly string[]; readonly eventPrincipal: string };

export interface ConfigProblem {
  readonly setting: string;
  readonly message: string;
  /** A credential Azure refused, found by the readiness check or by requests: /health says each once. */
  readonly kind?: 'credential';
}

export interface GatewayConfig {
  /** PROXY_API_KEY: unnamed keys with no limits. */
  readonly proxyKeys: readonly string[];
  /** The default Azure OpenAI resource and the setting that names it. */
  readonly defaultResource?: { readonly endpoint: string; readonly setting: 'AZURE_OPENAI_ENDPOINT' | 'AZURE_OPENAI_URL' };
  /** PROXY_KEYS: named keys with their models and limits (empty when Key Vault holds the keys). */
  readonly namedKeys: readonly KeyEntry[];
  readonly models: ReadonlyMap<string, readonly Deployment[]>;
  /** Models whose requests stick to a deployment by prompt_cache_key (or user, or safety_identifier). */
  readonly promptCacheAffinity: ReadonlySet<string>;
  readonly maxRequestBodyBytes: number;
  readonly maxAudioFileBytes: number;
  /** Request bodies held in memory at once, all requests together. */
  readonly maxInflightBodyBytes: number;
  /** All files of one image edit together. */
  readonly maxImageUploadBytes: number;
  readonly upstreamHeadersTimeoutMs: number;
  readonly upstreamIdleTimeoutMs: number;
  /** The longest a request may take to its answer's first byte, failover included. */
  readonly upstreamDeadlineMs: number;
  readonly failureCooldownMs: number;
  /** No cooldown lasts longer, whatever retry-after Azure sent. */
  readonly maxCooldownMs: number;
  /** Where the shared cursor and health live; unset = in-process only. */
  readonly balancerStorage?: StorageTarget;
  readonly balancerTable: string;
  readonly balancerBlockSize: number;
  readonly healthRefreshMs: number;
  readonly storageTimeoutMs: number;
  /** How often usage counts are shared and the instances sharing limits counted. */
  readonly limitsSyncMs: number;
  readonly keyVault?: KeyVaultSettings;
  /** The Web PubSub service carrying realtime sessions; unset = realtime over Web PubSub is off. */
  readonly webPubSub?: WebPubSubSettings;
  /** How long a realtime session's lease lasts without renewal. */
  readonly realtimeLeaseMs: number;
  /** Client id of the user-assigned managed identity, when the app uses one. */
  readonly managedIdentityClientId?: string;
  /** True when some deployment has no key and needs an Entra ID token. */
  readonly needsIdentity: boolean;
  /** Origins whose web pages may call the local host (CORS); empty = none. */
  readonly corsAllowedOrigins: readonly string[];
  /** The proxy calls to Azure OpenAI go through; unset = none (HTTPS_PROXY, HTTP_PROXY, NO_PROXY). */
  readonly upstreamProxy?: ProxySettings;
  /** Empty when the configuration is usable. */
  readonly problems: readonly ConfigProblem[];
}

const MiB = 1024 * 1024;

/** Parses and validates every setting once; problems name the setting and never echo a secret. */
export function loadConfig(env: Env): GatewayConfig {
  const problems: ConfigProblem[] = [];
  const problem = (setting: string, message: string) => problems.push({ setting, message });

  const keyVault = keyVaultSettings(env, problem);
  const proxyKeys = keyVault ? [] : splitKeys(env.PROXY_API_KEY);

  const headersTimeoutMs = positiveInt('UPSTREAM_HEADERS_TIMEOUT_MS', env, 120_000, problem);
  const legacy = parseLegacyUrl(env.AZURE_OPENAI_URL, problem);
  const apiVersion = nonEmpty(env.AZURE_OPENAI_API_VERSION) ?? legacy?.apiVersion ?? DEFAULT_API_VERSION;
  const ownEndpoint = parseEndpoint('AZURE_OPENAI_ENDPOINT', env.AZURE_OPENAI_ENDPOINT, problem);
  const defaultEndpoint = ownEndpoint ?? legacy?.endpoint;
  const defaultKey = nonEmpty(env.AZURE_OPENAI_API_KEY);

  const defaults: DeploymentDefaults = { endpoint: defaultEndpoint, apiKey: defaultKey, apiVersion };
  let models: Map<string, Deployment[]>;
  const promptCacheAffinity = new Set<string>();
  if (nonEmpty(env.MODEL_DEPLOYMENTS)) {
    // A default resource that was given but is not a usable URL has a problem of its own: this one should not say it is missing.
    const noDefaultResource = nonEmpty(env.AZURE_OPENAI_ENDPOINT) !== undefined ? 'AZURE_OPENAI_ENDPOINT is not a usable URL (see its own problem)' : 'AZURE_OPENAI_ENDPOINT is not set';
    models = parseModelDeployments(env.MODEL_DEPLOYMENTS!, defaults, promptCacheAffinity, problem, noDefaultResource);
  } else if (legacy) {
    models = new Map([[legacy.deployment, [makeDeployment(legacy.deployment, defaults, {})]]]);
  } else {
    models = new Map();
    problem('MODEL_DEPLOYMENTS', 'is not set: no model can be served. Set it (or AZURE_OPENAI_URL) to map model names to Azure deployments.');
  }

  let namedKeys: readonly KeyEntry[] = [];
  const rawNamed = keyVault ? undefined : nonEmpty(env.PROXY_KEYS);
  if (rawNamed !== undefined) {
    const parsed = parseNamedKeys(rawNamed, 'PROXY_KEYS', '', new Set(models.keys()));
    namedKeys = parsed.entries;
    problems.push(...parsed.problems);
  }
  if (proxyKeys.length === 0 && namedKeys.length === 0 && !keyVault && rawNamed === undefined) {
    problem('PROXY_API_KEY', 'is not set: clients cannot be authenticated. Set one or more comma-separated keys, or named keys in PROXY_KEYS.');
  }

  const all = [...models.values()].flat();
  return Object.freeze({
    proxyKeys: Object.freeze(proxyKeys),
    defaultResource: defaultEndpoint === undefined ? undefined : { endpoint: defaultEndpoint, setting: ownEndpoint !== undefined ? 'AZURE_OPENAI_ENDPOINT' as const : 'AZURE_OPENAI_URL' as const },
    namedKeys: Object.freeze(namedKeys),
    models,
    promptCacheAffinity,
    ...bodyLimits(env, problem),
    upstreamHeadersTimeoutMs: headersTimeoutMs,
    // As long as for headers: a reasoning model may think for a minute or more between streamed chunks.
    upstreamIdleTimeoutMs: positiveInt('UPSTREAM_IDLE_TIMEOUT_MS', env, 120_000, problem),
    // Azure Functions' front end gives an HTTP answer 230 s to start (Functions docs, function app timeout
    // duration); past it the client gets the platform's bare 504 while the gateway would still be trying.
    // A headers timeout set longer is the operator's word for one try, and the default deadline keeps to it.
    upstreamDeadlineMs: positiveInt('UPSTREAM_DEADLINE_MS', env, Math.max(220_000, headersTimeoutMs), problem),
    failureCooldownMs: positiveInt('UPSTREAM_FAILURE_COOLDOWN_MS', env, 10_000, problem),
    maxCooldownMs: positiveInt('UPSTREAM_MAX_RETRY_AFTER_MS', env, MAX_COOLDOWN_MS, problem),
    balancerStorage: storageTarget(env, problem),
    balancerTable: tableName(env.BALANCER_TABLE, problem),
    balancerBlockSize: positiveInt('BALANCER_BLOCK_SIZE', env, 16, problem),
    healthRefreshMs: positiveInt('BALANCER_HEALTH_REFRESH_MS', env, 1000, problem),
    storageTimeoutMs: positiveInt('BALANCER_STORAGE_TIMEOUT_MS', env, 1000, problem),
    limitsSyncMs: positiveInt('LIMITS_SYNC_MS', env, 5000, problem),
    keyVault,
    webPubSub: webPubSubSettings(env, problem),
    corsAllowedOrigins: corsOrigins(env.CORS_ALLOWED_ORIGINS, problem),
    upstreamProxy: proxySettings(env, problem),
    realtimeLeaseMs: positiveInt('REALTIME_LEASE_MS', env, 6000, problem),
    managedIdentityClientId: nonEmpty(env.AZURE_CLIENT_ID),
    needsIdentity: keyVault !== undefined || all.some((d) => !d.apiKey) || nonEmpty(env.WEBPUBSUB_ENDPOINT) !== undefined,
    problems: Object.freeze(problems),
  });
}

function bodyLimits(env: Env, problem: Report): Pick<GatewayConfig, 'maxRequestBodyBytes' | 'maxAudioFileBytes' | 'maxInflightBodyBytes' | 'maxImageUploadBytes'> {
  const limits = {
    maxRequestBodyBytes: positiveInt('MAX_REQUEST_BODY_BYTES', env, 20 * MiB, problem),
    maxAudioFileBytes: positiveInt('MAX_AUDIO_FILE_BYTES', env, 25 * MiB, problem),
    // Ten of the largest uploads at once; an instance has 2 GB by default on Flex Consumption.
    maxInflightBodyBytes: positiveInt('MAX_INFLIGHT_BODY_BYTES', env, 256 * MiB, problem),
    // Azure takes input images under 50 MB (azure-ai-docs how-to/dall-e.md).
    maxImageUploadBytes: positiveInt('MAX_IMAGE_UPLOAD_BYTES', env, 50 * MiB, problem),
  };
  const [largest, setting] = ([['maxRequestBodyBytes', 'MAX_REQUEST_BODY_BYTES'], ['maxAudioFileBytes', 'MAX_AUDIO_FILE_BYTES'], ['maxImageUploadBytes', 'MAX_IMAGE_UPLOAD_BYTES']] as const)
    .map(([field, name]) => [limits[field], name] as const)
    .reduce((a, b) => (b[0] > a[0] ? b : a));
  if (limits.maxInflightBodyBytes < largest) {
    problem('MAX_INFLIGHT_BODY_BYTES', `is smaller than ${setting} (${largest} bytes): a body between the two can never be held, and is refused with 413. Raise it to at least ${largest}, or lower ${setting}.`);
  }
  return limits;
}

export function splitKeys(value: string | undefined): string[] {
  return (value ?? '').split(',').map((k) => k.trim()).filter((k) => k.length > 0);
}

type Report = (setting: string, message: string) => void;

const MAX_PRIORITY = 10;

/** What a deployment object may hold. Any other name is a typo to report: a "priorty" left unread would quietly serve a PTU's overflow first. */
const DEPLOYMENT_FIELDS = new Set(['deployment', 'endpoint', 'apiKey', 'apiVersion', 'weight', 'priority']);

function parseModelDeployments(raw: string, defaults: DeploymentDefaults, promptCacheAffinity: Set<string>, problem: Report, noDefaultResource: string): Map<string, Deployment[]> {
  const models = new Map<string, Deployment[]>();
  const setting = 'MODEL_DEPLOYMENTS';
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    // The parser's message quotes the input, which may hold an apiKey: report only where it broke.
    const at = /position (\d+)/.exec(String((err as Error).message))?.[1];
    problem(setting, `is not valid JSON${at ? ` (error near character ${at})` : ' (a trailing comma, single quotes or an unquoted name are the usual causes)'}. Expected {"model": ["deployment", ...]}.`);
    return models;
  }
  if (!isPlainObject(parsed)) {
    problem(setting, 'must be a JSON object mapping model names to lists of deployments.');
    return models;
  }
  // Problems name a model by its place, never by what was written: /health is public, and a malformed value may be a secret.
  Object.entries(parsed).forEach(([model, value], m) => {
    const where = `model ${m + 1}`;
    const options = isPlainObject(value) ? modelOptions(where, value, problem) : { deployments: value, cacheAffinity: false };
    if (options === undefined) return;
    const list = options.deployments;
    if (!Array.isArray(list) || list.length === 0) {
      problem(setting, `${where} must map to a non-empty list of deployments (or to {"deployments": [...], "affinity": "prompt_cache_key"}).`);
      return;
    }
    const pool: Deployment[] = [];
    list.forEach((entry: unknown, i: number) => {
      const at = `${where}, deployment ${i + 1}`;
      if (typeof entry === 'string') {
        if (!entry.trim()) return problem(setting, `${at} is an empty name.`);
        if (!defaults.endpoint) return problem(setting, `${at} uses the default resource, but ${noDefaultResource}. Set it, or give this deployment an "endpoint".`);
        pool.push(makeDeployment(entry.trim(), defaults, {}));
        return;
      }
      if (!isPlainObject(entry)) return problem(setting, `${at} must be a deployment name or an object with "deployment".`);
      // Named back only as the known field it resembles: /health is public, and what was written may be a secret.
      const unknown = Object.keys(entry).filter((k) => !DEPLOYMENT_FIELDS.has(k));
      if (unknown.length > 0) {
        const fields = unknown.length === 1 ? 'a field that is' : `${unknown.length} fields that are`;
        return problem(setting, `${at} has ${fields} not one of a deployment's (${[...DEPLOYMENT_FIELDS].join(', ')}; names are case-sensitive).${meantClause(unknown, DEPLOYMENT_FIELDS)}`);
      }
      const name = entry.deployment;
      if (typeof name !== 'string' || !name.trim()) return problem(setting, `${at} has no "deployment" name.`);
      const overrides: DeploymentOverrides = {};
      if (entry.endpoint !== undefined) {
        const endpoint = parseEndpoint(`${setting} ${at} "endpoint"`, typeof entry.endpoint === 'string' ? entry.endpoint : '', problem);
        if (!endpoint) return;
        overrides.endpoint = endpoint;
      } else if (!defaults.endpoint) {
        return problem(setting, `${at} has no "endpoint" and ${noDefaultResource}.`);
      }
      if (entry.apiKey !== undefined) {
        if (typeof entry.apiKey !== 'string' || !entry.apiKey) return problem(setting, `${at} has an "apiKey" that is not a non-empty string.`);
        overrides.apiKey = entry.apiKey;
      }
      if (entry.apiVersion !== undefined) {
        if (typeof entry.apiVersion !== 'string' || !/^(v1|\d{4}-\d{2}-\d{2}(-preview)?)$/.test(entry.apiVersion)) {
          return problem(setting, `${at} has an "apiVersion" that is not one; use a dated version like "2025-04-01-preview" or "v1".`);
        }
        overrides.apiVersion = entry.apiVersion;
      }
      if (entry.weight !== undefined) {
        if (!Number.isInteger(entry.weight) || (entry.weight as number) < 1 || (entry.weight as number) > 100) {
          return problem(setting, `${at} has a "weight" that is not a whole number from 1 to 100.`);
        }
        overrides.weight = entry.weight as number;
      }
      if (entry.priority !== undefined) {
        if (!Number.isInteger(entry.priority) || (entry.priority as number) < 1 || (entry.priority as number) > MAX_PRIORITY) {
          return problem(setting, `${at} has a "priority" that is not a whole number from 1 (served first) to ${MAX_PRIORITY}.`);
        }
        overrides.priority = entry.priority as number;
      }
      pool.push(makeDeployment(name.trim(), defaults, overrides));
    });
    if (pool.length > 0) models.set(model, labelled(pool));
    if (pool.length > 0 && options.cacheAffinity) promptCacheAffinity.add(model);
  });
  return models;
}

interface ModelOptions {
  readonly deployments: unknown;
  readonly cacheAffinity: boolean;
}

/**
 * A model given as an object: its deployments, and how its requests choose
 * among them. Undefined after reporting a problem.
 */
function modelOptions(where: string, options: Record<string, unknown>, problem: Report): ModelOptions | undefined {
  const setting = 'MODEL_DEPLOYMENTS';
  const unknown = Object.keys(options).filter((k) => k !== 'deployments' && k !== 'affinity');
  if (unknown.length > 0) {
    problem(setting, `${where} has ${unknown.length === 1 ? 'a field' : `${unknown.length} fields`} other than "deployments" and "affinity", the only ones a model object takes.`);
    return undefined;
  }
  if (options.affinity !== undefined && options.affinity !== 'prompt_cache_key') {
    problem(setting, `${where} has an "affinity" other than "prompt_cache_key", the only one (leave it out for plain rotation).`);
    return undefined;
  }
  return { deployments: options.deployments, cacheAffinity: options.affinity === 'prompt_cache_key' };
}

function parseEndpoint(setting: string, raw: string | undefined, problem: Report): string | undefined {
  const value = nonEmpty(raw);
  if (value === undefined) return undefined;
  const url = URL.parse(value);
  if (url === null) {
    problem(setting, 'is not a URL; expected https://<resource>.openai.azure.com');
    return undefined;
  }
  const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    problem(setting, 'must be an https:// URL (plain http is allowed for localhost only).');
    return undefined;
  }
  return url.origin;
}

/**
 * The proxy for calls to Azure OpenAI, from the variables curl and undici
 * read: a call to an https origin goes through HTTPS_PROXY (else HTTP_PROXY),
 * one to an http origin through HTTP_PROXY, and hosts NO_PROXY names go
 * direct. Each is read in upper case, else lower case, the order of the Azure
 * SDK clients in the same process (@typespec/ts-http-runtime's proxyPolicy),
 * which read the variables for themselves by narrower rules (the README says
 * which).
 */
export interface ProxySettings {
  readonly httpsProxy?: string;
  readonly httpProxy?: string;
  /** Comma-separated hosts (example.com, .example.com, *.example.com, host:port, *) reached directly. */
  readonly noProxy: string;
}

function proxySettings(env: Env, problem: Report): ProxySettings | undefined {
  const lower = env as Readonly<Record<string, string | undefined>>;
  const httpsProxy = proxyUrl('HTTPS_PROXY', nonEmpty(env.HTTPS_PROXY) ?? nonEmpty(lower.https_proxy), problem);
  const httpProxy = proxyUrl('HTTP_PROXY', nonEmpty(env.HTTP_PROXY) ?? nonEmpty(lower.http_proxy), problem);
  if (httpsProxy === undefined && httpProxy === undefined) return undefined;
  return { httpsProxy, httpProxy, noProxy: nonEmpty(env.NO_PROXY) ?? nonEmpty(lower.no_proxy) ?? '' };
}

/** A proxy's URL; one without a scheme is http://, as curl takes it. Never echoed: it may carry a password. */
function proxyUrl(setting: string, value: string | undefined, problem: Report): string | undefined {
  if (value === undefined) return undefined;
  const withScheme = value.includes('://') ? value : `http://${value}`;
  const url = URL.parse(withScheme);
  if (url === null) {
    problem(setting, 'is not a URL; expected http://<host>:<port> (with credentials: http://<user>:<password>@<host>:<port>). Calls to Azure OpenAI go direct until it is fixed.');
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problem(setting, 'must be an http:// or https:// proxy URL (SOCKS is not supported). Calls to Azure OpenAI go direct until it is fixed.');
    return undefined;
  }
  return url.href;
}

interface LegacyUrl {
  endpoint: string;
  deployment: string;
  apiVersion?: string;
}

function parseLegacyUrl(raw: string | undefined, problem: Report): LegacyUrl | undefined {
  const value = nonEmpty(raw);
  if (value === undefined) return undefined;
  const endpoint = parseEndpoint('AZURE_OPENAI_URL', value, problem);
  if (!endpoint) return undefined;
  const url = new URL(value);
  const match = /^\/openai\/deployments\/([^/]+)\//.exec(url.pathname);
  if (!match) {
    problem('AZURE_OPENAI_URL', 'must look like https://<resource>.openai.azure.com/openai/deployments/<deployment>/chat/completions?api-version=<version>');
    return undefined;
  }
  return { endpoint, deployment: decodeURIComponent(match[1]), apiVersion: url.searchParams.get('api-version') ?? undefined };
}

/**
 * BALANCER_STORAGE_CONNECTION, else AzureWebJobsStorage; each as a connection
 * string or in the identity-based form Functions uses (NAME__accountName,
 * NAME__tableServiceUri).
 */
function storageTarget(env: Env, problem: Report): StorageTarget | undefined {
  for (const name of ['BALANCER_STORAGE_CONNECTION', 'AzureWebJobsStorage'] as const) {
    const conn = nonEmpty(env[name]);
    if (conn !== undefined) {
      if (!/usedevelopmentstorage=true/i.test(conn) && !/(accountkey|sharedaccesssignature)=/i.test(conn)) {
        problem(name, 'is not a storage connection string (expected AccountName=...;AccountKey=... or UseDevelopmentStorage=true).');
        return undefined;
      }
      const refusal = tablesRefusal(conn);
      if (refusal !== undefined) {
        problem(name, `is a connection string the Tables SDK cannot use (${refusal}); copy it whole from the storage account's Access keys.`);
        return undefined;
      }
      return { connectionString: conn, setting: name };
    }
    const uri = nonEmpty(env[`${name}__tableServiceUri`]);
    if (uri !== undefined) {
      // Keep the path: an emulator's table service lives under its account name.
      const origin = parseEndpoint(`${name}__tableServiceUri`, uri, problem);
      return origin ? { tableServiceUri: `${origin}${new URL(uri).pathname.replace(/\/+$/, '')}`, setting: `${name}__tableServiceUri` } : undefined;
    }
    const account = nonEmpty(env[`${name}__accountName`]);
    if (account !== undefined) {
      if (!/^[a-z0-9]{3,24}$/.test(account)) {
        problem(`${name}__accountName`, 'is not a storage account name (3 to 24 lower-case letters and digits).');
        return undefined;
      }
      return { tableServiceUri: `https://${account}.table.core.windows.net`, setting: `${name}__accountName` };
    }
  }
  return undefined;
}

/**
 * Why the Tables SDK refuses a connection string, or undefined when it takes
 * it: the same parse the gateway's table client makes, done here so that a
 * string it refuses (no EndpointSuffix, a SAS without TableEndpoint) is a
 * problem /health names instead of a throw at startup. Its messages name the
 * missing part, never a value.
 */
function tablesRefusal(conn: string): string | undefined {
  try {
    TableClient.fromConnectionString(conn, 'check');
    return undefined;
  } catch (err) {
    const message = err instanceof Error ? err.message : '';
    return /^(Invalid [A-Za-z]+ in the provided|Connection string must)/.test(message) ? message.replace(/\.$/, '') : 'it could not be read';
  }
}

function keyVaultSettings(env: Env, problem: Report): KeyVaultSettings | undefined {
  const raw = nonEmpty(env.KEY_VAULT_URL);
  if (raw === undefined) return undefined;
  const url = parseEndpoint('KEY_VAULT_URL', raw, problem);
  if (url === undefined) return undefined;
  const secretName = (name: 'PROXY_API_KEY_SECRET_NAME' | 'PROXY_KEYS_SECRET_NAME' | 'AZURE_OPENAI_API_KEY_SECRET_NAME' | 'WEBPUBSUB_CONNECTION_STRING_SECRET_NAME', fallback: string) => {
    const value = nonEmpty(env[name]) ?? fallback;
    if (!/^[0-9A-Za-z-]{1,127}$/.test(value)) {
      problem(name, 'is not a Key Vault secret name (1 to 127 letters, digits and dashes).');
      return fallback;
    }
    return value;
  };
  return {
    url,
    proxyKeysSecret: secretName('PROXY_API_KEY_SECRET_NAME', 'proxy-api-key'),
    namedKeysSecret: secretName('PROXY_KEYS_SECRET_NAME', 'proxy-keys'),
    azureOpenAIKeySecret: secretName('AZURE_OPENAI_API_KEY_SECRET_NAME', 'azure-openai-api-key'),
    webPubSubSecret: secretName('WEBPUBSUB_CONNECTION_STRING_SECRET_NAME', 'webpubsub-connection-string'),
    refreshMs: positiveInt('SECRETS_REFRESH_MS', env, 300_000, problem),
  };
}

function webPubSubSettings(env: Env, problem: Report): WebPubSubSettings | undefined {
  const hub = nonEmpty(env.WEBPUBSUB_HUB) ?? 'realtime';
  if (!/^[A-Za-z][A-Za-z0-9_`,.\[\]]{0,127}$/.test(hub)) problem('WEBPUBSUB_HUB', 'is not a hub name: one starts with a letter and holds letters, digits and underscores.');
  const conn = nonEmpty(env.WEBPUBSUB_CONNECTION_STRING);
  if (conn === undefined) {
    const raw = nonEmpty(env.WEBPUBSUB_ENDPOINT);
    if (raw === undefined) return undefined;
    const endpoint = parseEndpoint('WEBPUBSUB_ENDPOINT', raw, problem);
    const eventAudience = nonEmpty(env.WEBPUBSUB_EVENT_AUDIENCE);
    const tenant = nonEmpty(env.AZURE_TENANT_ID);
    // Entra ID issues v1 tokens unless the resource's app registration asks for v2 (accessTokenAcceptedVersion),
    // and the two carry different issuers (Entra ID docs, access token claims reference: iss): take either.
    const eventIssuers = nonEmpty(env.WEBPUBSUB_EVENT_ISSUER)?.split(',').map((i) => i.trim()).filter(Boolean)
      ?? (tenant ? [`https://sts.windows.net/${tenant}/`, `https://login.microsoftonline.com/${tenant}/v2.0`] : []);
    const eventPrincipal = nonEmpty(env.WEBPUBSUB_EVENT_PRINCIPAL_ID);
    if (!eventAudience) problem('WEBPUBSUB_EVENT_AUDIENCE', 'is not set: with WEBPUBSUB_ENDPOINT (identity, no key) the gateway checks the Entra ID token Web PubSub sends with each event, and needs the audience it is issued for (the resource set in the hub\'s event handler auth).');
    if (eventIssuers.length === 0) problem('AZURE_TENANT_ID', 'is not set: with WEBPUBSUB_ENDPOINT the gateway needs the tenant (or WEBPUBSUB_EVENT_ISSUER) whose tokens Web PubSub sends with each event.');
    if (!eventPrincipal) problem('WEBPUBSUB_EVENT_PRINCIPAL_ID', 'is not set: with WEBPUBSUB_ENDPOINT the gateway accepts event tokens only from Web PubSub\'s own managed identity; set its object id (the service\'s identity.principalId).');
    return endpoint && eventAudience && eventIssuers.length > 0 && eventPrincipal ? { mode: 'identity', hub, endpoint, eventAudience, eventIssuers, eventPrincipal } : undefined;
  }
  if (/^@Microsoft\.KeyVault\(/i.test(conn)) {
    // The platform leaves the reference as it is written when it cannot read the secret (App Service docs, Key Vault references).
    problem('WEBPUBSUB_CONNECTION_STRING', 'is a Key Vault reference the platform could not resolve: the app\'s identity could not read the secret yet (a role assigned in the same deployment can take minutes to apply). Restart the app once it can; the portal\'s Environment variables page shows the reference\'s status.');
    return undefined;
  }
  const parts = new Map(conn.split(';').map((p) => { const i = p.indexOf('='); return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim()] as [string, string]; }));
  const accessKey = parts.get('accesskey');
  const endpoint = parts.get('endpoint');
  if (!endpoint || !accessKey || !/^https?:\/\//.test(endpoint)) {
    problem('WEBPUBSUB_CONNECTION_STRING', 'must look like Endpoint=https://<name>.webpubsub.azure.com;AccessKey=...;Version=1.0;');
    return undefined;
  }
  const port = parts.get('port');
  const url = new URL(endpoint);
  if (port) url.port = port;
  return { mode: 'key', connectionString: conn, accessKey, hub, endpoint: url.origin };
}

/** "*", or origins such as https://app.example.com (scheme, host and port only: that is what a browser sends). */
function corsOrigins(raw: string | undefined, problem: Report): string[] {
  const origins: string[] = [];
  let n = 0;
  for (const entry of splitKeys(raw)) {
    n++;
    if (entry === '*') {
      origins.push(entry);
      continue;
    }
    const url = URL.parse(entry);
    if (url === null || !/^https?:$/.test(url.protocol) || url.origin !== entry.replace(/\/$/, '').toLowerCase()) {
      problem('CORS_ALLOWED_ORIGINS', `has an entry (number ${n}) that is not an origin; write each as a browser sends it, e.g. https://app.example.com or http://localhost:3000 (no path).`);
      continue;
    }
    origins.push(url.origin);
  }
  return Object.freeze(origins) as string[];
}

function tableName(raw: string | undefined, problem: Report): string {
  const name = nonEmpty(raw) ?? 'gatewaybalancer';
  if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(name)) {
    problem('BALANCER_TABLE', 'is not a table name: 3 to 63 letters and digits, starting with a letter.');
    return 'gatewaybalancer';
  }
  return name;
}

function positiveInt(name: SettingName, env: Env, fallback: number, problem: Report): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    problem(name, 'is not a positive whole number.');
    return fallback;
  }
  return n;
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
