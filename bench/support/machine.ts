import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/**
 * The rest of the machine during a pass, beside the proxy's own CPU: the CPU
 * the simulator and the load generator spent per request, and the cores no
 * process used. On this 2-core machine they decide throughput as much as the
 * proxy does (throughput ≈ (cores − idle) ÷ the three processes' CPU per
 * request): a proxy whose answers come less batched costs the other two more
 * per request, and one that holds requests back leaves cores idle.
 */
export interface MachineShare {
  /** Simulator and load generator together, in ms of CPU per request. */
  readonly othersMsPerRequest: number;
  /** Cores idle on average over the pass. */
  readonly idleCores: number;
}

/** A process's CPU time so far in ms, from /proc (utime and stime, fields 14 and 15, in ticks of 10 ms). */
export function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Idle time of all cores together so far in ms (idle and iowait of /proc/stat's first line, in ticks of 10 ms). */
function idleMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').slice(0, 256).split('\n')[0].trim().split(/\s+/);
  return (Number(fields[4]) + Number(fields[5])) * 10;
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
