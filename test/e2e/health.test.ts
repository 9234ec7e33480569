import { describe, expect, it } from 'vitest';
import { harnessForFile } from '../support/suite';

/** Values a hurried operator might paste into the wrong setting: each must stay out of the public /health. */
const PASTED = {
  timeout: 'sk-live-51Hxq2TIMEOUT',
  table: 'sk-live-51HxqTABLE',
  hub: 'sk-live-51HxqHUB',
  model: 'sk-live-51HxqMODEL',
  deployment: 'sk-live-51HxqDEPLOYMENT',
  keyName: 'sk-live-51HxqKEYNAME',
  cors: 'sk-live-51HxqCORS',
};

const suite = harnessForFile({
  env: () => ({
    UPSTREAM_HEADERS_TIMEOUT_MS: PASTED.timeout,
    BALANCER_TABLE: PASTED.table,
    WEBPUBSUB_HUB: PASTED.hub,
    WEBPUBSUB_CONNECTION_STRING: 'Endpoint=https://wps.webpubsub.azure.com;AccessKey=abc;Version=1.0;',
    CORS_ALLOWED_ORIGINS: PASTED.cors,
    MODEL_DEPLOYMENTS: JSON.stringify({ 'gpt-4o-mini': ['chat-a'], [PASTED.model]: [{ deployment: PASTED.deployment, weight: PASTED.timeout }], other: { [PASTED.timeout]: [] } }),
    PROXY_KEYS: JSON.stringify([{ name: PASTED.keyName, key: 'a-real-key-1234', rpm: PASTED.timeout }]),
  }),
});

describe('GET /health, public and unauthenticated', () => {
  it('names each malformed setting and what is wrong with it, and quotes none of the values', async () => {
    const res = await suite.raw('/health');
    expect(res.status).toBe(503);
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body.status).toBe('misconfigured');
    const settings = body.problems.map((p: { setting: string }) => p.setting);
    for (const setting of ['UPSTREAM_HEADERS_TIMEOUT_MS', 'BALANCER_TABLE', 'WEBPUBSUB_HUB', 'CORS_ALLOWED_ORIGINS', 'MODEL_DEPLOYMENTS', 'PROXY_KEYS']) expect(settings).toContain(setting);
    for (const p of body.problems) expect(p.message.length).toBeGreaterThan(10);
    for (const value of Object.values(PASTED)) expect(text).not.toContain(value.slice(0, 12));
    // The start-up log says the same, and no more.
    const logged = suite.h.logger.lines.filter((l) => l.includes('configuration problem')).join('\n');
    expect(logged).not.toContain('sk-live');
  });
});
