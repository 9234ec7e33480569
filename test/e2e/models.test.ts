import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { PROXY_KEY, eventually } from '../support/harness';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile();
const raw = (path: string, init: RequestInit = {}) => suite.raw(path, init);

describe('models and health', () => {
  it('lists and retrieves the configured models in OpenAI\'s shape', async () => {
    const list = await suite.h.client.models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual(['gpt-35-turbo-instruct', 'gpt-4o-mini', 'text-embedding-3-small', 'tts-1', 'whisper-1']);
    expect((await suite.h.client.models.retrieve('gpt-4o-mini')).object).toBe('model');
    await expect(suite.h.client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('health answers without a key', async () => {
    const res = await raw('/health', {});
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.text())).toMatchObject({ status: 'ok', problems: [] });
  });
});
