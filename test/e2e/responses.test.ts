import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { AZURE_KEY } from '../support/harness';

/** The openai SDK pointed straight at a simulator, as at an Azure resource's GA v1 endpoint. */
function azureClient(sim: AzureOpenAISimulator): OpenAI {
  return new OpenAI({ baseURL: `${sim.url}/openai/v1`, apiKey: 'unused', defaultHeaders: { 'api-key': AZURE_KEY }, maxRetries: 0 });
}

/** Reads a raw SSE body into its `event:` names and parsed data. */
function parseEvents(text: string): { event: string; data: Record<string, unknown> }[] {
  return text.trim().split(/\n\n/).map((block) => {
    const event = /^event: (.+)$/m.exec(block)?.[1] ?? '';
    const data = JSON.parse(/^data: (.+)$/m.exec(block)![1]);
    return { event, data };
  });
}

describe('the simulator serves the Responses API as Azure does', () => {
  let sim: AzureOpenAISimulator;
  let other: AzureOpenAISimulator;
  beforeAll(async () => {
    sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY, deployments: ['dep-a', 'dep-b'], backgroundMs: 5000 });
    other = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
    for (const s of [sim, other]) {
      installSimulatorOperations(s);
      await s.start();
    }
  });
  afterAll(async () => {
    await sim.close();
    await other.close();
  });

  it('stores a response on the resource: any deployment there continues it, another resource does not know it', async () => {
    const client = azureClient(sim);
    const first = await client.responses.create({ model: 'dep-a', input: 'Hello there' });
    expect(first.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(first.output_text).toBe('Simulated reply to: Hello there');
    expect(first.status).toBe('completed');
    const next = await client.responses.create({ model: 'dep-b', input: 'And again', previous_response_id: first.id });
    // The chain before it counts as input.
    expect(next.usage!.input_tokens).toBeGreaterThan(first.usage!.total_tokens);
    const err = await azureClient(other).responses.create({ model: 'dep-a', input: 'x', previous_response_id: first.id }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.error).toEqual({ message: `Previous response with id '${first.id}' not found.`, type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' });
  });

  it('retrieves, lists input items, deletes, and answers 404 for an unknown id', async () => {
    const client = azureClient(sim);
    const created = await client.responses.create({ model: 'dep-a', input: [{ role: 'user', content: 'one' }, { role: 'user', content: [{ type: 'input_text', text: 'two' }] }] });
    expect((await client.responses.retrieve(created.id)).output_text).toBe('Simulated reply to: two');
    const items = await client.responses.inputItems.list(created.id, { order: 'asc' });
    expect(items.data.map((i) => (i as { content: { text: string }[] }).content[0].text)).toEqual(['one', 'two']);
    const raw = await fetch(`${sim.url}/openai/v1/responses/${created.id}`, { method: 'DELETE', headers: { 'api-key': AZURE_KEY } });
    expect(await raw.json()).toEqual({ id: created.id, object: 'response.deleted', deleted: true });
    const gone = await client.responses.retrieve(created.id).catch((e) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
    expect(gone.error.message).toBe(`Response with id '${created.id}' not found.`);
  });

  it('streams events with `event:` lines and sequence numbers from 0, ending with response.completed and no [DONE]', async () => {
    const res = await fetch(`${sim.url}/openai/v1/responses`, {
      method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'dep-a', input: 'stream it', stream: true }),
    });
    const text = await res.text();
    expect(text).not.toContain('[DONE]');
    const events = parseEvents(text);
    expect(events.map((e) => e.event).slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(events.at(-1)!.event).toBe('response.completed');
    expect(events.map((e) => e.data.sequence_number)).toEqual(events.map((_, i) => i));
    for (const e of events) expect(e.data.type).toBe(e.event);
    const id = (events[0].data.response as { id: string }).id;
    expect((await azureClient(sim).responses.retrieve(id)).status).toBe('completed');
  });

  it('cancels a background response, not a synchronous one', async () => {
    const client = azureClient(sim);
    const queued = await client.responses.create({ model: 'dep-a', input: 'slow', background: true });
    expect(queued.status).toBe('queued');
    expect((await client.responses.cancel(queued.id)).status).toBe('cancelled');
    expect((await client.responses.cancel(queued.id)).status).toBe('cancelled');
    const sync = await client.responses.create({ model: 'dep-a', input: 'fast' });
    await expect(client.responses.cancel(sync.id)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('serves the dated form on /openai/responses, which needs an api-version', async () => {
    const post = (query: string) => fetch(`${sim.url}/openai/responses${query}`, {
      method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'dep-a', input: 'dated' }),
    });
    expect((await post('?api-version=2025-04-01-preview')).status).toBe(200);
    expect((await post('')).status).toBe(404);
  });

  it('refuses an unknown deployment, an unknown item reference and store:false background work', async () => {
    const client = azureClient(sim);
    const unknown = await client.responses.create({ model: 'nope', input: 'x' }).catch((e) => e);
    expect(unknown.error.code).toBe('model_not_found');
    const reference = await client.responses.create({ model: 'dep-a', input: [{ type: 'item_reference', id: 'msg_0000' }] }).catch((e) => e);
    expect(reference).toBeInstanceOf(OpenAI.BadRequestError);
    expect(reference.error.message).toMatch(/^Item with id 'msg_0000' not found/);
    await expect(client.responses.create({ model: 'dep-a', input: 'x', background: true, store: false })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});
