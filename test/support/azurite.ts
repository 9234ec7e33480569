import { ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/** Azurite's well-known development account (public, documented; not a secret). */
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite {
  readonly port: number;
  readonly connectionString: string;
  /** Kills the emulator: storage becomes unreachable. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (it keeps nothing in memory across a stop). */
  start(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Azurite's table service on a free loopback port, in memory, started by the test itself. */
export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const main = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist/src/table/main.js');
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn(process.execPath, [main, '--inMemoryPersistence', '--silent', '--skipApiVersionCheck', '--disableTelemetry', '--tableHost', '127.0.0.1', '--tablePort', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    await waitForPort(port, 20_000, () => out);
  };
  await start();
  return {
    port,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};TableEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`,
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
    start,
  };
}

async function waitForPort(port: number, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Azurite did not start: ${output()}`);
}
