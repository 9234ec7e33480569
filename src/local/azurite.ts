/** @module Azurite's table service for the local host (and the tests): where a connection string expects it, started when nothing answers there. */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface AzuriteAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Where a storage connection string expects Azurite's table service:
 * UseDevelopmentStorage=true means 127.0.0.1:10002 (or the host of its
 * DevelopmentStorageProxyUri); an explicit TableEndpoint on this machine means
 * that port. Any other connection string is a real account: undefined.
 */
export function azuriteAddress(connectionString: string): AzuriteAddress | undefined {
  const parts = new Map(connectionString.split(';').filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim()] as [string, string];
  }));
  if (parts.get('usedevelopmentstorage')?.toLowerCase() === 'true') {
    const proxy = parts.get('developmentstorageproxyuri');
    return { host: proxy ? new URL(proxy).hostname : '127.0.0.1', port: 10002 };
  }
  const endpoint = parts.get('tableendpoint');
  if (endpoint === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return undefined;
  }
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return undefined;
  return { host: url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

/** Whether something accepts connections on the address. */
export function portAnswers({ host, port }: AzuriteAddress, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: timeoutMs });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/** Azurite's table service entry point, or undefined when the azurite package is not installed (a production install). */
export function azuriteTableMain(): string | undefined {
  try {
    return path.join(path.dirname(require.resolve('azurite/package.json')), 'dist/src/table/main.js');
  } catch {
    return undefined;
  }
}

export interface AzuriteProcess {
  readonly child: ChildProcess;
  /** Ends it; resolves when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts Azurite's table service in memory on the address and waits until it
 * accepts connections. Run through azurite-child.js when built, so that it
 * exits with the process that started it, however that one ends.
 */
export async function spawnAzurite(address: AzuriteAddress, extraArgs: readonly string[] = [], timeoutMs = 20_000): Promise<AzuriteProcess> {
  const main = azuriteTableMain();
  if (main === undefined) throw new Error('the azurite package is not installed');
  const guarded = path.join(__dirname, 'azurite-child.js');
  const entry = existsSync(guarded) ? guarded : main;
  const args = ['--inMemoryPersistence', '--silent', '--skipApiVersionCheck', '--disableTelemetry', '--tableHost', address.host, '--tablePort', String(address.port), ...extraArgs];
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const stop = (signal: NodeJS.Signals = 'SIGTERM') => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await portAnswers(address, 500))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop('SIGKILL');
      throw new Error(`Azurite did not start: ${out.trim().split('\n').at(-1) ?? 'no output'}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // Its pipes must not keep this process alive, nor fill up unread.
  child.stdout!.resume();
  child.stderr!.resume();
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  (child.channel as unknown as { unref?: () => void } | null)?.unref?.();
  return { child, stop };
}
