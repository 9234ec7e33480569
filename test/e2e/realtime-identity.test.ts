import { generateKeyPairSync } from 'node:crypto';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { RealtimeSimulator } from '../../src/simulator/realtime';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';
import { TestCredential } from '../support/key-vault';
import { OidcStandIn } from '../support/oidc';
import { selfSignedCert } from '../support/tls';
import { WebPubSubStandIn } from '../support/web-pubsub';

const MODEL = 'gpt-4o-mini-realtime-preview';
const AUDIENCE = 'api://gateway-realtime-events';
let sim: AzureOpenAISimulator;
let rt: RealtimeSimulator;
let oidc: OidcStandIn;
let pubsub: WebPubSubStandIn;
let identity: TestCredential;
let h: Harness;
let tls: { cert: Buffer; key: Buffer };

beforeAll(async () => {
  sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
  rt = installSimulatorOperations(sim);
  await sim.start();
  oidc = new OidcStandIn();
  await oidc.start();
  tls = selfSignedCert();
  identity = new TestCredential('https://webpubsub.azure.com/.default');
  pubsub = new WebPubSubStandIn('realtime', { tls, restIdentity: identity, eventToken: () => oidc.issue(AUDIENCE) });
  await pubsub.start();
  h = await startHarness({
    sharedSimulator: sim,
    env: () => ({
      MODEL_DEPLOYMENTS: JSON.stringify({ [MODEL]: ['rt-a'] }),
      WEBPUBSUB_ENDPOINT: pubsub.endpoint,
      WEBPUBSUB_EVENT_AUDIENCE: AUDIENCE,
      // The tenant's v1 and v2 issuers, as the gateway takes by default from AZURE_TENANT_ID (the stand-in's tokens are v1, as Entra ID's are by default).
      WEBPUBSUB_EVENT_ISSUER: `${oidc.issuerV1},${oidc.issuer}`,
      WEBPUBSUB_EVENT_PRINCIPAL_ID: OidcStandIn.PRINCIPAL,
    }),
    deps: { credential: identity, serviceTls: { ca: tls.cert } },
  });
  pubsub.handlers = [`${h.url}/realtime/events`];
});

afterAll(async () => {
  await h.close();
  await pubsub.close();
  await oidc.close();
  await sim.close();
});

describe('Web PubSub by managed identity, no access key in the gateway', () => {
  it('starts and relays a session: tokens and REST calls by identity, events checked by the service\'s Entra ID token', async () => {
    expect(h.gateway.config.webPubSub?.mode).toBe('identity');
    const res = await fetch(`${h.url}/v1/realtime/sessions`, { method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL }) });
    expect(res.status).toBe(200);
    const { url } = await res.json();
    expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/client\/hubs\/realtime\?access_token=/);
    const ws = new WebSocket(url, { ca: tls.cert });
    const received: string[] = [];
    ws.on('message', (d) => received.push(String(d)));
    await new Promise((r) => ws.once('open', r));
    await eventually(() => received.length >= 1, 5000, 'session.created');
    ws.send(JSON.stringify({ type: 'response.create' }));
    await eventually(() => received.some((e) => e.includes('response.done')), 5000, 'response.done');
    const upstream = rt.sessions.at(-1)!;
    ws.close();
    await eventually(() => upstream.closed, 3000, 'the Azure socket to close');
    expect(identity.requests).toBeGreaterThanOrEqual(1);
    expect(pubsub.restCalls.filter((c) => c.status >= 300)).toEqual([]);
    expect(pubsub.restCalls.some((c) => c.path.endsWith('/:generateToken'))).toBe(true);
  });

  it('refuses events whose token is missing, for another audience or issuer, expired, signed by another key, or issued to another principal of the tenant', async () => {
    const handler = `${h.url}/realtime/events`;
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const tokens = [undefined, oidc.issue('api://someone-else'), oidc.issue(AUDIENCE, { issuer: 'https://login.microsoftonline.com/other/v2.0' }), oidc.issue(AUDIENCE, { lifetimeS: -3600 }), oidc.issue(AUDIENCE, { signWith: otherKey }),
      // Any app in the tenant can get a token for the audience; only Web PubSub's own identity may post events.
      oidc.issue(AUDIENCE, { oid: '0b9d7e6f-1111-4c2a-8e3d-5f6a7b8c9d0e' })];
    for (const token of tokens) {
      const res = await fetch(handler, {
        method: 'POST',
        headers: {
          'content-type': 'application/json', 'ce-type': 'azure.webpubsub.sys.connect', 'ce-connectionId': 'forged', 'ce-hub': 'realtime', 'ce-userId': 'session.x.eA',
          'ce-signature': pubsub.signature('forged'), ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: '{}',
      });
      expect(res.status).toBe(401);
    }
  });

  it('takes the service\'s token in either version, v1 (Entra ID\'s default) or v2, each checked against its own issuer\'s keys', async () => {
    for (const version of [1, 2] as const) {
      const res = await fetch(`${h.url}/realtime/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json', 'ce-type': 'azure.webpubsub.sys.connected', 'ce-connectionId': `either-${version}`, 'ce-hub': 'realtime', 'ce-userId': 'session.x.eA',
          'ce-signature': pubsub.signature(`either-${version}`), authorization: `Bearer ${oidc.issue(AUDIENCE, { version })}`,
        },
        body: '{}',
      });
      expect(res.status, `v${version}`).not.toBe(401);
    }
  });
});
