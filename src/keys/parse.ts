/** @module PROXY_KEYS (or the Key Vault secret proxy-keys) parsed into named keys, each bad entry reported by name and field. */
import { hash } from 'node:crypto';
import type { ConfigProblem } from '../config/config';
import { KeyLimits, ProxyKey } from './proxy-key';
import { meantClause } from '../config/misspelt';

/** A key as the ring holds it: the SHA-256 digest of the key, never the key, beside its identity. */
export interface KeyEntry {
  readonly digest: Buffer;
  readonly key: ProxyKey;
}

export interface ParsedKeys {
  readonly entries: readonly KeyEntry[];
  readonly problems: readonly ConfigProblem[];
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const LIMIT_FIELDS = ['rpm', 'tpm', 'tokensPerDay', 'tokensPerMonth'] as const;
const FIELDS = new Set<string>(['name', 'key', 'keySha256', 'models', 'admin', ...LIMIT_FIELDS]);

/** One-shot hashing: a Hash object per request showed in the hot path's profile. */
export function digestOf(key: string): Buffer {
  return hash('sha256', key, 'buffer');
}

/**
 * Reads a JSON array of `{ name, key | keySha256, models?, rpm?, tpm?,
 * tokensPerDay?, tokensPerMonth?, admin? }`. An entry with any problem is left
 * out (a typo in a limit must not leave a key unlimited) and reported by its
 * name, or its position when it has no usable name, and the field at fault;
 * a model name the gateway does not serve is reported but its entry kept.
 * No message ever quotes a key or the raw text, which holds keys.
 *
 * `where` prefixes messages (which secret the text came from); `servedModels`,
 * when given, flags model names the gateway does not serve.
 */
export function parseNamedKeys(raw: string, setting: string, where = '', servedModels?: ReadonlySet<string>): ParsedKeys {
  const problems: ConfigProblem[] = [];
  const problem = (message: string) => problems.push({ setting, message: `${where}${message}` });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    const at = /position (\d+)/.exec(String((err as Error).message))?.[1];
    problem(`is not valid JSON${at ? ` (error near character ${at})` : ''}. Expected [{"name": "...", "key": "..."}, ...].`);
    return { entries: [], problems };
  }
  if (!Array.isArray(parsed)) {
    problem('must be a JSON array of keys: [{"name": "...", "key": "..."}, ...].');
    return { entries: [], problems };
  }
  const entries: KeyEntry[] = [];
  const byName = new Set<string>();
  const byDigest = new Map<string, string>();
  parsed.forEach((item: unknown, i: number) => {
    const position = `entry ${i + 1}`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return problem(`${position} must be an object with "name" and "key".`);
    const e = item as Record<string, unknown>;
    if (typeof e.name !== 'string' || !NAME.test(e.name)) {
      return problem(`${position}: "name" must be 1 to 64 letters, digits, dots, dashes or underscores.`);
    }
    const name = e.name;
    // By place, not by name: /health is public, and these settings hold keys.
    const at = position;
    const fault = (field: string, what: string) => problem(`${at}: "${field}" ${what}`);
    const unknown = Object.keys(e).filter((k) => !FIELDS.has(k));
    // Named back only as the known field it resembles: what was written may be a key.
    if (unknown.length > 0) return problem(`${at} has ${unknown.length === 1 ? 'a field that is' : `${unknown.length} fields that are`} not one of a key's (${[...FIELDS].join(', ')}).${meantClause(unknown, FIELDS)}`);
    if (byName.has(name)) return fault('name', 'is used by an earlier entry; names must be unique.');

    let digest: Buffer;
    if (e.key !== undefined && e.keySha256 !== undefined) return fault('key', 'and "keySha256" are both set; give one.');
    if (e.key !== undefined) {
      if (typeof e.key !== 'string' || !/^\S+$/.test(e.key) || e.key.includes(',')) return fault('key', 'must be a non-empty string without spaces or commas.');
      digest = digestOf(e.key);
    } else if (e.keySha256 !== undefined) {
      if (typeof e.keySha256 !== 'string' || !SHA256_HEX.test(e.keySha256)) return fault('keySha256', 'must be the key\'s SHA-256 digest as 64 hex digits.');
      digest = Buffer.from(e.keySha256, 'hex');
    } else {
      return fault('key', 'is missing; give "key" or "keySha256".');
    }
    const same = byDigest.get(digest.toString('hex'));
    if (same !== undefined) return fault('key', `is the same key as entry ${same}'s; each name needs its own key.`);

    let models: Set<string> | undefined;
    if (e.models !== undefined) {
      if (!Array.isArray(e.models) || e.models.some((m) => typeof m !== 'string' || m === '')) return fault('models', 'must be a list of model names.');
      models = new Set(e.models as string[]);
      const unserved = servedModels ? [...models].filter((m) => !servedModels.has(m)) : [];
      if (unserved.length > 0) fault('models', `names ${unserved.length === 1 ? 'a model' : `${unserved.length} models`} this gateway does not serve (see MODEL_DEPLOYMENTS).`);
    }
    const limits: Record<string, number> = {};
    for (const field of LIMIT_FIELDS) {
      const v = e[field];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return fault(field, 'must be a positive whole number.');
      limits[field] = v;
    }
    if (e.admin !== undefined && typeof e.admin !== 'boolean') return fault('admin', 'must be true or false.');

    byName.add(name);
    byDigest.set(digest.toString('hex'), String(i + 1));
    entries.push({ digest, key: new ProxyKey(name, models, limits as KeyLimits, e.admin === true) });
  });
  return { entries, problems };
}
