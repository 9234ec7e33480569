import https from 'node:https';
import { AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UndiciUpstream } from '../../src/azure-openai/client';
import { WebSocket } from 'ws';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';
import { ForwardProxy, startForwardProxy } from '../support/forward-proxy';
import { OwnUpstream, startOwnUpstream } from '../support/own-upstream';
import { selfSignedCert } from '../support/tls';

/** How the gateway reaches Azure OpenAI: TLS to the resource by its name, and never where a redirect points. */
const auth = { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' };
const chat = (h: Harness) => fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
const chatAnswer = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'over TLS' } }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } });

describe('TLS to Azure OpenAI', () => {
  const { cert, key } = selfSignedCert();
  const servernames: (string | false)[] = [];
  let server: https.Server;
  let endpoint: string;
  beforeAll(async () => {
    server = https.createServer({ cert, key }, (req, res) => {
      servernames.push((req.socket as TLSSocket).servername);
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(chatAnswer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('names the resource\'s host for TLS (SNI) and serves over a certificate it trusts', async () => {
    const h = await startHarness({ env: () => ({ AZURE_OPENAI_ENDPOINT: endpoint }), deps: { upstream: new UndiciUpstream({ ca: cert }) } });
    try {
      const res = await chat(h);
      expect(res.status).toBe(200);
      expect((await res.json()).choices[0].message.content).toBe('over TLS');
      expect(servernames.at(-1)).toBe('localhost');
    } finally {
      await h.close();
    }
  });

  it('refuses a certificate it does not trust: the deployment fails, and nothing is sent to it', async () => {
    const before = servernames.length;
    const h = await startHarness({ env: () => ({ AZURE_OPENAI_ENDPOINT: endpoint }) });
    try {
      const res = await chat(h);
      expect(res.status).toBe(502);
      expect(servernames.length).toBe(before);
    } finally {
      await h.close();
    }
  });
});

describe('redirects', () => {
  let elsewhere: OwnUpstream;
  let redirecting: OwnUpstream;
  let h: Harness;
  beforeAll(async () => {
    elsewhere = await startOwnUpstream((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(chatAnswer));
    redirecting = await startOwnUpstream((req, res) => res.writeHead(307, { location: `${elsewhere.url}${req.url}` }).end());
    h = await startHarness({ env: () => ({ AZURE_OPENAI_ENDPOINT: redirecting.url, MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini': ['chat-a'] }) }) });
  });
  afterAll(async () => {
    await h.close();
    await elsewhere.close();
    await redirecting.close();
  });

  it('a deployment that redirects is a failing deployment: the redirect is not followed and the key goes nowhere else', async () => {
    const res = await chat(h);
    expect(res.status).toBe(502);
    // Only the chat call counts here: the gateway also checks at start that each resource answers.
    expect(redirecting.requests.filter((r) => r.method === 'POST').length).toBe(1);
    expect(elsewhere.requests.length).toBe(0);
    const line = h.logger.entries().find((e) => e.msg === 'request');
    expect(line?.tries).toEqual([expect.objectContaining({ deployment: 'chat-a', outcome: 'rejected', status: 307 })]);
  });
});

describe('through a forward proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)', () => {
  const credentials = { user: 'gateway', password: 'pr0xy-s3cret-91c' };
  let proxy: ForwardProxy;
  beforeAll(async () => {
    proxy = await startForwardProxy(credentials);
  });
  afterAll(() => proxy.close());
  const basic = `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`;
  const neverLogged = (h: Harness) => {
    for (const line of h.logger.lines) {
      expect(line).not.toContain(credentials.password);
      expect(line).not.toContain(new URL(proxy.url).host);
    }
  };

  it('sends every call to Azure OpenAI through the proxy, with its credentials for the proxy only', async () => {
    const h = await startHarness({ env: () => ({ HTTP_PROXY: proxy.url }) });
    try {
      const before = proxy.calls.length;
      const answer = await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'through the proxy' }] });
      expect(answer.choices[0].message.content).toBeTruthy();
      const forwarded = proxy.calls.slice(before).filter((c) => c.target.includes('/chat/completions'));
      expect(forwarded).toEqual([{ kind: 'forward', target: expect.stringMatching(new RegExp(`^${h.simUrl}/openai/deployments/chat-[ab]/chat/completions\\?api-version=`)), authorization: basic }]);
      // Azure gets its own key and nothing meant for the proxy.
      const call = h.sim.calls.at(-1)!;
      expect(call.headers['api-key']).toBe(AZURE_KEY);
      expect(call.headers['proxy-authorization']).toBeUndefined();
      neverLogged(h);
    } finally {
      await h.close();
    }
  });

  it('goes direct to a host NO_PROXY names, and to every host for NO_PROXY=*', async () => {
    for (const noProxy of ['example.com, 127.0.0.1', '*']) {
      const h = await startHarness({ env: () => ({ HTTP_PROXY: proxy.url, NO_PROXY: noProxy }) });
      try {
        const before = proxy.calls.length;
        const answer = await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'direct' }] });
        expect(answer.choices[0].message.content).toBeTruthy();
        expect(proxy.calls.length).toBe(before);
      } finally {
        await h.close();
      }
    }
  });

  it('a proxy that refuses the gateway (407) is a failing deployment, never a 407 to the client, and says nothing of the proxy', async () => {
    const wrong = proxy.url.replace(encodeURIComponent(credentials.password), 'not-the-password');
    const h = await startHarness({ env: () => ({ HTTP_PROXY: wrong }) });
    try {
      const res = await chat(h);
      expect(res.status).toBe(502);
      const text = await res.text();
      expect(JSON.parse(text).error.message).toBeTruthy();
      expect(text).not.toContain('not-the-password');
      expect(text).not.toContain(new URL(proxy.url).host);
      const line = h.logger.entries().find((e) => e.msg === 'request');
      // undici's proxy agent fails a 407 as a connection that could not be made: no status of Azure's to show.
      expect(line?.tries).toEqual([expect.objectContaining({ deployment: 'chat-a', outcome: 'connect' }), expect.objectContaining({ deployment: 'chat-b', outcome: 'connect' })]);
      expect(h.sim.calls.filter((c) => c.operation === 'chat/completions')).toHaveLength(0);
      expect(h.logger.lines.join('\n')).not.toContain('not-the-password');
      // /health says the resource does not answer through the proxy, so the operator looks there too, and names neither.
      const health = await (await fetch(`${h.url}/health`)).text();
      expect(JSON.parse(health).problems).toContainEqual({ setting: 'AZURE_OPENAI_ENDPOINT', message: expect.stringContaining('through the proxy that HTTPS_PROXY or HTTP_PROXY names') });
      expect(health).not.toContain('not-the-password');
      expect(health).not.toContain(new URL(proxy.url).host);
    } finally {
      await h.close();
    }
  });

  it('tunnels TLS to the resource through the proxy (CONNECT), naming the resource for TLS and trusting only its certificate', async () => {
    const { cert, key } = selfSignedCert();
    const names: (string | false)[] = [];
    const seen: (string | undefined)[] = [];
    const server = https.createServer({ cert, key }, (req, res) => {
      names.push((req.socket as TLSSocket).servername);
      seen.push(req.headers['proxy-authorization']);
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(chatAnswer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    // The proxy settings as the configuration reads them, into the client the gateway would make (with a test's CA).
    const settings = { httpsProxy: proxy.url, noProxy: '' };
    const h = await startHarness({ env: () => ({ AZURE_OPENAI_ENDPOINT: `https://localhost:${port}` }), deps: { upstream: new UndiciUpstream({ ca: cert, proxy: settings }) } });
    try {
      // The start-up check (which also reaches the resource, and may open the tunnel the request then uses) done first.
      await h.gateway.readiness.check();
      const res = await chat(h);
      expect(res.status).toBe(200);
      expect((await res.json()).choices[0].message.content).toBe('over TLS');
      expect(proxy.calls).toContainEqual({ kind: 'connect', target: `localhost:${port}`, authorization: basic });
      expect(names.at(-1)).toBe('localhost');
      // Inside the tunnel, the resource gets nothing meant for the proxy.
      expect(seen.at(-1)).toBeUndefined();

      // A proxy that refuses the tunnel (407 to CONNECT) fails the deployment: a 502 that names neither.
      const refused = await startHarness({ env: () => ({ AZURE_OPENAI_ENDPOINT: `https://localhost:${port}` }), deps: { upstream: new UndiciUpstream({ ca: cert, proxy: { httpsProxy: proxy.url.replace(encodeURIComponent(credentials.password), 'wrong'), noProxy: '' } }) } });
      try {
        await refused.gateway.readiness.check();
        const served = names.length;
        const res = await chat(refused);
        expect(res.status).toBe(502);
        expect(await res.text()).not.toContain('wrong');
        expect(names.length).toBe(served);
        expect(refused.logger.entries().find((e) => e.msg === 'request')?.tries).toEqual([expect.objectContaining({ deployment: 'chat-a', outcome: 'connect' }), expect.objectContaining({ deployment: 'chat-b', outcome: 'connect' })]);
      } finally {
        await refused.close();
      }
    } finally {
      await h.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('a proxy that never answers CONNECT fails the call in time, and the tunnel it was asked for is given up, not left open', async () => {
    const { cert } = selfSignedCert();
    const silent = await startForwardProxy(undefined, { stall: true });
    const h = await startHarness({
      env: () => ({ AZURE_OPENAI_ENDPOINT: 'https://localhost:9', UPSTREAM_HEADERS_TIMEOUT_MS: '300', MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini': ['chat-a'] }) }),
      deps: { upstream: new UndiciUpstream({ ca: cert, proxy: { httpsProxy: silent.url, noProxy: '' }, proxyConnectTimeoutMs: 300 }) },
    });
    try {
      const res = await chat(h);
      expect(res.status).toBe(504);
      expect(silent.calls.some((c) => c.kind === 'connect')).toBe(true);
      // undici would keep the unanswered CONNECT for its own 300 s; bounded by the gateway's wait, it goes.
      await eventually(() => silent.openSockets() === 0, 3000, 'the unanswered CONNECT to be given up');
    } finally {
      await h.close();
      await silent.close();
    }
  });

  it('a realtime socket through a proxy that never answers, or refuses, fails over in time, and neither is blamed on Azure', async () => {
    const silent = await startForwardProxy(undefined, { stall: true });
    const wrong = proxy.url.replace(encodeURIComponent(credentials.password), 'wrong');
    try {
      for (const [through, outcome] of [[silent.url, 'timeout'], [wrong, 'connect']] as const) {
        // The refused case goes through a proxy that asks for credentials and is given the wrong ones.
        const h = await startHarness({ env: () => ({ HTTP_PROXY: through, UPSTREAM_HEADERS_TIMEOUT_MS: '500', MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini-realtime-preview': ['rt-a'] }) }) });
        try {
          const started = Date.now();
          const ws = new WebSocket(`${h.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-mini-realtime-preview`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
          const events: string[] = [];
          ws.on('message', (d) => events.push(String(d)));
          const code = await new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
          expect(code, through).toBe(1011);
          expect(Date.now() - started).toBeLessThan(3000);
          expect(JSON.parse(events[0])).toMatchObject({ type: 'error' });
          expect(h.logger.entries().find((e) => e.msg === 'realtime: Azure refused the session')).toMatchObject({ error: outcome === 'timeout' ? 'upstream_timeout' : 'upstream_error' });
          // The deployment is cooled for what happened: no answer in time, or no connection (a proxy's 407 is not Azure's).
          const rt = h.gateway.config.models.get('gpt-4o-mini-realtime-preview')![0];
          expect(h.gateway.balancer.health.get(rt.id)).toMatchObject({ reason: outcome });
        } finally {
          await h.close();
        }
      }
    } finally {
      await silent.close();
    }
  });

  it('opens the realtime WebSocket to Azure through the proxy too', async () => {
    const h = await startHarness({ env: () => ({ HTTP_PROXY: proxy.url, MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini-realtime-preview': ['rt-a'] }) }) });
    try {
      const before = proxy.calls.length;
      const ws = new WebSocket(`${h.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-mini-realtime-preview`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
      const first = await new Promise<string>((resolve, reject) => {
        ws.once('message', (d) => resolve(String(d)));
        ws.once('error', reject);
      });
      ws.close();
      expect(JSON.parse(first).type).toBe('session.created');
      expect(proxy.calls.slice(before)).toContainEqual({ kind: 'connect', target: new URL(h.simUrl).host, authorization: basic });
      neverLogged(h);
    } finally {
      await h.close();
    }
  });
});
