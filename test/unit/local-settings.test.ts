import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UnreadableSettings, localSettings } from '../../src/local/settings';

function file(text: string): string {
  const at = path.join(mkdtempSync(path.join(tmpdir(), 'settings-')), 'local.settings.json');
  writeFileSync(at, text);
  return at;
}

describe('local.settings.json as npm start reads it', () => {
  it('takes a file with the byte-order mark Windows tools write', () => {
    const { env } = localSettings({}, file('\uFEFF{"IsEncrypted":false,"Values":{"PROXY_API_KEY":"k1"}}'));
    expect(env.PROXY_API_KEY).toBe('k1');
  });

  it('refuses one that is not JSON, or whose Values is not an object, rather than run without it', () => {
    expect(() => localSettings({}, file('{"Values":{"A":"1",}}'))).toThrow(UnreadableSettings);
    expect(() => localSettings({}, file('{"Values":["A"]}'))).toThrow(/has a "Values" that is not an object/);
  });
});
