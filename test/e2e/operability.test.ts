import OpenAI from 'openai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useSharedUpstream } from '../support/shared-upstream';
import { Harness, PROXY_KEY, startHarness } from '../support/harness';

const upstream = useSharedUpstream();
const running = upstream.running;

async function instance(table: string): Promise<Harness> {
  const h = await startHarness({ sharedSimulator: upstream.sim, env: () => ({ BALANCER_STORAGE_CONNECTION: upstream.azurite.connectionString, BALANCER_TABLE: table, BALANCER_HEALTH_REFRESH_MS: '100' }) });
  running.push(h);
  return h;
}

const requestLines = (h: Harness) => h.logger.entries().filter((e) => e.msg === 'request');

describe('one structured log line per request', () => {
  it('a failover request names both deployments and why the first was skipped', async () => {
    const h = await instance('ops1');
    upstream.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 5 });
    const { response } = await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'please fail over' }] }).withResponse();
    const line = requestLines(h).find((l) => l.requestId === response.headers.get('x-request-id'))!;
    expect(line).toMatchObject({
      route: 'chatCompletions', model: 'gpt-4o-mini', deployment: 'chat-b', tried: 2, status: 200,
      tries: [{ deployment: 'chat-a', outcome: '429', status: 429 }, { deployment: 'chat-b', outcome: 'ok' }],
    });
    expect(line.firstByteMs).toBeGreaterThan(0);
    expect(line.totalMs).toBeGreaterThanOrEqual(line.firstByteMs as number);
  });

  it('logs token usage for whole and streamed responses', async () => {
    const h = await instance('ops2');
    await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count my tokens' }] });
    const stream = await h.client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'count my streamed tokens' }] });
    for await (const _ of stream) { /* drain */ }
    await new Promise((r) => setTimeout(r, 20));
    const usage = requestLines(h).map((l) => l.usage as { total_tokens: number } | undefined);
    expect(usage).toHaveLength(2);
    for (const u of usage) expect(u?.total_tokens).toBeGreaterThan(0);
  });
});

describe('the log line of an error names its code', () => {
  it('a content-filter block is logged as content_filter, malformed JSON as invalid_json, an unknown model as model_not_found', async () => {
    const h = await instance('ops5');
    upstream.sim.setBehaviour('chat-a', { mode: 'block' });
    upstream.sim.setBehaviour('chat-b', { mode: 'block' });
    const blocked = await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'something blocked' }] }).catch((e) => e);
    expect(blocked.status).toBe(400);
    const post = (body: string) => fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body });
    expect((await post('{"model": "gpt-4o-mini",')).status).toBe(400);
    expect((await post('{"model": "gpt-9", "messages": []}')).status).toBe(404);
    // Azure's own 400 with no code: logged by its type, never as a bare status.
    upstream.sim.reset();
    expect((await post('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}')).status).toBe(400);
    expect(requestLines(h).map((l) => [l.status, l.error])).toEqual([
      [400, 'content_filter'], [400, 'invalid_json'], [404, 'model_not_found'], [400, 'invalid_request_error'],
    ]);
  });
});

describe('the Application Insights workbook (infra/workbook.json)', () => {
  it('reads only fields the gateway\'s request lines have: every r.… and t.… path its queries use is in a real line', async () => {
    const h = await startHarness({ sharedSimulator: upstream.sim, env: () => ({ PROXY_KEYS: JSON.stringify([{ name: 'team-a', key: 'named-key-5d1c' }]) }) });
    running.push(h);
    const named = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'named-key-5d1c', maxRetries: 0 });
    upstream.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 5, times: 1 });
    await named.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count these tokens' }] });
    await named.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }).catch(() => undefined);
    const lines = requestLines(h);
    const has = (value: unknown, path: string[]): boolean => {
      if (path.length === 0) return value !== undefined && value !== null;
      if (Array.isArray(value)) return value.some((v) => has(v, path));
      return typeof value === 'object' && value !== null && has((value as Record<string, unknown>)[path[0]], path.slice(1));
    };
    const workbook = JSON.parse(readFileSync(path.join(__dirname, '../../infra/workbook.json'), 'utf8')) as { items: { content: { query?: string } }[] };
    const queries = workbook.items.map((i) => i.content.query ?? '').filter((q) => q.includes('"msg":"request"'));
    expect(queries.length).toBeGreaterThan(5);
    for (const q of queries) {
      for (const [, root, rest] of q.matchAll(/\b([rt])\.(\w+(?:\.\w+)*)/g)) {
        const fields = root === 't' ? ['tries', ...rest.split('.')] : rest.split('.');
        expect(lines.some((l) => has(l, fields)), `no request line has ${fields.join('.')}`).toBe(true);
      }
    }
  });
});

describe('GET /health/deployments', () => {
  it('needs a proxy key', async () => {
    const h = await instance('ops3');
    expect((await fetch(`${h.url}/health/deployments`)).status).toBe(401);
  });

  it('shows a deployment cooling down after the simulator throttled it, seen from a second instance, with recent counts', async () => {
    const a = await instance('ops4');
    const b = await instance('ops4');
    upstream.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterSeconds: 30 });
    for (let i = 0; i < 3; i++) await a.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    // Instances share their counts every 5 health refreshes (here 500 ms), on their next request.
    await new Promise((r) => setTimeout(r, 600));
    await a.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const res = await fetch(`${b.url}/health/deployments`, { headers: { authorization: `Bearer ${PROXY_KEY}` } });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.source).toBe('shared');
    const chatA = body.data.find((d: { deployment: string }) => d.deployment === 'chat-a');
    const chatB = body.data.find((d: { deployment: string }) => d.deployment === 'chat-b');
    expect(chatA).toMatchObject({ model: 'gpt-4o-mini', state: 'cooling', reason: '429', recent: { failed: { 429: 1 } } });
    expect(Date.parse(chatA.cooling_until) - Date.now()).toBeGreaterThan(25_000);
    expect(chatB.state).toBe('healthy');
    expect(chatB.recent.succeeded).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(body)).not.toContain(new URL(upstream.sim.url).host);
  });
});

describe('the local host without storage', () => {
  it('reports this instance\'s own view', async () => {
    const h = await startHarness();
    running.push(h);
    await h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const body = await (await fetch(`${h.url}/health/deployments`, { headers: { 'api-key': PROXY_KEY } })).json();
    expect(body.source).toBe('this instance');
    expect(body.data.find((d: { deployment: string }) => d.deployment === 'chat-a').recent.succeeded).toBe(1);
    await expect(h.client.models.list()).resolves.toBeDefined();
    expect(OpenAI).toBeDefined();
  });
});
