import { describe, expect, it } from 'vitest';
import { PROXY_KEY, startHarness } from '../support/harness';
import { harnessForFile } from '../support/suite';

const APP = 'https://app.example.com';
const suite = harnessForFile({ env: () => ({ CORS_ALLOWED_ORIGINS: `${APP}, http://localhost:3000` }) });

/** What a browser sends before a cross-origin POST with a JSON body and a key (the openai SDK adds its x-stainless-* headers). */
const preflight = (origin: string, path = '/v1/chat/completions', method = 'POST') => suite.raw(path, {
  method: 'OPTIONS',
  headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type,x-stainless-lang' },
});

describe('CORS on the local host (CORS_ALLOWED_ORIGINS)', () => {
  it('answers an allowed origin\'s preflight with the route\'s methods and the headers the browser asked for', async () => {
    const res = await preflight(APP);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-methods')).toBe('POST');
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization,content-type,x-stainless-lang');
    expect(res.headers.get('vary')).toContain('Origin');
    // Every response has its request id, a preflight's too, and its log line.
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(suite.h.logger.entries()).toContainEqual(expect.objectContaining({ msg: 'request', requestId: id, route: 'preflight', method: 'OPTIONS', status: 204 }));
    const models = await preflight('http://localhost:3000', '/v1/models', 'GET');
    expect(models.headers.get('access-control-allow-methods')).toBe('GET, HEAD');
  });

  it('lists authorization, api-key and content-type when the preflight names no headers', async () => {
    const res = await suite.raw('/v1/embeddings', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST' } });
    expect(res.headers.get('access-control-allow-headers')).toMatch(/authorization, api-key, content-type/);
  });

  it('lets the allowed origin read the answer and its request id; other origins get no CORS headers', async () => {
    const ok = await suite.raw('/v1/chat/completions', { method: 'POST', headers: { origin: APP, authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-expose-headers')).toContain('x-request-id');
    const denied = await suite.raw('/v1/models', { headers: { origin: 'https://evil.example', authorization: `Bearer ${PROXY_KEY}` } });
    expect(denied.status).toBe(200);
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
    const deniedPreflight = await preflight('https://evil.example');
    expect(deniedPreflight.status).toBe(204);
    expect(deniedPreflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers a method the route does not serve without allowing it', async () => {
    const res = await preflight(APP, '/v1/chat/completions', 'DELETE');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows no origin by default: a preflight is answered (not 405), with no CORS headers', async () => {
    const h = await startHarness();
    try {
      const res = await fetch(`${h.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST' } });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await h.close();
    }
  });

  it('a setting that is not an origin is a configuration problem that says how to write one', async () => {
    const h = await startHarness({ env: () => ({ CORS_ALLOWED_ORIGINS: 'app.example.com/path' }) });
    try {
      const body = await (await fetch(`${h.url}/health`)).json();
      expect(body.problems).toContainEqual({ setting: 'CORS_ALLOWED_ORIGINS', message: expect.stringContaining('https://app.example.com') });
    } finally {
      await h.close();
    }
  });
});
