import { Timer } from './gateway/route';

/**
 * The scheduled work both hosts run. The realtime sweep notices a session
 * whose owning instance is gone even when its client is silent, and hands it
 * to this instance; every 2 s keeps owner loss to error or resume within 10 s
 * with the default 6 s lease.
 */
export const timers = {
  realtimeSweep: { name: 'realtimeSweep', schedule: '*/2 * * * * *', everyMs: 2000, run: async (gateway) => gateway.realtime?.sweep() },
} as const satisfies Record<string, Timer>;

export const timerTable: readonly Timer[] = Object.values(timers);
