import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
let gateway: ChildProcess;
let url: string;

/** The local host as `npm start` runs it on a fresh machine: no settings, the built-in simulator. */
beforeAll(async () => {
  gateway = spawn(process.execPath, [path.join(root, 'dist/src/local/main.js')], { cwd: mkdtempSync(path.join(tmpdir(), 'gw-')), env: { PATH: process.env.PATH, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    gateway.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    gateway.once('exit', (code) => reject(new Error(`the local host exited with ${code}: ${out}`)));
  });
  // Its per-request log lines are not what these tests read.
  gateway.stdout!.resume();
});

afterAll(() => {
  gateway?.kill('SIGTERM');
});

/** Runs an example as the README says to, pointed at this test's local host. */
async function run(example: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'examples', example)], { cwd: root, env: { PATH: process.env.PATH, GATEWAY_URL: `${url}/v1` }, timeout: 20_000 });
  return stdout;
}

describe('the README\'s examples run as written against npm start', () => {
  it('chat.mjs prints the reply and its token count', async () => {
    expect(await run('chat.mjs')).toMatch(/^Simulated reply to: Hello, how are you\?\ntokens: \d+\n$/);
  });

  it('stream.mjs prints the reply as it streams, then the usage chunk\'s count', async () => {
    expect(await run('stream.mjs')).toMatch(/^Simulated reply to: Hello\ntokens: \d+\n$/);
  });

  it('tools.mjs: the model calls get_weather, and the final answer uses what it returned', async () => {
    const out = await run('tools.mjs');
    expect(out).toContain('the model called get_weather(');
    expect(out).toContain('"forecast":"sunny"');
  });

  it('structured.mjs prints an object of the schema\'s shape', async () => {
    expect(await run('structured.mjs')).toMatch(/name: '.+',\s+day: '.+',\s+participants: \[ '.+' \]/);
  });

  it('embeddings.mjs compares two embeddings', async () => {
    expect(await run('embeddings.mjs')).toMatch(/^1536 dimensions; cosine similarity -?\d\.\d{3}\n$/);
  });

  it('responses.mjs continues a stored response', async () => {
    expect((await run('responses.mjs')).trim().split('\n')).toHaveLength(2);
  });

  it('ai-sdk.mjs streams the text through the Responses API and prints the usage', async () => {
    expect(await run('ai-sdk.mjs')).toMatch(/^Simulated reply to: Write a haiku about gateways\.\ntokens: \d+\n$/);
  });

  it('azure-client.mjs reaches a gateway model through Azure\'s deployment path', async () => {
    expect(await run('azure-client.mjs')).toBe('Simulated reply to: Hello from an Azure client\n');
  });

  it('realtime.mjs holds a session on the direct socket until the response is done', async () => {
    const events = (await run('realtime.mjs')).trim().split('\n');
    expect(events[0]).toBe('session.created');
    expect(events).toContain('session.updated');
    expect(events).not.toContain('error');
    expect(events).toContain('response.output_audio.delta');
    expect(events.at(-1)).toBe('response.done');
  });

  it('every example file has a test here, and is in the README word for word', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const tested = [...readFileSync(__filename, 'utf8').matchAll(/run\('([\w-]+\.mjs)'\)/g)].map((m) => m[1]);
    for (const file of readdirSync(path.join(root, 'examples'))) {
      expect(tested, `${file} has no test`).toContain(file);
      expect(readme, `the README does not show examples/${file} as it is`).toContain(`\`\`\`js\n${readFileSync(path.join(root, 'examples', file), 'utf8').trimEnd()}\n\`\`\``);
    }
  });
});
