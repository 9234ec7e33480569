/** @module A pool split into priority groups, each with its own weighted rotation. */
import type { PoolMember } from './balancer';
import { hashKey } from './affinity';
import { weightedSchedule } from './schedule';

/** The members of one priority within a pool: served only while every better group is out. */
export interface PriorityGroup<D extends PoolMember> {
  readonly priority: number;
  readonly members: readonly D[];
  /** This group's rotation: each member `weight` times, spread out. */
  readonly schedule: readonly D[];
  /**
   * Added to the pool key to name this group's cursor, so each group keeps
   * its own fair rotation. Empty for priority 1: a pool's cursor keeps its
   * row when priorities are introduced.
   */
  readonly cursorSuffix: string;
  /** hashKey(member.id), in the order of `members`: what affinity scores are computed from. */
  readonly memberHashes: readonly number[];
}

/** The pool's groups, best (lowest number) first; members keep their configured order within a group. */
export function priorityGroups<D extends PoolMember>(pool: readonly D[]): readonly PriorityGroup<D>[] {
  const byPriority = new Map<number, D[]>();
  for (const member of pool) {
    const list = byPriority.get(member.priority);
    if (list === undefined) byPriority.set(member.priority, [member]);
    else list.push(member);
  }
  return [...byPriority]
    .sort(([a], [b]) => a - b)
    .map(([priority, members]) => Object.freeze({
      priority,
      members,
      schedule: weightedSchedule(members),
      cursorSuffix: priority === 1 ? '' : `#p${priority}`,
      memberHashes: members.map((m) => hashKey(m.id)),
    }));
}
