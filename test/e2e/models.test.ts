import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AZURE_KEY, Harness, PROXY_KEY, eventually, startHarness } from '../support/harness';

let h: Harness;
const bodies: string[] = [];

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  // Nothing secret may appear in anything a client or the log saw in this file.
  const seen = [...bodies, ...h.logger.lines].join('\n');
  expect(seen).not.toContain(AZURE_KEY);
  expect(seen).not.toContain(PROXY_KEY);
  expect(seen).not.toContain(h.simUrl);
  await h.close();
});

async function raw(path: string, init: RequestInit): Promise<Response & { text(): Promise<string> }> {
  const res = await fetch(`${h.url}${path}`, init);
  const text = await res.text();
  bodies.push(text);
  return Object.assign(res, { text: async () => text });
}

describe('models and health', () => {
  it('lists and retrieves the configured models in OpenAI\'s shape', async () => {
    const list = await h.client.models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual(['gpt-35-turbo-instruct', 'gpt-4o-mini', 'text-embedding-3-small', 'tts-1', 'whisper-1']);
    expect((await h.client.models.retrieve('gpt-4o-mini')).object).toBe('model');
    await expect(h.client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('health answers without a key', async () => {
    const res = await raw('/health', {});
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.text())).toMatchObject({ status: 'ok', problems: [] });
  });
});
