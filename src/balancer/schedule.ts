import type { PoolMember } from './balancer';

/**
 * A pool's rotation: each deployment appears `weight` times per cycle, spread
 * out within the rotation (smooth weighted round-robin) rather than bunched.
 */
export function weightedSchedule<D extends PoolMember>(pool: readonly D[]): readonly D[] {
  const total = pool.reduce((n, d) => n + d.weight, 0);
  const current = pool.map(() => 0);
  const schedule: D[] = [];
  for (let k = 0; k < total; k++) {
    let best = 0;
    for (let i = 0; i < pool.length; i++) {
      current[i] += pool[i].weight;
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    schedule.push(pool[best]);
  }
  return schedule;
}
