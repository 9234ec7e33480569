import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { AZURE_KEY } from '../support/harness';
import { harnessForFile } from '../support/suite';
import { AzureOpenAISimulator } from '../../src/simulator/server';
import { startLocalHost } from '../../src/local/start';

const suite = harnessForFile();
const chat = (body: Record<string, unknown>) => suite.h.client.chat.completions.create({ model: 'gpt-4o-mini', ...body } as never) as Promise<OpenAI.Chat.ChatCompletion>;
const refused = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a 400'); }, (e) => e as InstanceType<typeof OpenAI.APIError>);

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false },
    strict: true,
  },
};
const clock = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } };

describe('the simulator refuses what Azure refuses, and the gateway passes the refusal on', () => {
  it.each([
    ['a chat without messages', {}, 'messages', 'missing_required_parameter', /Missing required parameter: 'messages'/],
    ['a chat with an empty messages array', { messages: [] }, 'messages', 'empty_array', /empty array/],
    ['a message with an unknown role', { messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role', 'invalid_value', /Supported values/],
    ['n above 128', { messages: [{ role: 'user', content: 'x' }], n: 129 }, 'n', 'integer_above_max_value', /<= 128/],
    ['top_logprobs without logprobs', { messages: [{ role: 'user', content: 'x' }], top_logprobs: 3 }, 'top_logprobs', 'invalid_value', /logprobs/],
    ['tool_choice without tools', { messages: [{ role: 'user', content: 'x' }], tool_choice: 'auto' }, 'tool_choice', null, /only allowed when 'tools'/],
    ['JSON mode without the word JSON in the messages', { messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } }, 'messages', null, /must contain the word 'json'/],
    ['a strict schema that allows extra properties', { messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } } } }, 'response_format', null, /'additionalProperties' is required to be supplied and to be false/],
  ])('%s is a 400 naming the parameter', async (_what, body, param, code, message) => {
    const err = await refused(chat(body));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe(param);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('embeddings on a chat deployment, and chat on an embeddings deployment, are Azure\'s OperationNotSupported', async () => {
    const embed = await refused(suite.h.client.embeddings.create({ model: 'gpt-4o-mini', input: 'hello' }));
    expect(embed.status).toBe(400);
    expect(embed.code).toBe('OperationNotSupported');
    expect(embed.message).toMatch(/The embeddings operation does not work with the specified model, gpt-4o\./);
    const chatOnEmbed = await refused(suite.h.client.chat.completions.create({ model: 'text-embedding-3-small', messages: [{ role: 'user', content: 'x' }] }));
    expect(chatOnEmbed.message).toMatch(/The chatCompletion operation does not work with the specified model, text-embedding-3-small/);
    const completionOnChat = await refused(suite.h.client.completions.create({ model: 'gpt-4o-mini', prompt: 'x' }));
    expect(completionOnChat.message).toMatch(/The completion operation does not work/);
  });

  it('answers in Azure\'s own shapes on its own wire (no type or param on OperationNotSupported)', async () => {
    const res = await fetch(`${suite.h.simUrl}/openai/deployments/chat-a/embeddings?api-version=2024-10-21`, { method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: '{"input":"x"}' });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: 'OperationNotSupported', message: expect.stringContaining('https://go.microsoft.com/fwlink/?linkid=2197993') } });
    const noInput = await fetch(`${suite.h.simUrl}/openai/deployments/embed/embeddings?api-version=2024-10-21`, { method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: '{}' });
    expect((await noInput.json()).error).toEqual({ message: "Missing required parameter: 'input'.", type: 'invalid_request_error', param: 'input', code: 'missing_required_parameter' });
  });
});

