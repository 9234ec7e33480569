import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsOptions } from '../../src/config/service-tls';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { Azurite, startAzurite } from '../support/azurite';
import { AZURE_KEY, Harness, PROXY_KEY, startHarness } from '../support/harness';
import { selfSignedCert } from '../support/tls';

/** Storage tokens shaped like Entra ID's (Azurite checks issuer, audience and lifetime, not signatures). */
class StorageIdentity implements TokenCredential {
  scopes: string[] = [];

  async getToken(scopes: string | string[]): Promise<AccessToken> {
    this.scopes.push(...[scopes].flat());
    const now = Math.floor(Date.now() / 1000);
    const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const token = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({ aud: 'https://storage.azure.com', iss: 'https://sts.windows.net/00000000-0000-0000-0000-000000000001/', iat: now, nbf: now, exp: now + 3600, oid: 'gateway' })}.c2ln`;
    return { token, expiresOnTimestamp: (now + 3600) * 1000 };
  }
}

let azurite: Azurite;
let sim: AzureOpenAISimulator;
let tls: { cert: Buffer; key: Buffer };
const identity = new StorageIdentity();
const running: Harness[] = [];

beforeAll(async () => {
  tls = selfSignedCert();
  azurite = await startAzurite({ oauth: tls });
  sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
  await sim.start();
});
afterAll(async () => {
  await Promise.all(running.map((h) => h.close()));
  await sim.close();
  await azurite.stop();
});

describe('the balancer table by managed identity', () => {
  it('shares the cursor through BALANCER_STORAGE_CONNECTION__tableServiceUri with an Entra ID token, no key', async () => {
    for (let i = 0; i < 6; i++) {
      running.push(await startHarness({
        sharedSimulator: sim,
        env: () => ({ BALANCER_STORAGE_CONNECTION__tableServiceUri: azurite.tableServiceUri, BALANCER_TABLE: 'identitytable' }),
        deps: { credential: identity, serviceTls: { ca: tls.cert } },
      }));
    }
    // Fresh instances, one request each, take turns only if they share the cursor.
    for (const h of running) {
      const res = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
      expect(res.status).toBe(200);
    }
    expect(sim.calls.map((c) => c.deployment).sort()).toEqual(['chat-a', 'chat-a', 'chat-a', 'chat-b', 'chat-b', 'chat-b']);
    expect(new Set(identity.scopes)).toEqual(new Set(['https://storage.azure.com/.default']));
    expect(running.every((h) => h.logger.entries().every((e) => e.level !== 'warn'))).toBe(true);
    const table = new TableClient(azurite.tableServiceUri, 'identitytable', identity, tlsOptions({ ca: tls.cert }));
    const cursor = await table.getEntity<{ next: number }>('cursor', Buffer.from('gpt-4o-mini').toString('base64url'));
    expect(cursor.next).toBeGreaterThanOrEqual(6);
  });
});
