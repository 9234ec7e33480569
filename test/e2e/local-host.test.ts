import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/azurite';
import { portAnswers } from '../../src/local/azurite';
import { OLDEST_NODE, tooOldNode } from '../../src/local/node-version';
import { AzureOpenAISimulator } from '../../src/simulator/server';

const root = path.resolve(__dirname, '../..');
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) c.kill('SIGTERM');
});

interface Started {
  readonly child: ChildProcess;
  /** The startup lines: where it listens, then one fact per line. */
  readonly banner: string[];
  readonly url: string;
  output(): string;
}

/** Waits for the startup lines (they end with the models line) in a process's output. */
function startupLines(child: ChildProcess, what: string): Promise<{ banner: string[]; output: () => string }> {
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no startup lines: ${out}`)), 60_000);
    child.stdout!.on('data', () => {
      const lines = out.split('\n');
      const first = lines.findIndex((l) => l.startsWith('Gateway listening on'));
      const models = lines.findIndex((l, i) => i > first && l.startsWith('  models: '));
      if (first < 0 || models < 0) return;
      clearTimeout(timer);
      const rest = lines.slice(first);
      const end = rest.findIndex((l, i) => i > 0 && !l.startsWith('  '));
      resolve({ banner: end < 0 ? rest : rest.slice(0, end), output: () => out });
    });
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${out}`)));
  });
}

/** Runs the built local host as `npm start` does, in a folder of our choosing. */
async function startProcess(env: Record<string, string>, cwd: string): Promise<Started> {
  const child = spawn(process.execPath, [path.join(root, 'dist/src/local/main.js')], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const { banner, output } = await startupLines(child, 'the local host');
  return { child, banner, url: /listening on (http:\/\/\S+)/.exec(banner[0])![1], output };
}

const fact = (banner: string[], name: string) => banner.find((l) => l.startsWith(`  ${name}: `))?.slice(name.length + 4);
/** Whether nothing listens on the port within a few seconds (a process that has exited may take a moment to let go). */
async function closesSoon(port: number): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (await portAnswers({ host: '127.0.0.1', port })) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}
const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

