import { afterAll, beforeAll, expect } from 'vitest';
import { AZURE_KEY, Harness, HarnessOptions, PROXY_KEY, startHarness } from './harness';

export interface Suite {
  /** The file's harness, started before its first test. */
  readonly h: Harness;
  /** A plain fetch whose body is kept, so the file's end can check no secret reached a client. */
  raw(path: string, init?: RequestInit): Promise<Response & { text(): Promise<string> }>;
  /** Keeps something a client saw for the end-of-file secret check. */
  saw(text: string): void;
}

/**
 * One harness for a test file, started before its tests and closed after them;
 * at the end nothing secret may appear in anything a client or the log saw.
 */
export function harnessForFile(options: HarnessOptions = {}): Suite {
  let harness: Harness | undefined;
  const bodies: string[] = [];
  beforeAll(async () => {
    harness = await startHarness(options);
  });
  afterAll(async () => {
    if (!harness) return;
    const seen = [...bodies, ...harness.logger.lines].join('\n');
    expect(seen).not.toContain(AZURE_KEY);
    expect(seen).not.toContain(PROXY_KEY);
    expect(seen).not.toContain(harness.simUrl);
    await harness.close();
  });
  return {
    get h() {
      if (!harness) throw new Error('the harness starts in beforeAll');
      return harness;
    },
    saw(text) {
      bodies.push(text);
    },
    async raw(path, init = {}) {
      const res = await fetch(`${this.h.url}${path}`, init);
      const text = await res.text();
      bodies.push(text);
      return Object.assign(res, { text: async () => text });
    },
  };
}
