import { describe, expect, it } from 'vitest';
import { TIDY_ROWS } from '../../src/balancer/shared-state';
import { timers } from '../../src/timers';

/** Runs a day of an NCRONTAB schedule (second minute hour day month weekday) whose day fields are all '*'. */
function runsPerDay(schedule: string): number {
  const [second, minute, hour, ...day] = schedule.split(' ');
  expect(day).toEqual(['*', '*', '*']);
  const count = (field: string, span: number) => (field === '*' ? span : field.startsWith('*/') ? span / Number(field.slice(2)) : field.split(',').length);
  return count(second, 60) * count(minute, 60) * count(hour, 24);
}

describe('the balancer table\'s tidy', () => {
  it('keeps up with a gateway storing 400,000 responses a day, on Azure Functions and on the local host alike', () => {
    // Every Responses API call stores its response by default, each with a holder row to delete 45 days on.
    const { schedule, everyMs } = timers.balancerTidy;
    expect(runsPerDay(schedule) * TIDY_ROWS).toBeGreaterThanOrEqual(400_000);
    expect((24 * 60 * 60_000 / everyMs) * TIDY_ROWS).toBeGreaterThanOrEqual(400_000);
    // The two hosts run it equally often.
    expect(runsPerDay(schedule)).toBe(24 * 60 * 60_000 / everyMs);
  });
});
