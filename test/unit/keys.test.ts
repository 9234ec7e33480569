import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { ProxyKeyRing } from '../../src/core/auth';
import { parseNamedKeys } from '../../src/keys/parse';
import { UNNAMED_KEY } from '../../src/keys/proxy-key';

const SECRET = 'team-key-0f1e2d3c4b5a';
const base = { AZURE_OPENAI_ENDPOINT: 'https://res.openai.azure.com', AZURE_OPENAI_API_KEY: 'k', MODEL_DEPLOYMENTS: '{"gpt-4o-mini":["a"],"o3":["b"]}' };

describe('named keys (PROXY_KEYS)', () => {
  it('gives each key its name, models, limits and admin flag, by key or by its SHA-256', () => {
    const digest = createHash('sha256').update('ops-key-1234').digest('hex');
    const c = loadConfig({ ...base, PROXY_API_KEY: 'plain', PROXY_KEYS: JSON.stringify([
      { name: 'team-a', key: SECRET, models: ['gpt-4o-mini'], rpm: 60, tpm: 10_000, tokensPerDay: 1_000_000, tokensPerMonth: 20_000_000 },
      { name: 'ops', keySha256: digest, admin: true },
    ]) });
    expect(c.problems).toEqual([]);
    const ring = new ProxyKeyRing(c.proxyKeys, c.namedKeys);
    const team = ring.identify(SECRET)!;
    expect(team).toMatchObject({ name: 'team-a', admin: false, limited: true, limits: { rpm: 60, tpm: 10_000, tokensPerDay: 1_000_000, tokensPerMonth: 20_000_000 } });
    expect(team.mayUse('gpt-4o-mini')).toBe(true);
    expect(team.mayUse('o3')).toBe(false);
    const ops = ring.identify('ops-key-1234')!;
    expect(ops).toMatchObject({ name: 'ops', admin: true, limited: false });
    expect(ops.mayUse('o3')).toBe(true);
    expect(ring.identify('plain')).toBe(UNNAMED_KEY);
    expect(ring.identify('nobody')).toBeUndefined();
  });

  it('a key listed both named and in PROXY_API_KEY is the named one, limits and all', () => {
    const c = loadConfig({ ...base, PROXY_API_KEY: SECRET, PROXY_KEYS: JSON.stringify([{ name: 'team-a', key: SECRET, rpm: 1 }]) });
    expect(new ProxyKeyRing(c.proxyKeys, c.namedKeys).identify(SECRET)?.name).toBe('team-a');
  });

  it('PROXY_KEYS alone is enough to authenticate', () => {
    const c = loadConfig({ ...base, PROXY_KEYS: JSON.stringify([{ name: 'team-a', key: SECRET }]) });
    expect(c.problems).toEqual([]);
  });

  it('leaves out a bad entry and names its place and the field at fault, never quoting a key or a name', () => {
    const cases: [unknown, RegExp][] = [
      [{ name: 'a', key: SECRET, rpm: -1 }, /entry 1: "rpm" must be a positive whole number/],
      [{ name: 'a', key: SECRET, tpm: 1.5 }, /entry 1: "tpm" must be a positive whole number/],
      [{ name: 'a', key: SECRET, tokensPerDay: '100' }, /entry 1: "tokensPerDay"/],
      [{ name: 'a', key: SECRET, tmp: 100 }, /entry 1 has a field that is not one of a key\'s .* It looks like a misspelling of "tpm"\.$/],
      [{ name: 'a', key: SECRET, modles: ['m'] }, /It looks like a misspelling of "models"\.$/],
      [{ name: 'a', key: SECRET, [SECRET]: 1 }, /entry 1 has a field that is not one of a key\'s \([^)]*\)\.$/],
      [{ name: 'a', key: SECRET, models: 'gpt-4o-mini' }, /entry 1: "models" must be a list/],
      [{ name: 'a', key: SECRET, admin: 'yes' }, /entry 1: "admin" must be true or false/],
      [{ name: 'a' }, /entry 1: "key" is missing/],
      [{ name: 'a', key: SECRET, keySha256: 'ab' }, /entry 1: "key" and "keySha256" are both set/],
      [{ name: 'a', keySha256: SECRET }, /entry 1: "keySha256" must be the key's SHA-256/],
      [{ name: 'a', key: `${SECRET} x` }, /entry 1: "key" must be a non-empty string/],
      [{ name: 'has space', key: SECRET }, /entry 1: "name" must be/],
      [{ key: SECRET }, /entry 1: "name" must be/],
    ];
    for (const [entry, message] of cases) {
      const parsed = parseNamedKeys(JSON.stringify([entry]), 'PROXY_KEYS');
      expect(parsed.entries, JSON.stringify(message)).toHaveLength(0);
      expect(parsed.problems).toHaveLength(1);
      expect(parsed.problems[0].setting).toBe('PROXY_KEYS');
      expect(parsed.problems[0].message).toMatch(message);
      expect(JSON.stringify(parsed.problems)).not.toContain(SECRET);
    }
  });

  it('keeps the good entries beside a bad one; refuses a repeated name or a repeated key', () => {
    const parsed = parseNamedKeys(JSON.stringify([
      { name: 'a', key: SECRET }, { name: 'a', key: 'other-key-1' }, { name: 'b', key: SECRET }, { name: 'c', key: 'third-key-2', rpm: 0 }, { name: 'd', key: 'fourth-key-3' },
    ]), 'PROXY_KEYS');
    expect(parsed.entries.map((e) => e.key.name)).toEqual(['a', 'd']);
    expect(parsed.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/entry 2: "name" is used by an earlier entry/),
      expect.stringMatching(/entry 3: "key" is the same key as entry 1's/),
      expect.stringMatching(/entry 4: "rpm"/),
    ]);
  });

  it('reports malformed JSON by position only (the text holds keys), and names models the gateway does not serve', () => {
    const c = loadConfig({ ...base, PROXY_KEYS: `[{"name":"a","key":"${SECRET}"` });
    expect(c.problems).toEqual([{ setting: 'PROXY_KEYS', message: expect.stringMatching(/not valid JSON/) }]);
    expect(JSON.stringify(c.problems)).not.toContain(SECRET);
    const typo = loadConfig({ ...base, PROXY_KEYS: JSON.stringify([{ name: 'a', key: SECRET, models: ['gpt-4o-mni'] }]) });
    expect(typo.problems).toEqual([{ setting: 'PROXY_KEYS', message: 'entry 1: "models" names a model this gateway does not serve (see MODEL_DEPLOYMENTS).' }]);
    expect(typo.namedKeys).toHaveLength(1);
  });
});
