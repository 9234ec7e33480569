import { describe, expect, it } from 'vitest';
import { ProxyKeyRing, presentedKey } from '../../src/core/auth';
import { ClientGone, GatewayRequest } from '../../src/core/http';
import { ProxyKey, UNNAMED_KEY } from '../../src/keys/proxy-key';
import { digestOf } from '../../src/keys/parse';

const req = (headers: Record<string, string>): GatewayRequest => ({
  method: 'GET', path: '/', query: '', params: {}, body: [], gone: new ClientGone(),
  header: (n) => headers[n],
});

describe('proxy keys', () => {
  it('accepts any of several keys and nothing else', () => {
    const ring = new ProxyKeyRing(['alpha', 'beta']);
    expect(ring.identify('alpha')).toBe(UNNAMED_KEY);
    expect(ring.identify('beta')).toBe(UNNAMED_KEY);
    expect(ring.identify('alph')).toBeUndefined();
    expect(ring.identify('')).toBeUndefined();
  });

  it('knows a key again without mistaking near misses for it, and each key keeps its own identity', () => {
    const team = new ProxyKey('team', undefined, {}, false);
    const ring = new ProxyKeyRing(['alpha'], [{ digest: digestOf('beta'), key: team }]);
    for (let i = 0; i < 3; i++) {
      expect(ring.identify('alpha')).toBe(UNNAMED_KEY);
      expect(ring.identify('beta')).toBe(team);
      expect(ring.identify('alpha ')).toBeUndefined();
      expect(ring.identify('Alpha')).toBeUndefined();
      expect(ring.identify('bet')).toBeUndefined();
    }
  });

  it('reads the key from Bearer auth (any case) or from api-key', () => {
    expect(presentedKey(req({ authorization: 'Bearer abc' }))).toBe('abc');
    expect(presentedKey(req({ authorization: 'bearer abc' }))).toBe('abc');
    expect(presentedKey(req({ 'api-key': ' abc ' }))).toBe('abc');
    expect(presentedKey(req({ authorization: 'Bearer' }))).toBeUndefined();
    expect(presentedKey(req({ authorization: 'Basic abc' }))).toBeUndefined();
  });
});
