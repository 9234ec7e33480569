import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Env } from '../config/settings';

/**
 * A local.settings.json that cannot be read as settings: the local host
 * refuses to start rather than run without them (on the built-in simulator
 * and the example's well-known key, where the developer meant Azure).
 */
export class UnreadableSettings extends Error {
  override readonly name = 'UnreadableSettings';
}

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
    // Windows tools (PowerShell 5.1, Visual Studio) write a byte-order mark first, which JSON.parse refuses.
    values = (JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, '')) as { Values?: unknown }).Values;
  } catch (err) {
    // Where, not what: V8's message quotes the text around the mistake, which may be a key.
    const where = /at position \d+(?: \(line \d+ column \d+\))?/.exec(String((err as Error).message))?.[0];
    throw new UnreadableSettings(`${file} is not valid JSON${where ? ` (${where})` : ''}. Fix it, or move it aside to run on environment variables alone.`);
  }
  if (values === undefined) return only(`${file} has no "Values"`);
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new UnreadableSettings(`${file} has a "Values" that is not an object. Make it an object of setting names and values, as local.settings.json.example shows.`);
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
