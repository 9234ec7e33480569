// The Functions app as it is deployed, in one folder (default .deploy/, or the folder given):
// the built code, host.json and package.json as .funcignore selects them, and the production
// dependencies as installed here. `azd deploy` zips this folder (azure.yaml: dist), and
// `func azure functionapp publish <app> --javascript` can be run from inside it.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(root, '.deploy'));

/** .funcignore read with gitignore's rules, as far as this project's patterns use them. */
export function ignoreMatcher(patterns) {
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

/** The files `func azure functionapp publish` would pack from the project: everything .funcignore keeps, node_modules aside. */
export function publishSet() {
  const ignored = ignoreMatcher(readFileSync(path.join(root, '.funcignore'), 'utf8').split('\n'));
  const files = [];
  const walk = (rel) => {
    for (const name of readdirSync(path.join(root, rel))) {
      const child = rel ? `${rel}/${name}` : name;
      if (child === 'node_modules' || child === '.git' || path.join(root, child) === out) continue;
      const isDir = statSync(path.join(root, child)).isDirectory();
      if (ignored(child, isDir)) continue;
      if (isDir) walk(child);
      else files.push(child);
    }
  };
  walk('');
  return files;
}

function main() {
  // The code must be built first; this is a no-op when dist/ is up to date.
  const built = spawnSync(process.execPath, [path.join(root, 'scripts/build-if-changed.mjs')], { stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
  rmSync(out, { recursive: true, force: true });
  const files = publishSet();
  for (const f of files) {
    mkdirSync(path.dirname(path.join(out, f)), { recursive: true });
    cpSync(path.join(root, f), path.join(out, f));
  }
  // What `npm prune --omit=dev` would leave: the production dependency tree, as installed and tested here.
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const prod = execFileSync(npm, ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', shell: process.platform === 'win32' })
    .split(/\r?\n/).filter((p) => p.includes(`${path.sep}node_modules${path.sep}`));
  for (const dir of prod) cpSync(dir, path.join(out, path.relative(root, dir)), { recursive: true });
  console.log(`package: ${files.length} files and ${prod.length} production packages in ${path.relative(process.cwd(), out) || '.'}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
