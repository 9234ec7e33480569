import { describe, expect, it } from 'vitest';
import { newRequestId } from '../../src/core/request-id';

describe('newRequestId', () => {
  it('gives random version 4 UUIDs, none repeated across refills of its random bytes', () => {
    const seen = new Set<string>();
    for (let n = 0; n < 5000; n++) {
      const id = newRequestId();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(5000);
  });

  it('uses every hex digit in every free position: the bytes are random, not a counter', () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let n = 0; n < 2000; n++) [...newRequestId()].forEach((c, i) => digits[i].add(c));
    const fixed = new Set([8, 13, 14, 18, 19, 23]);
    digits.forEach((set, i) => {
      if (!fixed.has(i)) expect(set.size, `position ${i}`).toBe(16);
    });
  });
});
