import { describe, expect, it } from 'vitest';
import { LineBatch } from '../../src/core/log';

function batch(batchMs: number) {
  const writes: string[] = [];
  const lines = new LineBatch((text) => writes.push(text), batchMs);
  const parsed = () => writes.join('').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { lines, writes, parsed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('log lines', () => {
  it('of many requests in a short time are written together, in order, once the batch time has passed', async () => {
    const { lines, writes, parsed } = batch(30);
    for (let i = 0; i < 5; i++) {
      lines.add(Date.UTC(2026, 10, 26, 12, 0, 0, i), 'info', { msg: 'request', n: i });
      await new Promise((r) => setImmediate(r));
    }
    expect(writes).toEqual([]);
    await sleep(60);
    expect(writes).toHaveLength(1);
    expect(parsed()).toEqual([0, 1, 2, 3, 4].map((n) => ({ time: `2026-11-26T12:00:00.00${n}Z`, level: 'info', msg: 'request', n })));
  });

  it('are written at once when the batch is full, and a flush leaves nothing behind', async () => {
    const { lines, writes, parsed } = batch(10_000);
    for (let i = 0; i < 256; i++) lines.add(0, 'warn', { n: i });
    expect(writes).toHaveLength(1);
    lines.add(0, 'error', { n: 256 });
    lines.flush();
    expect(writes).toHaveLength(2);
    expect(parsed().map((l) => l.n)).toEqual([...Array(257).keys()]);
    lines.flush();
    expect(writes).toHaveLength(2);
  });

  it('keep a line that cannot be serialised as a line that says so', async () => {
    const { lines, parsed } = batch(10_000);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    lines.add(0, 'info', loop);
    lines.flush();
    expect(parsed()[0]).toMatchObject({ level: 'info', msg: 'a log line could not be written' });
  });
});
