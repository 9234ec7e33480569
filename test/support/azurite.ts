import net from 'node:net';
import path from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { AzuriteProcess, spawnAzurite } from '../../src/local/azurite';
import { tmpdir } from 'node:os';

/** Azurite's well-known development account (public, documented; not a secret). */
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite {
  readonly port: number;
  readonly connectionString: string;
  /** With OAuth on: the table service URI an identity-based client uses (HTTPS). */
  readonly tableServiceUri: string;
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

/**
 * Azurite's table service on a free loopback port, in memory, started by the
 * test itself. With `oauth`, it serves HTTPS with that certificate and takes
 * Entra ID tokens (its 'basic' OAuth checks issuer, audience and lifetime).
 */
export async function startAzurite(options: { oauth?: { cert: Buffer; key: Buffer } } = {}): Promise<Azurite> {
  const port = await freePort();
  const tlsArgs: string[] = [];
  if (options.oauth) {
    const dir = mkdtempSync(path.join(tmpdir(), 'azurite-'));
    writeFileSync(path.join(dir, 'cert.pem'), options.oauth.cert);
    writeFileSync(path.join(dir, 'key.pem'), options.oauth.key);
    tlsArgs.push('--oauth', 'basic', '--cert', path.join(dir, 'cert.pem'), '--key', path.join(dir, 'key.pem'));
  }
  let running: AzuriteProcess | undefined;
  const start = async () => {
    running = await spawnAzurite({ host: '127.0.0.1', port }, tlsArgs);
  };
  await start();
  return {
    port,
    tableServiceUri: `https://127.0.0.1:${port}/${ACCOUNT}`,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};TableEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`,
    async stop() {
      await running?.stop('SIGKILL');
    },
    start,
  };
}
