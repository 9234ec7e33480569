import { Gateway } from './gateway/gateway';
import { Timer } from './gateway/route';

/**
 * The scheduled work both hosts run. The realtime sweep notices a session
 * whose owning instance is gone even when its client is silent, and hands it
 * to this instance; every 2 s keeps owner loss to error or resume within 10 s
 * with the default 6 s lease.
 */
export const timers = {
  realtimeSweep: { name: 'realtimeSweep', schedule: '*/2 * * * * *', everyMs: 2000, run: async (gateway) => gateway.realtime?.sweep() },
  // Hourly: rows of instances gone and of responses Azure no longer keeps, a bounded batch at a time. Every
  // Responses API call stores its response (and a holder row) by default; a run a day would fall behind any
  // gateway storing more than one batch a day, and the table would grow for good.
  balancerTidy: { name: 'balancerTidy', schedule: '0 17 * * * *', everyMs: 60 * 60_000, run: tidyBalancerTable },
} as const satisfies Record<string, Timer>;

async function tidyBalancerTable(gateway: Gateway): Promise<void> {
  const rows = await gateway.sharedTidy?.tidy();
  if (rows) gateway.logger.log('info', { msg: 'balancer table tidied', rows });
}

export const timerTable: readonly Timer[] = Object.values(timers);
