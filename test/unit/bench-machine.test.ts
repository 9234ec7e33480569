import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { cpuMsOf, watchMachine } from '../../bench/support/machine';

/** Keeps this process busy for `ms` of wall time. */
function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) Math.sqrt(Math.random());
}

/** Keeps this process busy until it has used `ms` of CPU, however long a busy machine makes that take. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    for (let i = 0; i < 10_000; i++) Math.sqrt(Math.random());
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
}

describe("the bench's view of the rest of the machine", () => {
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

  it('reads idle cores as a share of the cores there are, fewer while this process spins', () => {
    const watch = watchMachine({ cpuMs: () => 0 });
    spin(500);
    const { idleCores } = watch.done(1);
    expect(idleCores).toBeGreaterThanOrEqual(0);
    // One core was busy here the whole time: at most the others can have been idle (with a tick of slack).
    expect(idleCores).toBeLessThanOrEqual(cpus().length - 1 + 0.1);
  });

  it("reads a process's CPU time from /proc in ms, as process.cpuUsage does", () => {
    burn(200);
    const fromProc = cpuMsOf(process.pid);
    const usage = process.cpuUsage();
    // /proc counts in 10 ms ticks.
    expect(Math.abs(fromProc - (usage.user + usage.system) / 1000)).toBeLessThan(40);
  });
});
