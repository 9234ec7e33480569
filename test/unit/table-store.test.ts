import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableBalancerStore } from '../../src/balancer/table-store';
import { Azurite, startAzurite } from '../support/azurite';

let azurite: Azurite;
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => azurite?.stop());

describe('the balancer table\'s recent counts', () => {
  it('are read from the rows the service stamped since a time, so instances long gone are not read at all', async () => {
    const store = new TableBalancerStore(TableClient.fromConnectionString(azurite.connectionString, 'statsread', { allowInsecureConnection: true }));
    const signal = new AbortController().signal;
    const minute = String(Math.floor(Date.now() / 60_000));
    await store.writeStats('instance-a', new Map([['chat-a', { [minute]: { ok: 3 } }]]), signal);
    await store.writeStats('instance-b', new Map([['chat-a', { [minute]: { ok: 1, '429': 1 } }]]), signal);
    const recent = await store.readStats(Date.now() - 60_000, signal);
    expect(recent.get('chat-a')).toHaveLength(2);
    // Rows stamped before `since` are left out by the query itself (the service's Timestamp, not the row's content).
    expect((await store.readStats(Date.now() + 60_000, signal)).size).toBe(0);
  });
});

describe('tidying the balancer table', () => {
  it('deletes stats and holder rows stamped before their times, at most as many as asked, and nothing else', async () => {
    const table = TableClient.fromConnectionString(azurite.connectionString, 'tidy', { allowInsecureConnection: true });
    const store = new TableBalancerStore(table);
    const signal = new AbortController().signal;
    await store.reserve('pool', 4, signal);
    await store.publishCooldown('chat-a', { until: Date.now() + 60_000, reason: '429' }, signal);
    await store.writeStats('gone-1', new Map([['chat-a', {}], ['chat-b', {}]]), signal);
    for (const id of ['resp_1', 'resp_2', 'resp_3']) await store.writeHolder(id, 'chat-a', signal);
    const past = Date.now() - 60_000;
    const future = Date.now() + 60_000;
    // Nothing is older than a minute ago.
    expect(await store.dropStale(past, past, 100, signal)).toBe(0);
    // Stats first, then holders, never past the number asked for.
    expect(await store.dropStale(future, future, 3, signal)).toBe(3);
    expect((await store.readStats(past, signal)).size).toBe(0);
    expect(await store.dropStale(future, future, 100, signal)).toBe(2);
    for (const id of ['resp_1', 'resp_2', 'resp_3']) expect(await store.readHolder(id, signal)).toBeUndefined();
    // The cursor and the cooldowns are another matter.
    expect((await store.reserve('pool', 4, signal)).start).toBe(4);
    expect((await store.readCooldowns(Date.now(), signal)).get('chat-a')).toMatchObject({ reason: '429' });
  });
});

describe('tidying a table too large for one run', () => {
  it('goes on where the last run stopped, so rows deep in the table are reached, and starts over at the end', async () => {
    const table = TableClient.fromConnectionString(azurite.connectionString, 'tidyresume', { allowInsecureConnection: true });
    // Pages of two rows stand in for the service's pages of a thousand.
    const store = new TableBalancerStore(table, { tidyPageSize: 2 });
    const signal = new AbortController().signal;
    const ids = Array.from({ length: 10 }, (_, i) => `resp_${i}`);
    for (const id of ids) await store.writeHolder(id, 'chat-a', signal);
    const future = Date.now() + 60_000;
    const left = async () => (await Promise.all(ids.map(async (id) => ((await store.readHolder(id, signal)) === undefined ? [] : [id])))).flat();

    expect(await store.dropStale(future, future, 3, signal)).toBe(3);
    expect(await left()).toEqual(ids.slice(3));
    // A stale row written near the top after the first run: a run that started at the top again would take it first.
    await store.writeHolder('resp_0a', 'chat-a', signal);
    expect(await store.dropStale(future, future, 3, signal)).toBe(3);
    expect(await left()).toEqual(ids.slice(6));
    expect(await store.readHolder('resp_0a', signal)).toBe('chat-a');
    // The rest of the table, then the top again once the scan has passed the end.
    expect(await store.dropStale(future, future, 100, signal)).toBe(4);
    expect(await store.readHolder('resp_0a', signal)).toBe('chat-a');
    expect(await store.dropStale(future, future, 100, signal)).toBe(1);
    expect(await store.readHolder('resp_0a', signal)).toBeUndefined();
  });
});