describe('npm start on a fresh machine', () => {
  it('serves on PORT with the built-in simulator, one fact per startup line, and the original design\'s curl example works as written', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    const { banner, url, output } = await startProcess({ PORT: '0' }, cwd);
    expect(fact(banner, 'settings')).toBe(`environment variables only (no local.settings.json in ${cwd})`);
    expect(fact(banner, 'upstream')).toBe('the built-in Azure OpenAI simulator (set AZURE_OPENAI_ENDPOINT to use Azure), answers');
    expect(fact(banner, 'storage')).toMatch(/^none \(AzureWebJobsStorage is not set\)/);
    expect(fact(banner, 'proxy key')).toBe('"your-proxy-api-key" (PROXY_API_KEY is not set)');
    const curl = [
      '-s', '-X', 'POST', `${url}/v1/chat/completions`,
      '-H', 'Authorization: Bearer your-proxy-api-key',
      '-H', 'Content-Type: application/json',
      '-d', '{\n    "model": "gpt-4-04-14-uplyf",\n    "messages": [\n      {"role": "user", "content": "Hello, how are you?"}\n    ]\n  }',
    ];
    const { stdout } = await promisify(execFile)('curl', curl);
    const body = JSON.parse(stdout);
    expect(body.choices[0].message.content).toContain('Hello, how are you?');
    // One JSON line per request on stdout, naming the deployment that answered.
    await new Promise((r) => setTimeout(r, 50));
    const line = output().split('\n').find((l) => l.includes('"msg":"request"'));
    expect(JSON.parse(line!)).toMatchObject({ route: 'chatCompletions', model: 'gpt-4-04-14-uplyf', status: 200 });
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('says where its direct realtime socket is, on whatever port it was given, when Web PubSub is not set', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    const { url } = await startProcess({ PORT: '0' }, cwd);
    const res = await fetch(`${url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer your-proxy-api-key', 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini-realtime-preview"}' });
    expect(res.status).toBe(503);
    // Nothing a retry would change: the openai SDKs are told not to.
    expect(res.headers.get('x-should-retry')).toBe('false');
    expect((await res.json()).error.message).toContain(`ws://${new URL(url).host}/v1/realtime`);
    // What the client must fix is said first, before what the operator has not set up.
    const notRealtime = await fetch(`${url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer your-proxy-api-key', 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini"}' });
    expect(notRealtime.status).toBe(400);
    // A plain request to the socket's address is told it is one.
    const plain = await fetch(`${url}/v1/realtime?model=gpt-4o-mini-realtime-preview`, { headers: { authorization: 'Bearer your-proxy-api-key' } });
    expect(plain.status).toBe(426);
    expect(plain.headers.get('upgrade')).toBe('websocket');
    expect((await plain.json()).error).toMatchObject({ code: 'upgrade_required', message: expect.stringContaining('/v1/realtime is a WebSocket endpoint') });
  });

  it('refuses to start on a local.settings.json that is not valid JSON, saying where, and quoting none of it', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    writeFileSync(path.join(cwd, 'local.settings.json'), '{\n  "IsEncrypted": false,\n  "Values": {\n    "PROXY_API_KEY": "team-secret-key",\n  }\n}\n');
    let failure: { status: number; stderr: Buffer; stdout: Buffer } | undefined;
    try {
      execFileSync(process.execPath, [path.join(root, 'dist/src/local/main.js')], { cwd, env: { PATH: process.env.PATH, PORT: '0' }, stdio: 'pipe', timeout: 20_000 });
    } catch (err) {
      failure = err as { status: number; stderr: Buffer; stdout: Buffer };
    }
    expect(failure?.status).toBe(1);
    const said = failure!.stderr.toString() + failure!.stdout.toString();
    expect(said).toMatch(/The gateway did not start: .*local\.settings\.json is not valid JSON \(at position \d+ \(line 5 column 3\)\)\. Fix it, or move it aside/);
    expect(said).not.toContain('team-secret-key');
  });

  it('reads local.settings.json Values as func start does, with the environment taking precedence, and says it did', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    writeFileSync(path.join(cwd, 'local.settings.json'), JSON.stringify({ IsEncrypted: false, Values: { PROXY_API_KEY: 'from-file', PORT: '1' } }));
    const { url, banner } = await startProcess({ PORT: '0' }, cwd);
    expect(fact(banner, 'settings')).toBe(`${path.join(cwd, 'local.settings.json')} ("Values"), with environment variables taking precedence`);
    const ok = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer from-file' } });
    expect(ok.status).toBe(200);
  });

  it('reports a bad setting on /health by name, without auth, and refuses API calls with a clear 503', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    const { url, banner } = await startProcess({ PORT: '0', AZURE_OPENAI_ENDPOINT: 'https://res.openai.azure.com', AZURE_OPENAI_API_KEY: 'secret-azure-key', MODEL_DEPLOYMENTS: '{"m":["d"]}' }, cwd);
    expect(fact(banner, 'configuration problems')).toBe('PROXY_API_KEY (GET /health says what is wrong)');
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    const text = await health.text();
    expect(JSON.parse(text)).toMatchObject({ status: 'misconfigured' });
    expect(JSON.parse(text).problems).toContainEqual(expect.objectContaining({ setting: 'PROXY_API_KEY' }));
    expect(text).not.toContain('secret-azure-key');
    const call = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer anything' } });
    expect(call.status).toBe(503);
  });
});

describe('startup that tells the truth', () => {
  it('with local.settings.json.example copied as it is: Azurite started where the storage setting points, and an Azure endpoint that does not answer said so at start and on /health', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    copyFileSync(path.join(root, 'local.settings.json.example'), path.join(cwd, 'local.settings.json'));
    const [tablePort, deadPort] = [await freePort(), await freePort()];
    const storage = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:${tablePort}/devstoreaccount1;`;
    // The example's placeholder endpoint, made deterministic: a local port where nothing listens.
    const { child, url, banner } = await startProcess({ PORT: '0', AzureWebJobsStorage: storage, AZURE_OPENAI_ENDPOINT: `http://127.0.0.1:${deadPort}` }, cwd);
    expect(fact(banner, 'settings')).toContain('local.settings.json ("Values")');
    expect(fact(banner, 'upstream')).toBe('Azure OpenAI (AZURE_OPENAI_ENDPOINT), does not answer (connection refused); its requests fail until it does');
    expect(fact(banner, 'storage')).toBe(`Azurite on 127.0.0.1:${tablePort}, started by the gateway, in memory (AzureWebJobsStorage), answers; the round-robin cursor and deployment health are shared through it`);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    const body = await health.json();
    expect(body.status).toBe('unreachable');
    expect(body.problems).toEqual([{ setting: 'AZURE_OPENAI_ENDPOINT', message: expect.stringContaining('does not answer (connection refused)') }]);
    expect(JSON.stringify(body)).not.toContain(String(deadPort));
    child.kill('SIGTERM');
    await exited(child);
    expect(await closesSoon(tablePort)).toBe(true);
  });

  it('a resource that refuses the gateway\'s key is said so at start and on /health, before any request', async () => {
    const sim = new AzureOpenAISimulator({ apiKey: 'the-resource-key' });
    await sim.start();
    try {
      const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
      const { url, banner } = await startProcess({ PORT: '0', PROXY_API_KEY: 'k1', AZURE_OPENAI_ENDPOINT: sim.url, AZURE_OPENAI_API_KEY: 'a-wrong-key', MODEL_DEPLOYMENTS: '{"gpt-4o-mini":["chat-a"]}' }, cwd);
      expect(fact(banner, 'upstream')).toBe('Azure OpenAI (AZURE_OPENAI_ENDPOINT), answers, but refuses the gateway\'s credential (401): check AZURE_OPENAI_API_KEY (GET /health says more)');
      const body = await (await fetch(`${url}/health`)).json();
      expect(body).toMatchObject({ status: 'misconfigured', problems: [{ setting: 'AZURE_OPENAI_API_KEY' }] });
      expect(JSON.stringify(body)).not.toContain('a-wrong-key');
    } finally {
      await sim.close();
    }
  });

  it('storage that does not answer is a problem on /health, named by its setting, and requests still flow', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    // TEST-NET-1 (RFC 5737): routable nowhere, so the storage call times out.
    const storage = 'DefaultEndpointsProtocol=http;AccountName=gwtest;AccountKey=a2V5;TableEndpoint=https://192.0.2.1:10002/gwtest;';
    const { url, banner } = await startProcess({ PORT: '0', BALANCER_STORAGE_CONNECTION: storage }, cwd);
    expect(fact(banner, 'storage')).toMatch(/^BALANCER_STORAGE_CONNECTION, does not work \(no answer in time\); balancing on this process alone until it does$/);
    const body = await (await fetch(`${url}/health`)).json();
    expect(body).toMatchObject({ status: 'unreachable', problems: [{ setting: 'BALANCER_STORAGE_CONNECTION' }] });
    const chat = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer your-proxy-api-key', 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' });
    expect(chat.status).toBe(200);
  });
});

