import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { Env } from '../../src/config/settings';
import { bypasses, proxyFor } from '../../src/azure-openai/proxy';

const base = { PROXY_API_KEY: 'k', AZURE_OPENAI_ENDPOINT: 'https://res-one.openai.azure.com', AZURE_OPENAI_API_KEY: 'key', MODEL_DEPLOYMENTS: '{"m":["d"]}' };
const withProxy = (env: Record<string, string>) => loadConfig({ ...base, ...env } as Env);

describe('proxy settings', () => {
  it('reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY, each in upper case before lower case as the Azure SDKs do', () => {
    expect(withProxy({}).upstreamProxy).toBeUndefined();
    expect(withProxy({ HTTPS_PROXY: 'http://upper:8080', https_proxy: 'http://lower:8080', no_proxy: 'example.com' }).upstreamProxy)
      .toEqual({ httpsProxy: 'http://upper:8080/', httpProxy: undefined, noProxy: 'example.com' });
    expect(withProxy({ https_proxy: 'http://lower:8080', http_proxy: 'http://plain:3128', NO_PROXY: 'a.example', no_proxy: 'b.example' }).upstreamProxy)
      .toEqual({ httpsProxy: 'http://lower:8080/', httpProxy: 'http://plain:3128/', noProxy: 'a.example' });
  });

  it('takes a proxy without a scheme as http://, as curl does', () => {
    expect(withProxy({ HTTPS_PROXY: 'proxy.corp.example:3128' }).upstreamProxy?.httpsProxy).toBe('http://proxy.corp.example:3128/');
  });

  it('reports a proxy it cannot use, naming the setting and never its value (it may hold a password), and goes direct', () => {
    for (const value of ['socks5://user:hunter2@proxy:1080', 'http://user:hunter2@[bad']) {
      const c = withProxy({ HTTPS_PROXY: value });
      expect(c.upstreamProxy).toBeUndefined();
      expect(c.problems).toEqual([{ setting: 'HTTPS_PROXY', message: expect.stringContaining('go direct') }]);
      expect(JSON.stringify(c.problems)).not.toContain('hunter2');
    }
  });
});

describe('which calls go through the proxy', () => {
  const settings = { httpsProxy: 'http://tls-proxy:8080/', httpProxy: 'http://plain-proxy:3128/', noProxy: '' };
  const via = (url: string, noProxy = '') => proxyFor(new URL(url), { ...settings, noProxy });

  it('an https or wss origin through HTTPS_PROXY, an http or ws one through HTTP_PROXY, and https through HTTP_PROXY when it is the only one', () => {
    expect(via('https://res.openai.azure.com')).toBe('http://tls-proxy:8080/');
    expect(via('wss://res.openai.azure.com/openai/realtime')).toBe('http://tls-proxy:8080/');
    expect(via('http://127.0.0.1:9000')).toBe('http://plain-proxy:3128/');
    expect(via('ws://127.0.0.1:9000')).toBe('http://plain-proxy:3128/');
    expect(proxyFor(new URL('https://res.openai.azure.com'), { httpProxy: 'http://only:1/', noProxy: '' })).toBe('http://only:1/');
    expect(proxyFor(new URL('http://127.0.0.1:9000'), { httpsProxy: 'http://tls-only:1/', noProxy: '' })).toBeUndefined();
  });

  it('NO_PROXY: a domain covers itself and its subdomains, *. only subdomains, a port only that port, * everything', () => {
    const cases: [string, string, boolean][] = [
      ['https://res.openai.azure.com', 'openai.azure.com', true],
      ['https://res.openai.azure.com', '.openai.azure.com', true],
      ['https://openai.azure.com', '.openai.azure.com', true],
      ['https://openai.azure.com', '*.openai.azure.com', false],
      ['https://res.openai.azure.com', '*.openai.azure.com', true],
      ['https://notopenai.azure.com', 'openai.azure.com', false],
      ['https://RES.OpenAI.Azure.com', 'res.openai.azure.com', true],
      ['https://res.openai.azure.com.', 'res.openai.azure.com', true],
      ['https://res.openai.azure.com', 'res.openai.azure.com:443', true],
      ['https://res.openai.azure.com', 'res.openai.azure.com:8443', false],
      ['http://127.0.0.1:9000', '127.0.0.1', true],
      ['http://127.0.0.1:9000', '127.0.0.1:9001', false],
      ['http://[::1]:9000', '::1', true],
      ['http://[::1]:9000', '[::1]:9000', true],
      ['https://anything.example', ' , *', true],
      ['https://anything.example', 'a.example  b.example', false],
      ['https://b.example', 'a.example  b.example', true],
    ];
    for (const [url, noProxy, direct] of cases) expect([url, noProxy, bypasses(new URL(url), noProxy)]).toEqual([url, noProxy, direct]);
    expect(via('https://res.openai.azure.com', 'openai.azure.com')).toBeUndefined();
  });
});
