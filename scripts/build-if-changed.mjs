// npm start's build: tsc (incremental, see tsconfig.json), skipped entirely when nothing tsc
// compiles has changed since the last build, so an unchanged checkout starts in about a second.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = path.join(root, 'dist', '.tsbuildinfo');

/** The newest modification time under the inputs of the build. */
function newest(entries) {
  let latest = 0;
  const visit = (p) => {
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) return;
    if (s.isDirectory()) for (const name of readdirSync(p)) visit(path.join(p, name));
    else latest = Math.max(latest, s.mtimeMs);
  };
  for (const e of entries) visit(path.join(root, e));
  return latest;
}

const inputs = ['tsconfig.json', 'package-lock.json', 'src', 'bench'];
if (existsSync(stamp) && statSync(stamp).mtimeMs >= newest(inputs)) {
  console.log('build: dist is up to date (nothing in src/, bench/ or tsconfig.json changed)');
  process.exit(0);
}
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
// tsc leaves its build info untouched when no output changed; the stamp must still say "built now".
const now = new Date();
utimesSync(stamp, now, now);
