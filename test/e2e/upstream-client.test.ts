import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UndiciUpstream, UpstreamCall, UpstreamFailure } from '../../src/azure-openai/client';
import { ClientGone } from '../../src/core/http';
import { OwnUpstream, startOwnUpstream } from '../support/own-upstream';

/**
 * The upstream client's reply over real sockets: a body is taken one way
 * (streamed, read whole, discarded), and what arrives before the reader
 * chooses is held to a bound, the upstream held back beyond it.
 */
const MB = 1024 * 1024;
const big = Buffer.alloc(4 * MB, 'x');

let upstream: OwnUpstream;
/** How many bytes of the big answer the server's socket took, per request: what it could write before being held back. */
const written: number[] = [];
const sockets = new Set<unknown>();

beforeAll(async () => {
  upstream = await startOwnUpstream((req, res) => {
    sockets.add(req.socket);
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) });
      const at = written.push(0) - 1;
      // Written in pieces, each after the last drained, so what went out says how far the reader let it.
      let offset = 0;
      const next = () => {
        while (offset < big.length) {
          const piece = big.subarray(offset, offset + 64 * 1024);
          offset += piece.length;
          written[at] = offset;
          if (!res.write(piece)) return void res.once('drain', next);
        }
        res.end();
      };
      next();
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }
  });
});
afterAll(async () => upstream.close());

const call = (path: string): UpstreamCall => ({
  origin: upstream.url,
  path,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{}'),
  gone: new ClientGone(),
  headersTimeoutMs: 5000,
  idleTimeoutMs: 5000,
});

describe('the upstream client\'s replies', () => {
  it('holds back an answer nobody has asked for yet, then gives all of it to a reader that asks for it whole', async () => {
    const client = new UndiciUpstream();
    try {
      const reply = await client.send(call('/big'));
      await new Promise((r) => setTimeout(r, 300));
      // Loopback and kernel buffers take a few MB at most; the 64 KiB held in the gateway stop it well short of 4 MB.
      expect(written.at(-1)).toBeLessThan(big.length);
      const body = await reply.whole(8 * MB);
      expect(body.length).toBe(big.length);
      expect(body.equals(big)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('streams an answer held back early from its first byte, in order', async () => {
    const client = new UndiciUpstream();
    try {
      const reply = await client.send(call('/big'));
      await new Promise((r) => setTimeout(r, 300));
      const chunks: Buffer[] = [];
      for await (const c of reply.body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(big)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('fails a whole read past its limit as the upstream\'s failure', async () => {
    const client = new UndiciUpstream();
    try {
      const reply = await client.send(call('/big'));
      const read = reply.whole(MB);
      await expect(read).rejects.toBeInstanceOf(UpstreamFailure);
      await expect(read).rejects.toMatchObject({ kind: 'connect' });
    } finally {
      client.close();
    }
  });

  it('keeps the connection for the next call when a reply is discarded', async () => {
    const client = new UndiciUpstream();
    try {
      sockets.clear();
      for (let i = 0; i < 3; i++) {
        const reply = await client.send(call('/small'));
        reply.discard();
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(sockets.size).toBe(1);
    } finally {
      client.close();
    }
  });

  it('ends a whole read with "aborted" when the client leaves midway', async () => {
    const client = new UndiciUpstream();
    try {
      const c = call('/big');
      const reply = await client.send(c);
      const read = reply.whole(8 * MB);
      c.gone.fire();
      await expect(read).rejects.toMatchObject({ kind: 'aborted' });
    } finally {
      client.close();
    }
  });
});
