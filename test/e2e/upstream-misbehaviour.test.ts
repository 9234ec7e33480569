import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROXY_KEY } from '../support/harness';
import { OwnUpstream, startOwnUpstream } from '../support/own-upstream';
import { harnessForFile } from '../support/suite';

/** What the test's own upstream does for each deployment name. */
const answers = new Map<string, (res: http.ServerResponse, body: Buffer) => void | Promise<void>>();
let upstream: OwnUpstream;

beforeAll(async () => {
  upstream = await startOwnUpstream((req, res, body) => {
    const deployment = decodeURIComponent(/^\/openai\/deployments\/([^/]+)\//.exec(req.url ?? '')?.[1] ?? '');
    const answer = answers.get(deployment);
    if (answer) return answer(res, body);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}');
  });
});
afterAll(async () => upstream.close());

const suite = harnessForFile({
  env: () => ({
    AZURE_OPENAI_ENDPOINT: upstream.url,
    MODEL_DEPLOYMENTS: JSON.stringify({ 'huge-event': ['huge-event'] }),
  }),
});
const auth = { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' };
const chat = (model: string, extra: Record<string, unknown> = {}) =>
  fetch(`${suite.h.url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }) });

describe('a stream whose event never ends', () => {
  it('a 32 MB event without a blank line streams through in linear time while /health stays quick', async () => {
    const piece = Buffer.alloc(64 * 1024, 'a');
    const pieces = 512;
    const head = 'data: {"choices":[{"index":0,"delta":{"content":"';
    const tail = '"}}]}\n\ndata: [DONE]\n\n';
    answers.set('huge-event', async (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(head);
      for (let i = 0; i < pieces; i++) {
        if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
      }
      res.end(tail);
    });
    const started = performance.now();
    const res = await chat('huge-event', { stream: true });
    expect(res.status).toBe(200);
    let slowestHealth = 0;
    let streaming = true;
    const probes = (async () => {
      while (streaming) {
        const at = performance.now();
        await (await fetch(`${suite.h.url}/health`)).arrayBuffer();
        slowestHealth = Math.max(slowestHealth, performance.now() - at);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const text = Buffer.from(await res.arrayBuffer()).toString('latin1');
    streaming = false;
    await probes;
    expect(text.length).toBe(head.length + pieces * piece.length + tail.length);
    expect(text.endsWith(tail)).toBe(true);
    // The quadratic scan took minutes for this and held the event loop throughout.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(slowestHealth).toBeLessThan(1000);
  });
});