describe('what a chat model can do, whole and streamed, through the gateway', () => {
  it('calls the tool the user names, with arguments that fit its schema, and finishes with tool_calls', async () => {
    const reply = await chat({ messages: [{ role: 'user', content: 'What does get_weather say for Paris?' }], tools: [clock, weather] });
    const choice = reply.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    const call = choice.message.tool_calls![0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_/);
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: expect.any(String), unit: 'celsius' });
  });

  it('runs a whole tool loop with the SDK\'s runTools, streamed and not', async () => {
    for (const stream of [false, true]) {
      const seen: unknown[] = [];
      const runner = suite.h.client.chat.completions.runTools({
        model: 'gpt-4o-mini',
        stream,
        messages: [{ role: 'user', content: 'What time is it? Use get_time.' }],
        tools: [{ type: 'function', function: { name: 'get_time', parameters: clock.function.parameters, parse: JSON.parse, function: (args: unknown) => { seen.push(args); return '12:34'; } } }],
      } as never) as unknown as { finalContent(): Promise<string | null> };
      const text = await runner.finalContent();
      expect(seen).toEqual([{ zone: 'Simulated zone' }]);
      expect(text).toBe('Simulated reply using the tool result: 12:34');
    }
  });

  it('honours tool_choice: a named function, or none', async () => {
    const named = await chat({ messages: [{ role: 'user', content: 'anything' }], tools: [clock, weather], tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    expect((named.choices[0].message.tool_calls![0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall).function.name).toBe('get_weather');
    const none = await chat({ messages: [{ role: 'user', content: 'get_weather please' }], tools: [weather], tool_choice: 'none' });
    expect(none.choices[0].message.tool_calls).toBeUndefined();
    expect(none.choices[0].finish_reason).toBe('stop');
  });

  it('streams tool calls in pieces that the SDK puts back together', async () => {
    const stream = suite.h.client.chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'get_weather and get_time' }], tools: [clock, weather] });
    const final = await stream.finalChatCompletion();
    const calls = final.choices[0].message.tool_calls!.map((c) => (c as OpenAI.Chat.ChatCompletionMessageFunctionToolCall).function);
    expect(calls.map((c) => c.name)).toEqual(['get_time', 'get_weather']);
    expect(JSON.parse(calls[1].arguments)).toEqual({ city: 'Simulated city', unit: 'celsius' });
  });

  it('gives n choices, whole and streamed, with usage counting them all', async () => {
    const whole = await chat({ messages: [{ role: 'user', content: 'three ways' }], n: 3 });
    expect(whole.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(whole.choices.map((c) => c.message.content)).size).toBe(3);
    const chunks = await suite.h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'three ways' }], n: 3, stream: true, stream_options: { include_usage: true } });
    const texts = ['', '', ''];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of chunks) {
      for (const choice of c.choices) texts[choice.index] += choice.delta.content ?? '';
      usage = c.usage ?? usage;
    }
    expect(texts).toEqual(whole.choices.map((c) => c.message.content));
    expect(usage!.completion_tokens).toBe(whole.usage!.completion_tokens);
  });

  it('returns token log probabilities with top_logprobs alternatives, whole and streamed', async () => {
    const whole = await chat({ messages: [{ role: 'user', content: 'say hi' }], logprobs: true, top_logprobs: 2 });
    const content = whole.choices[0].logprobs!.content!;
    expect(content.map((t) => t.token).join('')).toBe(whole.choices[0].message.content);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs).toHaveLength(2);
      expect(t.top_logprobs[0].token).toBe(t.token);
      expect(Buffer.from(t.bytes!).toString()).toBe(t.token);
    }
    const stream = await suite.h.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'say hi' }], logprobs: true, stream: true });
    const streamed: string[] = [];
    for await (const c of stream) for (const t of c.choices[0]?.logprobs?.content ?? []) streamed.push(t.token);
    expect(streamed).toEqual(content.map((t) => t.token));
  });

  it('answers JSON mode with a JSON object, and json_schema with JSON the SDK parses into the schema\'s shape', async () => {
    const mode = await chat({ messages: [{ role: 'user', content: 'Answer in JSON.' }], response_format: { type: 'json_object' } });
    expect(JSON.parse(mode.choices[0].message.content!)).toEqual({ reply: expect.stringContaining('Answer in JSON.') });
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string' }, age: { type: 'integer', minimum: 18 }, tags: { type: 'array', items: { type: 'string' } },
        address: { anyOf: [{ $ref: '#/$defs/address' }, { type: 'null' }] },
      },
      required: ['name', 'age', 'tags', 'address'],
      additionalProperties: false,
      $defs: { address: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } },
    };
    const expected = { name: 'Simulated name', age: 18, tags: ['Simulated tags'], address: { city: 'Simulated city' } };
    const parsed = await suite.h.client.chat.completions.parse({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a person' }], response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } } });
    expect(parsed.choices[0].message.parsed).toEqual(expected);
    const stream = suite.h.client.chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a person' }], response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } } });
    expect((await stream.finalChatCompletion()).choices[0].message.parsed).toEqual(expected);
  });
});

describe('the simulator\'s control surface', () => {
  it('is off unless asked for: npm start\'s simulator answers /_simulator/ paths as Azure answers an unknown path', async () => {
    const host = await startLocalHost({ env: {}, port: 0 });
    try {
      const sim = host.simulator!;
      for (const path of ['/_simulator/calls', '/_simulator/reset']) {
        const res = await fetch(`${sim.url}${path}`, { method: 'POST' });
        expect(res.status).toBe(404);
        expect(await res.json()).toEqual({ error: { code: '404', message: 'Resource not found' } });
      }
    } finally {
      await host.close();
    }
  });

  it('when asked for, serves loopback clients: a deployment can be made to throttle from another process', async () => {
    const sim = new AzureOpenAISimulator({ apiKey: AZURE_KEY, control: true });
    await sim.start();
    try {
      const set = await fetch(`${sim.url}/_simulator/deployments/chat-a/behaviour`, { method: 'POST', body: JSON.stringify({ mode: 'throttle', retryAfterSeconds: 3, times: 1 }) });
      expect(set.status).toBe(204);
      const res = await fetch(`${sim.url}/openai/deployments/chat-a/chat/completions?api-version=2024-10-21`, { method: 'POST', headers: { 'api-key': AZURE_KEY, 'content-type': 'application/json' }, body: '{"messages":[{"role":"user","content":"x"}]}' });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('3');
    } finally {
      await sim.close();
    }
  });
});
