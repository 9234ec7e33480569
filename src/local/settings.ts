import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Env } from '../config/settings';

/**
 * Settings as `func start` sees them: the environment, then the `Values` of
 * local.settings.json for anything the environment does not set. `source`
 * says in a few words what was read, for the startup lines.
 */
export function localSettings(env: NodeJS.ProcessEnv, file: string): { env: Env; source: string } {
  const name = path.basename(file);
  const only = (why: string) => ({ env: { ...env }, source: `environment variables only (${why})` });
  if (!existsSync(file)) return only(`no ${name} in ${path.dirname(file)}`);
  let values: unknown;
  try {
    values = (JSON.parse(readFileSync(file, 'utf8')) as { Values?: unknown }).Values;
  } catch {
    return only(`${file} is not valid JSON; it was ignored`);
  }
  if (values === undefined) return only(`${file} has no "Values"`);
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    return only(`${file} has a "Values" that is not an object; it was ignored`);
  }
  const merged: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(values)) {
    if (typeof v === 'string') merged[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') merged[k] = String(v);
  }
  for (const [k, v] of Object.entries(env)) if (v !== undefined) merged[k] = v;
  return { env: merged, source: `${file} ("Values"), with environment variables taking precedence` };
}

/** True when nothing points the gateway at Azure, so the local host uses its simulator. */
export function wantsSimulator(env: Env): boolean {
  return !env.AZURE_OPENAI_ENDPOINT?.trim() && !env.AZURE_OPENAI_URL?.trim() && !env.MODEL_DEPLOYMENTS?.trim();
}
