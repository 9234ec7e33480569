import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../../src/routes';
import { CapturedApp, loadAppLikeTheWorker } from '../support/functions-core';

const root = path.resolve(__dirname, '../..');

/** .funcignore read with gitignore's rules, as far as this project's patterns use them. */
function ignoreMatcher(patterns: string[]): (rel: string, isDir: boolean) => boolean {
  const rules = patterns.map((p) => p.trim()).filter((p) => p && !p.startsWith('#')).map((p) => {
    const dirOnly = p.endsWith('/');
    const trimmed = dirOnly ? p.slice(0, -1) : p;
    // A slash at the start or in the middle anchors the pattern at the root.
    const anchored = trimmed.includes('/');
    const body = trimmed.replace(/^\//, '');
    const re = body.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
    return { dirOnly, regex: new RegExp(anchored ? `^${re}$` : `(^|/)${re}$`) };
  });
  return (rel, isDir) => rules.some((r) => (!r.dirOnly || isDir) && r.regex.test(rel));
}

/** The files `func azure functionapp publish` would pack: everything but .funcignore's, node_modules aside. */
function publishSet(): string[] {
  const ignored = ignoreMatcher(readFileSync(path.join(root, '.funcignore'), 'utf8').split('\n'));
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const child = rel ? `${rel}/${name}` : name;
      if (child === 'node_modules' || child === '.git') continue;
      const isDir = statSync(path.join(root, child)).isDirectory();
      if (ignored(child, isDir)) continue;
      if (isDir) walk(child);
      else files.push(child);
    }
  };
  walk('');
  return files;
}

let app: CapturedApp;
let files: string[];
const savedEnv = { ...process.env };

beforeAll(() => {
  files = publishSet();
  const target = mkdtempSync(path.join(tmpdir(), 'publish-'));
  for (const f of files) {
    mkdirSync(path.dirname(path.join(target, f)), { recursive: true });
    cpSync(path.join(root, f), path.join(target, f));
  }
  // What `npm prune --omit=dev` leaves: the production dependency tree only.
  const prod = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' })
    .split('\n').filter((p) => p.includes(`${path.sep}node_modules${path.sep}`));
  for (const dir of prod) cpSync(dir, path.join(target, path.relative(root, dir)), { recursive: true });
  Object.assign(process.env, { PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com', AZURE_OPENAI_API_KEY: 'x', MODEL_DEPLOYMENTS: '{"m":["d"]}' });
  app = loadAppLikeTheWorker(target);
}, 60_000);

afterAll(() => {
  app?.restore();
  process.env = savedEnv;
});

describe('what func azure functionapp publish ships', () => {
  it('is the built code, host.json and package.json, without sources, tests or local settings', () => {
    expect(files).toContain('host.json');
    expect(files).toContain('package.json');
    expect(files.some((f) => f.startsWith('dist/src/functions/'))).toBe(true);
    for (const f of files) {
      expect(f).not.toMatch(/^(src|test|bench|infra)\/|\.ts$|^dist\/(test|bench)\/|^dist\/src\/(simulator|local)\/|local\.settings|\.map$/);
    }
  });

  it('loads from that set alone and registers every route', () => {
    expect(app.registrations.map((r) => r.metadata.name).sort()).toEqual(routeTable.map((r) => r.name).sort());
    for (const f of app.files) expect(f).not.toContain(root + path.sep + 'dist');
  });
});
