import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../../src/routes';
import { timerTable } from '../../src/timers';
import { CapturedApp, loadAppLikeTheWorker } from '../support/functions-core';

const root = path.resolve(__dirname, '../..');

let app: CapturedApp;
let files: string[];
const savedEnv = { ...process.env };

beforeAll(() => {
  // The same script azd's prepackage hook runs (azure.yaml), into a folder of the test's own.
  const target = mkdtempSync(path.join(tmpdir(), 'publish-'));
  execFileSync(process.execPath, [path.join(root, 'scripts/package-functions.mjs'), target], { cwd: root, stdio: 'ignore' });
  files = listFiles(target).filter((f) => !f.startsWith('node_modules/'));
  Object.assign(process.env, { PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com', AZURE_OPENAI_API_KEY: 'x', MODEL_DEPLOYMENTS: '{"m":["d"]}' });
  app = loadAppLikeTheWorker(target);
}, 60_000);

function listFiles(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel)).flatMap((name) => {
    const child = rel ? `${rel}/${name}` : name;
    return statSync(path.join(dir, child)).isDirectory() ? listFiles(dir, child) : [child];
  });
}

afterAll(() => {
  app?.restore();
  process.env = savedEnv;
});

describe('what azd deploy and func azure functionapp publish ship (scripts/package-functions.mjs)', () => {
  it('is the built code, host.json and package.json, without sources, tests or local settings', () => {
    expect(files).toContain('host.json');
    expect(files).toContain('package.json');
    expect(files.some((f) => f.startsWith('dist/src/functions/'))).toBe(true);
    for (const f of files) {
      expect(f).not.toMatch(/^(src|test|bench|infra|scripts|examples)\/|\.ts$|^dist\/(test|bench)\/|^dist\/src\/(simulator|local)\/|local\.settings|\.map$|tsbuildinfo|azure\.yaml/);
    }
  });

  it('loads from that set alone and registers every route and timer', () => {
    expect(app.registrations.map((r) => r.metadata.name).sort()).toEqual([...routeTable, ...timerTable].map((r) => r.name).sort());
    for (const f of app.files) expect(f).not.toContain(root + path.sep + 'dist');
  });
});
