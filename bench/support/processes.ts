import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cpuMsOf } from './machine';

/** A server under test in a process of its own, so its memory and CPU can be read apart. */
export interface ServiceProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Kilobytes, from /proc: current resident set and its peak so far. */
  memory(): { rssKb: number; peakKb: number };
  /** CPU time the process has used, in milliseconds. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/**
 * Node flags for a measured process. BENCH_CPU_PROF=<dir> writes a V8 CPU
 * profile of it there, <name>.cpuprofile, when it stops (open it in Chrome
 * DevTools, or summarise it with `node dist/bench/profile.js <file>`).
 */
export function profileFlags(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(dir)}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
}

/**
 * The gateway's local host; `checkout` names another built checkout to run its
 * gateway instead of this one, `name` its CPU profile's file.
 */
export function startGatewayProcess(env: Record<string, string>, checkout?: string, name = checkout === undefined ? 'gateway' : 'baseline'): Promise<ServiceProcess> {
  const main = checkout === undefined ? path.resolve(__dirname, '../../src/local/main.js') : path.resolve(checkout, 'dist/src/local/main.js');
  return startService(main, { PORT: '0', ...env }, profileFlags(name));
}

/** The bench's calibration floor (support/thin-proxy.ts), started and measured like the gateway. */
export function startThinProxyProcess(env: Record<string, string>, name = 'floor'): Promise<ServiceProcess> {
  return startService(path.resolve(__dirname, 'thin-proxy.js'), env, profileFlags(name));
}

/**
 * Starts `main` with its output going to a file, as `npm start > gateway.log`
 * would (the README's way to keep the log lines), and waits for its
 * "listening on <url>" line. A file rather than a pipe read here: reading
 * every log line would put the load generator's own work into what it measures.
 * `cwd`, when given, is where it runs (a test keeps it away from local.settings.json).
 */
export async function startService(main: string, env: Record<string, string>, flags: string[] = [], cwd?: string): Promise<ServiceProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-'));
  const logFile = path.join(dir, 'out.log');
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...flags, main], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', out, 'inherit'] });
  closeSync(out);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${path.basename(main)} exited with ${code}: ${readFileSync(logFile, 'utf8')}`))));
  exited.catch(() => {});
  let url: string | undefined;
  const deadline = Date.now() + 30_000;
  while (url === undefined) {
    if (Date.now() > deadline) throw new Error(`${path.basename(main)} did not start: ${readFileSync(logFile, 'utf8')}`);
    await Promise.race([new Promise((r) => setTimeout(r, 20)), exited]);
    url = /listening on (http:\/\/[^\s;]+)[;\s]/.exec(readFileSync(logFile, 'utf8').slice(0, 4096))?.[1]?.replace('localhost', '127.0.0.1');
  }
  const status = () => readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status())?.[1] ?? 0);
  return {
    url,
    child,
    memory: () => ({ rssKb: field('VmRSS'), peakKb: field('VmHWM') }),
    cpuMs: () => cpuMsOf(child.pid!),
    stop: () => new Promise<void>((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => {
        rmSync(dir, { recursive: true, force: true });
        resolve();
      });
      child.kill('SIGTERM');
    }),
  };
}

/** The Azure OpenAI simulator in a process of its own: the upstream every path of a benchmark calls. */
export async function startSimulatorProcess(apiKey: string): Promise<{ url: string; cpuMs(): number; stop(): Promise<void> }> {
  const main = path.resolve(__dirname, '../../src/simulator/main.js');
  const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH ?? '', SIM_API_KEY: apiKey, SIM_CONTROL: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}: ${out}`)));
  });
  return {
    url,
    cpuMs: () => cpuMsOf(child.pid!),
    stop: () => new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
