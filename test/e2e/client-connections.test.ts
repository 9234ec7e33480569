import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { LocalServer } from '../../src/local/server';
import { routeTable } from '../../src/routes';
import { PROXY_KEY } from '../support/harness';
import { harnessForFile } from '../support/suite';

/** What a client's connection may do besides one plain request: ask to upgrade, dawdle, pipeline garbage. */
const suite = harnessForFile();
const hello = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] });

/** Writes `text` on a fresh connection and collects everything until the server closes it (or `waitMs` passes). */
function exchange(url: string, text: string, waitMs = 3000): Promise<{ out: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (out += c));
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ out, closed: false });
    }, waitMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ out, closed: true });
    });
  });
}

describe('a connection that asks for more than HTTP/1.1', () => {
  it('`curl --http2` (Upgrade: h2c) on an API route is answered as plain HTTP/1.1', async () => {
    const { stdout } = await promisify(execFile)('curl', ['-s', '--http2', '-X', 'POST', `${suite.h.url}/v1/chat/completions`,
      '-H', `Authorization: Bearer ${PROXY_KEY}`, '-H', 'Content-Type: application/json', '-d', hello, '-w', '\n%{http_version} %{http_code}']);
    const [body, status] = stdout.split('\n');
    expect(status).toBe('1.1 200');
    expect(JSON.parse(body).choices[0].message.content).toContain('hello there');
  });
});

describe('a connection that is slow or sends garbage', () => {
  it('a request head that does not arrive in time is a 408 in OpenAI\'s shape', async () => {
    const server = new LocalServer(suite.h.gateway, routeTable, { headersTimeoutMs: 300 });
    const url = await server.listen(0);
    onTestFinished(() => server.close());
    const { out } = await exchange(url, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PROXY_KEY}\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)).error).toMatchObject({ code: 'request_timeout', type: 'invalid_request_error' });
  });

  it('garbage pipelined behind a streaming request never lands in the stream: it finishes whole, then the connection closes', async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, max_tokens: 200, messages: [{ role: 'user', content: 'hello there' }] });
    const request = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PROXY_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const { out, closed } = await exchange(suite.h.url, `${request}GARBAGE \x01\x02 NOT HTTP\r\n\r\n`);
    expect(closed).toBe(true);
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(out.match(/HTTP\/1\.1/g)).toHaveLength(1);
    expect(out).toContain('data: [DONE]');
  });
});

describe('how a whole answer is framed', () => {
  /** One request on a fresh connection; the answer's head and body as the client's socket saw them. */
  async function raw(head: string, body = ''): Promise<{ status: string; headers: Record<string, string>; rest: string }> {
    const { out } = await exchange(suite.h.url, `${head}Host: x\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const [top, ...lines] = out.slice(0, out.indexOf('\r\n\r\n')).split('\r\n');
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    return { status: top, headers, rest: out.slice(out.indexOf('\r\n\r\n') + 4) };
  }

  it('a completion and an error carry their length in bytes, not chunks: a client knows the size before the body', async () => {
    // Not plain ASCII, so a length in characters would be short. The socket is read as latin1: one character per byte.
    const accented = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'héllo thére ✓' }] });
    const ok = await raw(`POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer ${PROXY_KEY}\r\nContent-Type: application/json\r\n`, accented);
    expect(ok.status).toMatch(/ 200 /);
    expect(ok.headers['transfer-encoding']).toBeUndefined();
    expect(Number(ok.headers['content-length'])).toBe(ok.rest.length);
    const answer = JSON.parse(Buffer.from(ok.rest, 'latin1').toString('utf8'));
    expect(answer.choices[0].message.content).toContain('héllo thére ✓');

    // An error that names what the client sent, accents and all.
    const unknown = JSON.stringify({ model: 'modèle-inconnu', messages: [{ role: 'user', content: 'hello' }] });
    const refused = await raw(`POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer ${PROXY_KEY}\r\nContent-Type: application/json\r\n`, unknown);
    expect(refused.status).toMatch(/ 404 /);
    expect(Buffer.from(refused.rest, 'latin1').toString('utf8')).toContain('modèle-inconnu');
    expect(refused.headers['transfer-encoding']).toBeUndefined();
    expect(Number(refused.headers['content-length'])).toBe(refused.rest.length);
  });

  it('a CORS preflight (204) carries no length, as RFC 9110 wants of a 204', async () => {
    const preflight = await raw('OPTIONS /v1/chat/completions HTTP/1.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n');
    expect(preflight.status).toMatch(/ 204 /);
    expect(preflight.headers['content-length']).toBeUndefined();
    expect(preflight.headers['transfer-encoding']).toBeUndefined();
    expect(preflight.rest).toBe('');
  });
});