describe('npm start and stop', () => {
  it('skips the build when nothing changed, and kill -TERM on npm\'s own process leaves nothing listening', async () => {
    const port = await freePort();
    // The suite's build ran tsc; this makes sure the stamp that says so is in place.
    await promisify(execFile)(process.execPath, [path.join(root, 'scripts/build-if-changed.mjs')]);
    const npm = spawn('npm', ['start'], { cwd: root, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(npm);
    const { output } = await startupLines(npm, 'npm start');
    expect(output()).toContain('build: dist is up to date');
    expect(await portAnswers({ host: '127.0.0.1', port })).toBe(true);
    npm.kill('SIGTERM');
    await exited(npm);
    expect(await closesSoon(port)).toBe(true);
  });

  /** Starts the gateway in the background from a shell that exits once it listens, as `nohup node ... &` does; its pid. */
  async function startedInBackground(port: number, args: string): Promise<number> {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gateway-bg-'));
    // npm's environment, as a background start from inside an npm script inherits it.
    const npmEnv = { npm_lifecycle_event: 'test', npm_execpath: '/usr/lib/node_modules/npm/bin/npm-cli.js' };
    const shell = spawn('sh', ['-c', `"${process.execPath}" "${path.join(root, 'dist/src/local/main.js')}" ${args} > gateway.log 2>&1 & echo $!; until grep -q listening gateway.log; do sleep 0.1; done`], { cwd, env: { PATH: process.env.PATH, PORT: String(port), ...npmEnv }, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    shell.stdout!.on('data', (c) => (out += c));
    await exited(shell);
    const pid = Number(out.trim());
    const deadline = Date.now() + 30_000;
    while (!(await portAnswers({ host: '127.0.0.1', port }))) {
      if (Date.now() > deadline) throw new Error('the gateway did not start in the background');
      await new Promise((r) => setTimeout(r, 100));
    }
    return pid;
  }

  it('started in the background without npm start (from inside an npm script too), it keeps serving after the shell that started it has gone', async () => {
    const port = await freePort();
    const pid = await startedInBackground(port, '');
    try {
      // The parent is checked every 500 ms: two checks have passed.
      await new Promise((r) => setTimeout(r, 1500));
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    expect(await closesSoon(port)).toBe(true);
  });

  it('started by npm start, it stops when npm has gone', async () => {
    const port = await freePort();
    const pid = await startedInBackground(port, '--stop-with-npm');
    try {
      expect(await closesSoon(port)).toBe(true);
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already, as it should be.
      }
    }
  });
});

describe('an older Node', () => {
  const older = ['/usr/bin/node', '/usr/local/bin/node'].find((candidate) => {
    try {
      return Number(execFileSync(candidate, ['-p', 'process.versions.node.split(".")[0]']).toString()) < 22;
    } catch {
      return false;
    }
  });

  it('is named in version numbers, not by what fails first under it', () => {
    expect(tooOldNode('20.20.2')).toContain('needs Node.js 22.19.0 or later, and this is 20.20.2');
    expect(tooOldNode('22.18.9')).toContain('this is 22.18.9');
    for (const fine of ['22.19.0', '22.23.3', '24.0.0', '23.1.0']) expect(tooOldNode(fine)).toBeUndefined();
    // The same floor as package.json promises.
    expect(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).engines.node).toBe(`>=${OLDEST_NODE.replace(/\.0$/, '')}`);
  });

  it.skipIf(older === undefined)('gets that message and exit code 1 from npm start\'s entry, not a stack trace', () => {
    let failure: { status: number; stderr: Buffer } | undefined;
    try {
      execFileSync(older!, [path.join(root, 'dist/src/local/main.js')], { env: { PATH: process.env.PATH, PORT: '0' }, stdio: 'pipe', timeout: 20_000 });
    } catch (err) {
      failure = err as { status: number; stderr: Buffer };
    }
    expect(failure?.status).toBe(1);
    expect(failure!.stderr.toString()).toMatch(/^The gateway needs Node\.js 22\.19\.0 or later, and this is 2[01]\.[\d.]+\. Start it with npm start/);
    expect(failure!.stderr.toString()).not.toContain('    at ');
  });
});
