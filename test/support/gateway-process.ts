import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ServiceProcess, startService } from '../../bench/support/processes';

/** The built local host in a process of its own, so a test can kill it as a platform would (SIGKILL, no goodbye). */
export interface GatewayChild extends ServiceProcess {
  kill(): Promise<void>;
}

export async function startGatewayChild(env: Record<string, string>): Promise<GatewayChild> {
  // A directory of its own, so no local.settings.json is picked up.
  const cwd = mkdtempSync(path.join(tmpdir(), 'gateway-'));
  const service = await startService(path.resolve(__dirname, '../../dist/src/local/main.js'), { PORT: '0', ...env }, [], cwd);
  const child = service.child;
  return {
    ...service,
    kill: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  };
}
