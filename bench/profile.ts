/**
 * node dist/bench/profile.js <file.cpuprofile> [top] — where a V8 CPU profile
 * spent its time once requests began: the functions with the most self time,
 * the same summed by file, so the gateway's own code stands apart from Node's
 * internals, and the project's functions with the time of what they call. Profiles come from `BENCH_CPU_PROF=<dir> npm run bench`
 * (gateway.cpuprofile and floor.cpuprofile, to read side by side).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function main(): void {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/profile.js <file.cpuprofile> [top]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 40);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Start-up (module loading, configuration) is not the hot path: count from the first request served.
  const serving = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (byId.get(at)!.callFrame.functionName === 'emit' && /_http_server/.test(byId.get(parent.get(at) ?? -1)?.callFrame.url ?? '')) return true;
      if (/_http_server/.test(byId.get(at)!.callFrame.url)) return true;
    }
    return false;
  };
  const from = profile.samples.findIndex(serving);

  const name = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = shortUrl(url);
    return `${functionName || '(anonymous)'} ${where}${where ? `:${lineNumber + 1}` : ''}`;
  };
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  for (let i = Math.max(0, from); i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const { functionName, url } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    const us = profile.timeDeltas[i] ?? 0;
    busy += us;
    const where = shortUrl(url);
    byFunction.set(name(id), (byFunction.get(name(id)) ?? 0) + us);
    byFile.set(where || functionName, (byFile.get(where || functionName) ?? 0) + us);
    // Each of the project's functions on the stack, once per sample however deep it recurses.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (!/\/dist\/src\//.test(byId.get(at)!.callFrame.url)) continue;
      const n = name(at);
      if (seen.has(n)) continue;
      seen.add(n);
      inclusive.set(n, (inclusive.get(n) ?? 0) + us);
    }
  }
  const print = (title: string, rows: Map<string, number>) => {
    console.log(`\n${title} (share of ${(busy / 1000).toFixed(0)} ms busy while serving)`);
    for (const [name, us] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((us / busy) * 100).toFixed(1).padStart(5)}%  ${name}`);
    }
  };
  print('self time by function', byFunction);
  print('self time by file', byFile);
  print("the project's functions, with what they call", inclusive);
}

/** node:internal/... kept as is; the project's files relative to dist/. */
function shortUrl(url: string): string {
  const i = url.indexOf('/dist/');
  return i >= 0 ? url.slice(i + 6) : url.replace(/^file:\/\//, '');
}

main();
