import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { median } from './load';

/**
 * The rest of the machine during a pass, beside the proxy's own CPU: the CPU
 * the simulator and the load generator spent per request, and the cores no
 * process used. On this 2-core machine they decide throughput as much as the
 * proxy does (throughput ≈ (cores − idle) ÷ the three processes' CPU per
 * request). Idle is the whole machine's: the figures assume nothing else runs.
 */
export interface MachineShare {
  /** Simulator and load generator together, in ms of CPU per request. */
  readonly othersMsPerRequest: number;
  /** Cores idle on average over the pass. */
  readonly idleCores: number;
}

/** Linux counts /proc's times in ticks of 10 ms (USER_HZ, 100 a second). */
const MS_PER_TICK = 10;

/**
 * A process's CPU time in ms from the text of its /proc/<pid>/stat: utime and
 * stime, fields 14 and 15 (proc(5)). Counted from the last ") ", as the
 * process's name before it is in parentheses and may hold anything.
 */
export function cpuMsFromStat(stat: string): number {
  const after = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  // Fields 3 onwards follow the name: utime is field 14, the 12th of them.
  return (Number(after[11]) + Number(after[12])) * MS_PER_TICK;
}

/** All cores' idle time in ms from the text of /proc/stat: idle and iowait, the 4th and 5th figures of its "cpu" line (proc(5)). */
export function idleMsFromProcStat(procStat: string): number {
  const fields = procStat.slice(0, procStat.indexOf('\n')).trim().split(/\s+/);
  return (Number(fields[4]) + Number(fields[5])) * MS_PER_TICK;
}

export function cpuMsOf(pid: number): number {
  return cpuMsFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

function idleMs(): number {
  return idleMsFromProcStat(readFileSync('/proc/stat', 'utf8'));
}

/** Starts watching the machine for one pass; `done(requests)` gives its share once the pass is over. */
export function watchMachine(simulator: { cpuMs(): number }): { done(requests: number): MachineShare } {
  const sim0 = simulator.cpuMs();
  const self0 = process.cpuUsage();
  const idle0 = idleMs();
  const t0 = performance.now();
  return {
    done(requests) {
      const self = process.cpuUsage(self0);
      const others = simulator.cpuMs() - sim0 + (self.user + self.system) / 1000;
      return { othersMsPerRequest: others / requests, idleCores: (idleMs() - idle0) / (performance.now() - t0) };
    },
  };
}

/** The median over the passes of each figure, taken apart. */
export function medianShare(shares: readonly MachineShare[]): MachineShare {
  return { othersMsPerRequest: median(shares.map((m) => m.othersMsPerRequest)), idleCores: median(shares.map((m) => m.idleCores)) };
}
