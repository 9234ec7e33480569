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
