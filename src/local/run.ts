import path from 'node:path';
import { LocalHost, startLocalHost } from './start';
import { UnreadableSettings, localSettings } from './settings';

/** Longest a shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 5000;

/**
 * `npm start`: the gateway on http://localhost:7071 (PORT and HOST override),
 * settings as `func start` reads them. It stops cleanly on SIGTERM or SIGINT,
 * and, started by `npm start`, also when npm goes away: `kill` on npm's own process
 * ends npm and its shell without passing the signal on, and this process must
 * not be left holding the port. Started any other way (`nohup node ... &`, a
 * service manager), the parent leaving is normal and it keeps serving.
 */
async function main(): Promise<void> {
  let host: LocalHost | undefined;
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`Gateway stopping (${why})`);
    setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS).unref();
    // A signal during start-up is acted on once the host is up.
    if (host) void host.close().then(() => process.exit(0));
  };
  // Before anything starts, so a signal during start-up cannot leave a child (Azurite) behind.
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('exit', () => host?.abandon());
  // Passed by package.json's start script: an argument, unlike npm's environment, is not inherited by what else a script starts.
  if (process.argv.includes('--stop-with-npm')) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) stop('npm, which started it, has ended');
    }, 500).unref();
  }

  const { env, source } = localSettings(process.env, path.resolve(process.cwd(), 'local.settings.json'));
  const port = Number(env.PORT ?? 7071);
  host = await startLocalHost({ env, port, host: env.HOST ?? '127.0.0.1', settingsSource: source });
  if (stopping) return void host.close().then(() => process.exit(0));
  console.log(host.banner);
}

export function started(): void {
  main().catch((err: NodeJS.ErrnoException) => {
    if (err instanceof UnreadableSettings) console.error(`The gateway did not start: ${err.message}`);
    else console.error(err.code === 'EADDRINUSE' ? 'The port is in use; set PORT to another one.' : `The gateway could not start: ${err.name}${err.code ? ` (${err.code})` : ''}`);
    process.exit(1);
  });
}
