import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { cpuMsFromStat, cpuMsOf, idleMsFromProcStat, watchMachine } from '../../bench/support/machine';

/** Keeps this process busy until it has used `ms` of CPU, however long a busy machine makes that take. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    for (let i = 0; i < 10_000; i++) Math.sqrt(Math.random());
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
}

/** All cores' idle time in ms as Node reports it (which reads /proc/stat's per-core lines). */
function nodeIdleMs(): number {
  return cpus().reduce((sum, c) => sum + c.times.idle, 0);
}

describe("the bench's view of the rest of the machine", () => {
  it("reads a process's utime and stime from its /proc stat line, whatever its name holds", () => {
    // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const line = '4242 (node ) (x) R 1 4242 4242 0 -1 4194560 120 0 0 0 1234 56 0 0 20 0 11 0 100 0\n';
    expect(cpuMsFromStat(line)).toBe((1234 + 56) * 10);
  });

  it("reads the idle and iowait of all cores from /proc/stat's first line, in ms", () => {
    const text = 'cpu  100 2 30 4000 50 0 7 0 0 0\ncpu0 50 1 15 2000 25 0 3 0 0 0\n';
    expect(idleMsFromProcStat(text)).toBe((4000 + 50) * 10);
  });

  it("agrees on this machine with Node's idle time and its own CPU usage", () => {
    const nodeIdle0 = nodeIdleMs();
    const ourIdle0 = idleMsFromProcStat(readFileSync('/proc/stat', 'utf8'));
    burn(100);
    const nodeIdle = nodeIdleMs() - nodeIdle0;
    const ourIdle = idleMsFromProcStat(readFileSync('/proc/stat', 'utf8')) - ourIdle0;
    // Ours adds iowait to Node's idle; read a few µs apart, they may differ by a tick per core.
    expect(ourIdle).toBeGreaterThanOrEqual(nodeIdle - 10 * cpus().length);
    expect(ourIdle).toBeLessThan(nodeIdle + 100);
    const usage = process.cpuUsage();
    expect(Math.abs(cpuMsOf(process.pid) - (usage.user + usage.system) / 1000)).toBeLessThan(40);
  });

  it('gives idle cores as the idle time over the wall time of the pass', async () => {
    const nodeIdle0 = nodeIdleMs();
    const t0 = performance.now();
    const watch = watchMachine({ cpuMs: () => 0 });
    await new Promise((r) => setTimeout(r, 300));
    const { idleCores } = watch.done(1);
    const expected = (nodeIdleMs() - nodeIdle0) / (performance.now() - t0);
    // Within two ticks per core over the 300 ms, and iowait.
    expect(Math.abs(idleCores - expected)).toBeLessThan((20 * cpus().length) / 300 + 0.1);
    expect(idleCores).toBeLessThanOrEqual(cpus().length + 0.1);
  });

  it("counts the simulator's CPU and the load generator's own (this process's) per request", () => {
    let simMs = 1_000;
    const watch = watchMachine({ cpuMs: () => simMs });
    burn(300);
    simMs += 200;
    const share = watch.done(10);
    // 200 ms of the simulator and 300 ms burnt here, over 10 requests: about 50 ms each.
    expect(share.othersMsPerRequest).toBeGreaterThan(40);
    expect(share.othersMsPerRequest).toBeLessThan(60);
  });
});
