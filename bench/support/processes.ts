import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

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
function profileFlags(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(dir)}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
}

export function startGatewayProcess(env: Record<string, string>): Promise<ServiceProcess> {
  return startService(path.resolve(__dirname, '../../src/local/main.js'), { PORT: '0', ...env }, profileFlags('gateway'));
}

/** The bench's calibration floor (support/thin-proxy.ts), started and measured like the gateway. */
export function startThinProxyProcess(env: Record<string, string>): Promise<ServiceProcess> {
  return startService(path.resolve(__dirname, 'thin-proxy.js'), env, profileFlags('floor'));
}

/** Starts `main` and waits for its "listening on <url>;" line; later output is drained unread. */
async function startService(main: string, env: Record<string, string>, flags: string[]): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...flags, main], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (c: Buffer) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        // From here on the per-request log lines are not needed: drain them cheaply.
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(m[1].replace('localhost', '127.0.0.1'));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${path.basename(main)} exited with ${code}: ${out}`)));
  });
  const status = () => readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status())?.[1] ?? 0);
  return {
    url,
    child,
    memory: () => ({ rssKb: field('VmRSS'), peakKb: field('VmHWM') }),
    cpuMs: () => {
      const parts = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
      return (Number(parts[11]) + Number(parts[12])) * 10;
    },
    stop: () => new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/** The Azure OpenAI simulator in a process of its own: the upstream every path of a benchmark calls. */
export async function startSimulatorProcess(apiKey: string): Promise<{ url: string; stop(): Promise<void> }> {
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
    stop: () => new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
