import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) c.kill('SIGTERM');
});

/** Runs the built local host as `npm start` does, in a folder of our choosing, and waits for its banner. */
async function startProcess(env: Record<string, string>, cwd: string): Promise<{ banner: string; url: string; output: () => string }> {
  const child = spawn(process.execPath, [path.join(root, 'dist/src/local/main.js')], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const banner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner: ${out}`)), 15_000);
    child.stdout!.on('data', () => {
      const line = out.split('\n').find((l) => l.startsWith('Gateway listening on'));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  const url = /listening on (http:\/\/\S+?);/.exec(banner)![1];
  return { banner, url, output: () => out };
}

describe('npm start on a fresh machine', () => {
  it('serves on PORT with the built-in simulator, says so in one line, and the original design\'s curl example works as written', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    const { banner, url, output } = await startProcess({ PORT: '0' }, cwd);
    expect(banner).toMatch(/built-in Azure OpenAI simulator/);
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
  });

  it('says where its direct realtime socket is, on whatever port it was given, when Web PubSub is not set', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    const { url } = await startProcess({ PORT: '0' }, cwd);
    const res = await fetch(`${url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: 'Bearer your-proxy-api-key', 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini-realtime-preview"}' });
    expect(res.status).toBe(503);
    expect((await res.json()).error.message).toContain(`ws://${new URL(url).host}/v1/realtime`);
  });

  it('reads local.settings.json Values as func start does, with the environment taking precedence', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    writeFileSync(path.join(cwd, 'local.settings.json'), JSON.stringify({ IsEncrypted: false, Values: { PROXY_API_KEY: 'from-file', PORT: '1' } }));
    const { url } = await startProcess({ PORT: '0' }, cwd);
    const ok = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer from-file' } });
    expect(ok.status).toBe(200);
  });

  it('reports a bad setting on /health by name, without auth, and refuses API calls with a clear 503', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'gw-'));
    const { url } = await startProcess({ PORT: '0', AZURE_OPENAI_ENDPOINT: 'https://res.openai.azure.com', AZURE_OPENAI_API_KEY: 'secret-azure-key', MODEL_DEPLOYMENTS: '{"m":["d"]}' }, cwd);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    const text = await health.text();
    expect(JSON.parse(text).problems).toEqual([expect.objectContaining({ setting: 'PROXY_API_KEY' })]);
    expect(text).not.toContain('secret-azure-key');
    const call = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer anything' } });
    expect(call.status).toBe(503);
  });
});
