import Module from 'node:module';
import { globSync } from 'node:fs';
import path from 'node:path';

/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node
 * worker injects into the app: it captures what the app registers, exactly as
 * the worker passes it to the host on `func start`, and can drive invocations
 * through the real @azure/functions programming model.
 */
export interface Registration {
  readonly metadata: { name: string; bindings: Record<string, Record<string, unknown>>; [k: string]: unknown };
  readonly callback: (...args: unknown[]) => unknown;
}

export interface CapturedApp {
  readonly registrations: Registration[];
  /** Hooks the app registered (appStart, appTerminate, ...), as the worker would run them. */
  readonly hooks: { readonly name: string; readonly callback: (context: unknown) => unknown }[];
  readonly programmingModel: ProgrammingModel;
  readonly files: string[];
  restore(): void;
}

export interface ProgrammingModel {
  name: string;
  getCapabilities(c: Record<string, string>): Promise<Record<string, string>>;
  getInvocationModel(ctx: unknown): InvocationModel;
}

interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], cb: Registration['callback']): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<unknown>;
}

/** Loads the app from `main` in package.json with the stand-in in place of the worker's module. */
export function loadAppLikeTheWorker(appRoot: string): CapturedApp {
  const registrations: Registration[] = [];
  const hooks: CapturedApp['hooks'][number][] = [];
  let programmingModel: ProgrammingModel | undefined;
  const core = {
    version: '4.0.0',
    hostVersion: '4.1040.0',
    setProgrammingModel(pm: ProgrammingModel) {
      programmingModel = pm;
    },
    getProgrammingModel: () => programmingModel,
    registerFunction(metadata: Registration['metadata'], callback: Registration['callback']) {
      registrations.push({ metadata, callback });
      return { dispose() {} };
    },
    registerHook(name: string, callback: (context: unknown) => unknown) {
      hooks.push({ name, callback });
      return { dispose() {} };
    },
    log: () => {},
    Disposable: class {
      dispose() {}
    },
  };
  const loader = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
  const originalLoad = loader._load;
  loader._load = function (request: string, parent: unknown, isMain: boolean) {
    if (request === '@azure/functions-core') return core;
    return originalLoad.call(this, request, parent, isMain);
  };
  const pkg = require(path.join(appRoot, 'package.json')) as { main: string };
  // The worker resolves `main` as a glob relative to the app root.
  const files = globSync(pkg.main, { cwd: appRoot }).map((f) => path.join(appRoot, f));
  const requireFromApp = Module.createRequire(path.join(appRoot, 'package.json'));
  for (const file of files) requireFromApp(file);
  if (!programmingModel) throw new Error('the app never set its programming model');
  return {
    registrations,
    hooks,
    programmingModel,
    files,
    restore() {
      loader._load = originalLoad;
    },
  };
}
