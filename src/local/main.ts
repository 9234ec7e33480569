import path from 'node:path';
import { startLocalHost } from './start';
import { localSettings } from './settings';

/** `npm start`: the gateway on http://localhost:7071 (PORT overrides), settings as `func start` reads them. */
async function main(): Promise<void> {
  const { env, problem } = localSettings(process.env, path.resolve(process.cwd(), 'local.settings.json'));
  if (problem) console.warn(problem);
  const port = Number(env.PORT ?? 7071);
  const host = await startLocalHost({ env, port, host: env.HOST ?? '127.0.0.1' });
  console.log(host.banner);
  const stop = () => {
    void host.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: NodeJS.ErrnoException) => {
  console.error(err.code === 'EADDRINUSE' ? 'The port is in use; set PORT to another one.' : `The gateway could not start: ${err.name}${err.code ? ` (${err.code})` : ''}`);
  process.exit(1);
});
