import http from 'node:http';
import { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { createOpenAI } from '@ai-sdk/openai';
import { ModelMessage, generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { installSimulatorOperations } from '../../src/simulator/operations';
import { TableClient } from '@azure/data-tables';
import { Azurite, startAzurite } from '../support/azurite';
import { AZURE_KEY, Harness, PROXY_KEY, startHarness } from '../support/harness';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile({
  env: (sim) => ({
    MODEL_DEPLOYMENTS: JSON.stringify({
      'gpt-4o-mini': ['chat-a', 'chat-b'],
      dated: [{ deployment: 'dated-dep', endpoint: sim, apiKey: AZURE_KEY, apiVersion: '2025-04-01-preview' }],
    }),
  }),
});

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

/** Posts to the gateway with the proxy key and returns the raw response, its body kept for the secret check. */
const post = (path: string, body: unknown) => suite.raw(path, {
  method: 'POST', headers: { authorization: `Bearer ${PROXY_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
});

describe('the Responses API through the gateway, with the openai SDK', () => {
  it('creates a response on Azure\'s GA v1 form with the deployment as model, and logs its usage', async () => {
    const { data, response } = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'Hello, how are you?' }).withResponse();
    suite.saw(JSON.stringify(data));
    expect(data.output_text).toBe('Simulated reply to: Hello, how are you?');
    expect(data.id).toMatch(/^resp_/);
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toBeTruthy();
    const call = suite.h.sim.calls.at(-1)!;
    expect(call).toMatchObject({ form: 'v1', operation: 'responses', apiVersion: null });
    expect(JSON.parse(call.body.toString()).model).toBe(call.deployment);
    expect(['chat-a', 'chat-b']).toContain(call.deployment);
    const line = suite.h.logger.entries().find((e) => e.requestId === requestId)!;
    expect(line).toMatchObject({ route: 'createResponse', model: 'gpt-4o-mini', status: 200, usage: { prompt_tokens: data.usage!.input_tokens, completion_tokens: data.usage!.output_tokens } });
  });

  it('streams every event as Azure sends it, event lines included, ending with response.completed', async () => {
    const res = await post('/v1/responses', { model: 'gpt-4o-mini', input: 'stream this please', stream: true });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    const events = parseEvents(text);
    expect(events[0].event).toBe('response.created');
    expect(events.at(-1)!.event).toBe('response.completed');
    expect(events.map((e) => e.data.sequence_number)).toEqual(events.map((_, i) => i));
    const deltas = events.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta).join('');
    expect(deltas).toBe('Simulated reply to: stream this please');

    const stream = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'and via the SDK', stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe('response.completed');
  });

  it('a stream Azure breaks off midway ends with an error event after the last one that came, not a silent end', async () => {
    for (const d of ['chat-a', 'chat-b']) suite.h.sim.setBehaviour(d, { mode: 'reset', afterEvents: 6 });
    try {
      const res = await post('/v1/responses', { model: 'gpt-4o-mini', input: 'break off midway please', stream: true });
      const requestId = res.headers.get('x-request-id');
      const events = parseEvents(await res.text());
      expect(events[0].event).toBe('response.created');
      expect(events.at(-1)).toEqual({ event: 'error', data: expect.objectContaining({ type: 'error', code: 'upstream_error', sequence_number: 6 }) });
      expect(events).toHaveLength(7);
      // The request is over for the gateway too: its line is logged, with the error the client saw.
      let line: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && line === undefined; i++) {
        line = suite.h.logger.entries().find((e) => e.requestId === requestId);
        if (line === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      expect(line).toMatchObject({ route: 'createResponse', status: 200, error: 'upstream_error' });
      // Too late to fail over, but the deployment that broke off is skipped for its cooldown, as after a failed try.
      const served = line!.deployment as string;
      expect(suite.h.gateway.balancer.health.get(suite.h.gateway.config.models.get('gpt-4o-mini')!.find((d) => d.label === served)!.id)).toMatchObject({ reason: 'connect' });
    } finally {
      for (const d of ['chat-a', 'chat-b']) suite.h.sim.setBehaviour(d, { mode: 'ok' });
    }
  });

  it('delivers the first event before the simulator has sent the last one', async () => {
    const release = suite.h.sim.holdStreams();
    try {
      const stream = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'real streaming', stream: true });
      const it = stream[Symbol.asyncIterator]();
      const seen: string[] = [];
      while (!seen.includes('response.output_text.delta')) seen.push((await it.next()).value.type);
      expect(seen[0]).toBe('response.created');
      expect(suite.h.sim.calls.at(-1)!.finished).toBe(false);
      release();
      for (let n = await it.next(); !n.done; n = await it.next()) seen.push(n.value.type);
      expect(seen.at(-1)).toBe('response.completed');
    } finally {
      release();
    }
  });

  it('continues a conversation with previous_response_id, then retrieves, lists input items, and deletes', async () => {
    const client = suite.h.client;
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'first turn' });
    const second = await client.responses.create({ model: 'gpt-4o-mini', input: 'second turn', previous_response_id: first.id });
    expect(second.previous_response_id).toBe(first.id);
    expect((await client.responses.retrieve(second.id)).output_text).toBe('Simulated reply to: second turn');
    const items = await client.responses.inputItems.list(second.id);
    expect(items.data).toHaveLength(1);
    await client.responses.delete(second.id);
    const calls = suite.h.sim.calls.slice(-2);
    expect(calls.map((c) => [c.method, c.operation])).toEqual([['GET', `responses/${second.id}/input_items`], ['DELETE', `responses/${second.id}`]]);
    const gone = await client.responses.retrieve(second.id).catch((e) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
    expect(gone.error).toEqual({ message: `Response with id '${second.id}' not found.`, type: 'invalid_request_error', param: null, code: null });
  });

  it('cancels a background response; cancelling a synchronous one is Azure\'s 400', async () => {
    const client = suite.h.client;
    const queued = await client.responses.create({ model: 'gpt-4o-mini', input: 'later', background: true });
    expect(queued.status).toBe('queued');
    expect((await client.responses.cancel(queued.id)).status).toBe('cancelled');
    const sync = await client.responses.create({ model: 'gpt-4o-mini', input: 'now' });
    const err = await client.responses.cancel(sync.id).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toContain('Cannot cancel a synchronous response');
  });

  it('an unknown id is a 404 and an unknown previous_response_id a 400, as Azure answers them, with no deployment cooled down', async () => {
    const client = suite.h.client;
    const cooledBefore = [...suite.h.gateway.balancer.health.entries()];
    const unknown = await client.responses.retrieve('resp_0127001unknown').catch((e) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    // Azure's message names the id as asked, untouched by the scrubbing of resource names.
    expect(unknown.error.message).toBe("Response with id 'resp_0127001unknown' not found.");
    const err = await client.responses.create({ model: 'gpt-4o-mini', input: 'x', previous_response_id: 'resp_unknown' }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.error.code).toBe('previous_response_not_found');
    expect([...suite.h.gateway.balancer.health.entries()]).toEqual(cooledBefore);
  });

  it('an unknown id is still a 404 while other deployments on the same resource cool down', async () => {
    for (const d of ['chat-a', 'chat-b']) suite.h.sim.setBehaviour(d, { mode: 'throttle', retryAfterMs: 400, times: 1 });
    await expect(suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'x' })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    await expect(suite.h.client.responses.retrieve('resp_nowhere')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await new Promise((r) => setTimeout(r, 450));
  });

  it('a deployment naming a dated api-version is called on /openai/responses?api-version=', async () => {
    const created = await suite.h.client.responses.create({ model: 'dated', input: 'dated form' });
    expect(suite.h.sim.calls.at(-1)).toMatchObject({ form: 'dated', operation: 'responses', apiVersion: '2025-04-01-preview', deployment: 'dated-dep' });
    // Retrieved through the deployment that stored it, so in its form too.
    await suite.h.client.responses.retrieve(created.id);
    expect(suite.h.sim.calls.at(-1)).toMatchObject({ form: 'dated', operation: `responses/${created.id}`, apiVersion: '2025-04-01-preview' });
  });

  it('fails over a throttled deployment and turns a content-filter block into OpenAI\'s 400', async () => {
    suite.h.sim.setBehaviour('chat-a', { mode: 'throttle', retryAfterMs: 300, times: 1 });
    suite.h.sim.setBehaviour('chat-b', { mode: 'throttle', retryAfterMs: 300, times: 1 });
    const throttled = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'x' }).catch((e) => e);
    expect(throttled).toBeInstanceOf(OpenAI.RateLimitError);
    await new Promise((r) => setTimeout(r, 350));
    // A blocked request is not retried elsewhere: only one of these two rules is used, so both are cleared after.
    suite.h.sim.setBehaviour('chat-a', { mode: 'block', times: 1 });
    suite.h.sim.setBehaviour('chat-b', { mode: 'block', times: 1 });
    const blocked = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'x' }).catch((e) => e);
    for (const d of ['chat-a', 'chat-b']) suite.h.sim.setBehaviour(d, { mode: 'ok' });
    expect(blocked).toBeInstanceOf(OpenAI.BadRequestError);
    expect(blocked.error.code).toBe('content_filter');
    expect(blocked.message).not.toMatch(/go\.microsoft|ResponsibleAIPolicyViolation/);
  });
});

describe('the Vercel AI SDK, with its default openai(model) (the Responses API)', () => {
  const provider = () => createOpenAI({ baseURL: `${suite.h.url}/v1`, apiKey: PROXY_KEY });

  it('generateText produces the text and the usage', async () => {
    const { text, usage, finishReason } = await generateText({ model: provider()('gpt-4o-mini'), prompt: 'Hello from the AI SDK' });
    expect(text).toBe('Simulated reply to: Hello from the AI SDK');
    expect(finishReason).toBe('stop');
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(suite.h.sim.calls.at(-1)!.operation).toBe('responses');
  });

  it('streamText streams the text and finishes with usage, because the stream ends with response.completed', async () => {
    const result = streamText({ model: provider()('gpt-4o-mini'), prompt: 'Stream from the AI SDK' });
    let text = '';
    for await (const delta of result.textStream) text += delta;
    expect(text).toBe('Simulated reply to: Stream from the AI SDK');
    expect(await result.finishReason).toBe('stop');
    expect((await result.usage).outputTokens).toBeGreaterThan(0);
  });

  it('an agent with a tool: the model calls it, the SDK runs it, and the answer uses its result', async () => {
    const asked: unknown[] = [];
    const weather = tool({
      description: 'The weather in a city',
      inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false }),
      execute: async (input) => {
        asked.push(input);
        return { sky: 'clear' };
      },
    });
    const { text, steps } = await generateText({ model: provider()('gpt-4o-mini'), tools: { weather }, stopWhen: stepCountIs(3), prompt: 'What is the weather in Oslo?' });
    expect(asked).toEqual([{ city: 'Simulated city' }]);
    expect(steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
    expect(text).toBe('Simulated reply using the tool result: {"sky":"clear"}');
  });

  it('a streamed tool call arrives as OpenAI streams it: the call\'s arguments in pieces, then the whole call', async () => {
    const stream = await suite.h.client.responses.create({
      model: 'gpt-4o-mini', stream: true, input: 'weather?',
      tools: [{ type: 'function', name: 'get_weather', strict: false, parameters: { type: 'object', properties: { city: { type: 'string' } } } }],
      tool_choice: { type: 'function', name: 'get_weather' },
    });
    const types: string[] = [];
    let args = '';
    let done: { name?: string; arguments?: string; call_id?: string } | undefined;
    let argumentsDone: unknown;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.function_call_arguments.delta') args += event.delta;
      if (event.type === 'response.output_item.done' && event.item.type === 'function_call') done = event.item;
      if (event.type === 'response.function_call_arguments.done') argumentsDone = event;
    }
    expect(types).toContain('response.function_call_arguments.done');
    expect(types.at(-1)).toBe('response.completed');
    expect(done).toMatchObject({ name: 'get_weather', arguments: '{"city":"Simulated city"}', call_id: expect.stringMatching(/^call_/) });
    expect(argumentsDone).toMatchObject({ name: 'get_weather', arguments: done!.arguments });
    expect(args).toBe(done!.arguments);
    // An output for a call nobody made is refused, as OpenAI refuses it.
    const orphan = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: [{ type: 'function_call_output', call_id: 'call_nobody', output: 'x' }] }).catch((e) => e);
    expect(orphan).toBeInstanceOf(OpenAI.BadRequestError);
    expect(orphan.message).toContain('No tool call found for function call output with call_id call_nobody.');
    // A follow-up that leaves the call unanswered is refused too.
    const called = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'weather?', tools: [{ type: 'function', name: 'get_weather', strict: false, parameters: null }] });
    const unanswered = await suite.h.client.responses.create({ model: 'gpt-4o-mini', previous_response_id: called.id, input: 'never mind' }).catch((e) => e);
    expect(unanswered).toBeInstanceOf(OpenAI.BadRequestError);
    expect(unanswered.message).toContain(`No tool output found for function call ${(called.output[0] as { call_id: string }).call_id}.`);
  });

  it('structured output (text.format json_schema) is JSON that fits the schema', async () => {
    const schema = { type: 'object', properties: { colour: { type: 'string', enum: ['red', 'blue'] }, count: { type: 'integer' } }, required: ['colour', 'count'], additionalProperties: false };
    const res = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'Pick one', text: { format: { type: 'json_schema', name: 'pick', schema, strict: true } } });
    expect(JSON.parse(res.output_text)).toEqual({ colour: 'red', count: expect.any(Number) });
    // As OpenAI refuses them: a schema without its name, and JSON mode when no input message says "json".
    const unnamed = await suite.h.client.responses.create({ model: 'gpt-4o-mini', input: 'Pick one', text: { format: { type: 'json_schema', schema } as never } }).catch((e) => e);
    expect(unnamed.message).toContain("Missing required parameter: 'text.format.name'.");
    const mode = (input: string, instructions?: string) => suite.h.client.responses.create({ model: 'gpt-4o-mini', input, instructions, text: { format: { type: 'json_object' } } });
    const silent = await mode('Pick one', 'Answer in JSON').catch((e) => e);
    expect(silent.message).toContain("Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.");
    expect(JSON.parse((await mode('Pick one, as JSON')).output_text)).toEqual({ reply: expect.any(String) });
  });

  it('a second turn, which refers to the first turn\'s stored items, is answered', async () => {
    const messages: ModelMessage[] = [{ role: 'user', content: 'First question here' }];
    const first = await generateText({ model: provider()('gpt-4o-mini'), messages });
    messages.push(...first.response.messages, { role: 'user', content: 'Second question here' });
    const second = await generateText({ model: provider()('gpt-4o-mini'), messages });
    expect(second.text).toBe('Simulated reply to: Second question here');
    expect(JSON.parse(suite.h.sim.calls.at(-1)!.body.toString()).input).toContainEqual(expect.objectContaining({ type: 'item_reference' }));
  });
});

describe('a named key\'s limits', () => {
  it('count follow-ups and reads of stored responses like any request', async () => {
    const key = 'team-key-with-rpm-3';
    const h = await startHarness({ sharedSimulator: suite.h.sim, env: () => ({ PROXY_KEYS: JSON.stringify([{ name: 'team', key, rpm: 3 }]) }) });
    try {
      const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 });
      const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'one' });
      await client.responses.create({ model: 'gpt-4o-mini', input: 'two', previous_response_id: first.id });
      await client.responses.retrieve(first.id);
      const err = await client.responses.retrieve(first.id).catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect(err.error.code).toBe('rate_limit_exceeded');
    } finally {
      await h.close();
    }
  });
});

describe('a pool spread over two Azure resources', () => {
  let other: AzureOpenAISimulator;
  beforeAll(async () => {
    other = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
    installSimulatorOperations(other);
    await other.start();
  });
  afterAll(async () => other.close());

  it('a gateway that does not know where a response is stored asks each resource until one has it', async () => {
    const h = await startHarness({
      sharedSimulator: suite.h.sim,
      env: (sim) => ({ MODEL_DEPLOYMENTS: JSON.stringify({ spread: [{ deployment: 'res-a', endpoint: sim, apiKey: AZURE_KEY }, { deployment: 'res-b', endpoint: other.url, apiKey: AZURE_KEY }] }) }),
    });
    try {
      const first = await azureClient(other).responses.create({ model: 'res-b', input: 'made on b' });
      const next = await h.client.responses.create({ model: 'spread', input: 'follow up', previous_response_id: first.id });
      expect(next.previous_response_id).toBe(first.id);
      expect((await h.client.responses.retrieve(first.id)).id).toBe(first.id);

      // The AI SDK's second turn names no response, only the first turn's items: they are found too, whichever resource made them.
      const provider = createOpenAI({ baseURL: `${h.url}/v1`, apiKey: PROXY_KEY });
      for (let conversation = 0; conversation < 2; conversation++) {
        const messages: ModelMessage[] = [{ role: 'user', content: `Opening line ${conversation}` }];
        const turn = await generateText({ model: provider('spread'), messages });
        messages.push(...turn.response.messages, { role: 'user', content: `Follow-up line ${conversation}` });
        expect((await generateText({ model: provider('spread'), messages })).text).toBe(`Simulated reply to: Follow-up line ${conversation}`);
      }
    } finally {
      await h.close();
    }
  });
});

describe('affinity: a request that names a stored response reaches the deployment that created it, from any instance', () => {
  let azurite: Azurite;
  let simB: AzureOpenAISimulator;
  let tableNumber = 0;
  const running: Harness[] = [];
  beforeAll(async () => {
    azurite = await startAzurite();
    simB = new AzureOpenAISimulator({ apiKey: AZURE_KEY });
    installSimulatorOperations(simB);
    await simB.start();
  });
  afterAll(async () => {
    await Promise.all(running.splice(0).map((h) => h.close()));
    await simB.close();
    await azurite.stop();
  });

  const simA = () => suite.h.sim;
  /** Creations and other calls on the Responses API, per resource. */
  const responseCalls = (sim: AzureOpenAISimulator, from: number) => sim.calls.slice(from).filter((c) => c.operation.startsWith('responses'));

  /** Gateway instances sharing one fresh table, over a pool with one deployment on each of two resources. */
  async function instances(count: number, pool?: (a: string, b: string) => unknown[], storage = azurite.connectionString): Promise<{ hs: Harness[]; table: TableClient }> {
    const table = `affinity${++tableNumber}`;
    const hs: Harness[] = [];
    for (let i = 0; i < count; i++) {
      const h = await startHarness({
        sharedSimulator: simA(),
        env: (a) => ({
          MODEL_DEPLOYMENTS: JSON.stringify({ spread: pool?.(a, simB.url) ?? [{ deployment: 'res-a', endpoint: a, apiKey: AZURE_KEY }, { deployment: 'res-b', endpoint: simB.url, apiKey: AZURE_KEY }] }),
          BALANCER_STORAGE_CONNECTION: storage,
          BALANCER_TABLE: table,
        }),
      });
      hs.push(h);
      running.push(h);
    }
    return { hs, table: TableClient.fromConnectionString(azurite.connectionString, table, { allowInsecureConnection: true }) };
  }

  it('six follow-ups sent alternately to two instances all reach the creating deployment, with Azure\'s ids, one table write per response and no extra upstream call', async () => {
    const { hs: [one, two] } = await instances(2);
    const [fromA, fromB] = [simA().calls.length, simB.calls.length];
    const first = await one.client.responses.create({ model: 'spread', input: 'start a conversation' });
    const holder = responseCalls(simA(), fromA).length === 1 ? simA() : simB;
    const other = holder === simA() ? simB : simA();
    let previous = first;
    for (let turn = 0; turn < 6; turn++) {
      const via = turn % 2 === 0 ? two : one;
      const next = await via.client.responses.create({ model: 'spread', input: `turn ${turn}`, previous_response_id: previous.id });
      expect(next.previous_response_id).toBe(previous.id);
      previous = next;
    }
    const holderCalls = responseCalls(holder, holder === simA() ? fromA : fromB);
    expect(holderCalls).toHaveLength(7);
    expect(responseCalls(other, other === simA() ? fromA : fromB)).toHaveLength(0);
    // The ids the client saw are the ones Azure made: the holding resource answers for the last one directly.
    expect((await azureClient(holder).responses.retrieve(previous.id)).id).toBe(previous.id);
    // Each follow-up went to an instance that had not seen the response before it: one table read each.
    const shared = (h: Harness) => h.gateway.holders.sharedCalls;
    expect(shared(one).writes + shared(two).writes).toBe(7);
    expect(shared(one).reads + shared(two).reads).toBe(6);

    // New conversations still take turns across the pool.
    const before = [responseCalls(simA(), 0).length, responseCalls(simB, 0).length];
    for (let i = 0; i < 4; i++) await (i % 2 ? one : two).client.responses.create({ model: 'spread', input: `fresh ${i}` });
    expect(responseCalls(simA(), 0).length - before[0]).toBe(2);
    expect(responseCalls(simB, 0).length - before[1]).toBe(2);
  });

  it('a streamed response is on record in the table before its response.created event reaches the client', async () => {
    // Storage that takes its time over every write: the event must still come after the record.
    const slow = await slowWrites(azurite.port, 300);
    const { hs: [one], table } = await instances(1, undefined, azurite.connectionString.replace(`:${azurite.port}/`, `:${slow.port}/`));
    const releases = [simA().holdStreams(), simB.holdStreams()];
    try {
      const stream = await one.client.responses.create({ model: 'spread', input: 'stream and record', stream: true });
      const first = (await stream[Symbol.asyncIterator]().next()).value as { type: string; response: { id: string } };
      expect(first.type).toBe('response.created');
      const entity = await table.getEntity<{ member: string }>(first.response.id, 'holder');
      expect(one.gateway.deployment(entity.member)?.deployment).toMatch(/^res-[ab]$/);
    } finally {
      for (const release of releases) release();
      slow.close();
    }
  });

  it('retrieve, input items, cancel and delete from another instance reach the resource that holds the response', async () => {
    const { hs: [one, two] } = await instances(2);
    const created = await one.client.responses.create({ model: 'spread', input: 'work in the background', background: true });
    const [fromA, fromB] = [simA().calls.length, simB.calls.length];
    expect((await two.client.responses.retrieve(created.id)).id).toBe(created.id);
    expect((await two.client.responses.inputItems.list(created.id)).data).toHaveLength(1);
    expect((await two.client.responses.cancel(created.id)).status).toBe('cancelled');
    await two.client.responses.delete(created.id);
    const calls = [...responseCalls(simA(), fromA), ...responseCalls(simB, fromB)];
    expect(calls.map((c) => c.method)).toEqual(['GET', 'GET', 'POST', 'DELETE']);
  });

  it('when the holding deployment is throttled the client is told so, and no other deployment is asked', async () => {
    const { hs: [one, two] } = await instances(2);
    const first = await one.client.responses.create({ model: 'spread', input: 'hold on' });
    const holderSim = responseCalls(simA(), 0).some((c) => c.status === 200 && c.body.includes('hold on')) ? simA() : simB;
    const holderName = holderSim === simA() ? 'res-a' : 'res-b';
    holderSim.setBehaviour(holderName, { mode: 'throttle', retryAfterSeconds: 3 });
    try {
      const [fromA, fromB] = [simA().calls.length, simB.calls.length];
      for (const via of [two, two]) {
        const err = await via.client.responses.create({ model: 'spread', input: 'next', previous_response_id: first.id }).catch((e) => e);
        expect(err).toBeInstanceOf(OpenAI.RateLimitError);
        expect(err.message).toContain(`Response '${first.id}' is stored on one deployment, which is throttled right now`);
        expect(Number(err.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      // One call found it throttled; the second request knew without calling.
      expect(simA().calls.length - fromA + simB.calls.length - fromB).toBe(1);
    } finally {
      holderSim.setBehaviour(holderName, { mode: 'ok' });
    }
  });

  it('a response stored by a deployment the gateway no longer serves is a clear 404', async () => {
    const { hs: [one] } = await instances(1, (a) => [{ deployment: 'res-a', endpoint: a, apiKey: AZURE_KEY }]);
    const first = await one.client.responses.create({ model: 'spread', input: 'before the change' });
    const [changed] = await (async () => {
      // The same table, read by an instance whose pool has another deployment only.
      const h = await startHarness({
        sharedSimulator: simA(),
        env: () => ({
          MODEL_DEPLOYMENTS: JSON.stringify({ spread: [{ deployment: 'res-b', endpoint: simB.url, apiKey: AZURE_KEY }] }),
          BALANCER_STORAGE_CONNECTION: azurite.connectionString,
          BALANCER_TABLE: `affinity${tableNumber}`,
        }),
      });
      running.push(h);
      return [h];
    })();
    const err = await changed.client.responses.create({ model: 'spread', input: 'after', previous_response_id: first.id }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.error.code).toBe('stored_deployment_removed');
    expect(err.message).toContain('no longer serves');
  });
});

/** A proxy in front of Azurite that holds every write (anything but GET) for `delayMs` before passing it on. */
async function slowWrites(targetPort: number, delayMs: number): Promise<{ port: number; close(): void }> {
  const server = http.createServer((req, res) => {
    setTimeout(() => {
      const upstream = http.request({ host: '127.0.0.1', port: targetPort, path: req.url, method: req.method, headers: req.headers }, (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    }, req.method === 'GET' ? 0 : delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}
