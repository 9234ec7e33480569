import https from 'node:https';
import { AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UndiciUpstream } from '../../src/azure-openai/client';
import { Harness, PROXY_KEY, startHarness } from '../support/harness';
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
