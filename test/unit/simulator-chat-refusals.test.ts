import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureOpenAISimulator } from '../../src/simulator/server';

/**
 * The simulator's chat completions refuse, over real HTTP and in Azure's body
 * shape, the requests Azure OpenAI refuses: messages without content or with
 * content of the wrong shape, tool results that answer no call and calls left
 * unanswered, values out of range, unknown parameters, and stream_options on a
 * request that does not stream; while the requests the gateway's clients send
 * (tool round trips, images beside text) still get 200. A reply cut by the
 * token limit finishes with "length", whole and streamed.
 */
const KEY = 'sim-chat-refusals-key';
let sim: AzureOpenAISimulator;
beforeAll(async () => {
  sim = new AzureOpenAISimulator({ apiKey: KEY });
  await sim.start();
});
afterAll(async () => sim.close());

const DATED = 'deployments/chat/chat/completions?api-version=2025-04-01-preview';
const V1 = 'v1/chat/completions';

function post(body: Record<string, unknown>, path = DATED): Promise<Response> {
  return fetch(`${sim.url}/openai/${path}`, { method: 'POST', headers: { 'api-key': KEY, 'content-type': 'application/json' }, body: JSON.stringify(path === V1 ? { model: 'chat', ...body } : body) });
}

async function refusal(res: Promise<Response>): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  const answer = await res;
  const text = await answer.text();
  expect(answer.status, text).toBe(400);
  return JSON.parse(text).error;
}

async function ok(res: Promise<Response>): Promise<{ choices: { finish_reason: string; message: { content: string | null } }[]; usage: { completion_tokens: number } }> {
  const answer = await res;
  const text = await answer.text();
  expect(answer.status, text).toBe(200);
  return JSON.parse(text);
}

const user = (content: unknown) => ({ role: 'user', content });
const call = (id: string, name = 'get_time') => ({ id, type: 'function', function: { name, arguments: '{}' } });
const tools = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }];

describe('a message without content, or with content of the wrong shape, is a 400', () => {
  it.each(['user', 'system', 'developer'])('a %s message with no content', async (role) => {
    expect(await refusal(post({ messages: [{ role }] }))).toEqual({ message: "Missing required parameter: 'messages[0].content'.", type: 'invalid_request_error', param: 'messages[0].content', code: 'missing_required_parameter' });
  });

  it('an assistant message with neither content nor tool_calls', async () => {
    expect((await refusal(post({ messages: [user('hi'), { role: 'assistant' }, user('again')] }))).param).toBe('messages[1].content');
  });

  it('a null content, in Azure\'s words', async () => {
    expect(await refusal(post({ messages: [user(null)] }))).toEqual({ message: "Invalid value for 'content': expected a string, got null.", type: 'invalid_request_error', param: 'messages.[0].content', code: null });
  });

  it.each([
    [5, 'an integer'],
    [{ text: 'hi' }, 'an object'],
    [true, 'a boolean'],
  ])('content %j', async (content, got) => {
    expect(await refusal(post({ messages: [user(content)] }))).toEqual({
      message: `Invalid type for 'messages[0].content': expected one of a string or array of objects, but got ${got} instead.`,
      type: 'invalid_request_error',
      param: 'messages[0].content',
      code: 'invalid_type',
    });
  });

  it('an empty content array', async () => {
    expect((await refusal(post({ messages: [user([])] }))).code).toBe('empty_array');
  });

  it('a content part of a type the role does not take', async () => {
    expect(await refusal(post({ messages: [user([{ type: 'text', text: 'look' }, { type: 'foo' }])] }))).toEqual({
      message: "Invalid value: 'foo'. Supported values are: 'text', 'image_url', 'input_audio', and 'file'.",
      type: 'invalid_request_error',
      param: 'messages[0].content[1].type',
      code: 'invalid_value',
    });
    const system = await refusal(post({ messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }, user('hi')] }));
    expect(system).toMatchObject({ message: "Invalid value: 'image_url'. Supported values are: 'text'.", param: 'messages[0].content[0].type' });
  });

  it('a content part without a type, or a text part without text', async () => {
    expect(await refusal(post({ messages: [user([{ text: 'hi' }])] }))).toMatchObject({ message: "Missing required parameter: 'messages[0].content[0].type'.", code: 'missing_required_parameter' });
    expect((await refusal(post({ messages: [user([{ type: 'text' }])] }))).param).toBe('messages[0].content[0].text');
    expect((await refusal(post({ messages: [user([{ type: 'image_url', image_url: {} }])] }))).param).toBe('messages[0].content[0].image_url.url');
  });

  it('while turns the SDK types allow without content are answered: assistant audio by id, an assistant refusal, a function result', async () => {
    await ok(post({ messages: [user('hi'), { role: 'assistant', audio: { id: 'audio_1' } }, user('again')] }));
    await ok(post({ messages: [user('hi'), { role: 'assistant', content: null, refusal: 'I cannot help with that.' }, user('again')] }));
    await ok(post({ messages: [user('hi'), { role: 'function', name: 'get_time', content: null }, { role: 'function', name: 'get_time', content: [{ type: 'text', text: '12:00' }] }] }));
    await ok(post({ messages: [user('hi')], prompt_cache_key: 'k', prompt_cache_retention: '24h' }, V1));
  });

  it('while text and images side by side, and parts in system and assistant messages, are answered', async () => {
    const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } };
    await ok(post({ messages: [user([{ type: 'text', text: 'What is in this image?' }, image])] }));
    await ok(post({ messages: [{ role: 'system', content: [{ type: 'text', text: 'Be brief.' }] }, user('hi'), { role: 'assistant', content: [{ type: 'text', text: 'Hello.' }] }, user('again')] }, V1));
  });
});

describe('tool results must answer the calls before them, and every call must be answered', () => {
  it('a tool message with no assistant tool_calls before it', async () => {
    expect(await refusal(post({ messages: [user('hi'), { role: 'tool', tool_call_id: 'call_1', content: '12:34' }] }))).toEqual({
      message: "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
      type: 'invalid_request_error',
      param: 'messages.[1].role',
      code: null,
    });
  });

  it('a tool message after a finished tool turn and a user message', async () => {
    const messages = [user('time?'), { role: 'assistant', content: null, tool_calls: [call('call_1')] }, { role: 'tool', tool_call_id: 'call_1', content: '12:34' }, user('and now?'), { role: 'tool', tool_call_id: 'call_1', content: '12:35' }];
    expect((await refusal(post({ messages }))).param).toBe('messages.[4].role');
  });

  it('a tool message answering a call the assistant did not make', async () => {
    const messages = [user('time?'), { role: 'assistant', content: null, tool_calls: [call('call_1')] }, { role: 'tool', tool_call_id: 'call_2', content: '12:34' }];
    expect((await refusal(post({ messages }))).message).toBe("Invalid parameter: 'tool_call_id' of 'call_2' not found in 'tool_calls' of previous message.");
  });

  it('a tool message without tool_call_id', async () => {
    const messages = [user('time?'), { role: 'assistant', content: null, tool_calls: [call('call_1')] }, { role: 'tool', content: '12:34' }];
    expect((await refusal(post({ messages }))).message).toBe("Missing required parameter: 'messages[2].tool_call_id'.");
  });

  it('an assistant message whose calls are not all answered', async () => {
    const messages = [user('time?'), { role: 'assistant', content: null, tool_calls: [call('call_a'), call('call_b')] }, { role: 'tool', tool_call_id: 'call_a', content: '12:34' }, user('well?')];
    expect(await refusal(post({ messages }))).toEqual({
      message: "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_b",
      type: 'invalid_request_error',
      param: 'messages.[3].role',
      code: null,
    });
    const last = [user('time?'), { role: 'assistant', content: null, tool_calls: [call('call_a')] }];
    expect((await refusal(post({ messages: last }))).message).toMatch(/did not have response messages: call_a$/);
  });

  it('while a whole round trip, as the SDK\'s runTools sends it, is answered on both forms', async () => {
    for (const path of [DATED, V1]) {
      const first = await ok(post({ messages: [user('What time is it? Use get_time.')], tools }, path));
      expect(first.choices[0].finish_reason).toBe('tool_calls');
      const made = (first.choices[0].message as unknown as { tool_calls: { id: string }[] }).tool_calls;
      const messages = [user('What time is it? Use get_time.'), { ...first.choices[0].message, refusal: null }, ...made.map((c) => ({ role: 'tool', tool_call_id: c.id, content: '12:34' }))];
      const second = await ok(post({ messages, tools }, path));
      expect(second.choices[0].message.content).toBe('Simulated reply using the tool result: 12:34');
    }
    // Two calls answered out of order, then the conversation goes on.
    const parallel = [user('both'), { role: 'assistant', content: null, tool_calls: [call('call_a'), call('call_b')] }, { role: 'tool', tool_call_id: 'call_b', content: '2' }, { role: 'tool', tool_call_id: 'call_a', content: '1' }, { role: 'assistant', content: 'Done.' }, user('thanks')];
    await ok(post({ messages: parallel, tools }));
  });
});

describe('parameters outside Azure\'s reference are a 400', () => {
  it.each([
    [5, "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 5 instead.", 'decimal_above_max_value'],
    [-0.5, "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.", 'decimal_below_min_value'],
    ['hot', "Invalid type for 'temperature': expected a number, but got a string instead.", 'invalid_type'],
  ])('temperature %j', async (temperature, message, code) => {
    expect(await refusal(post({ messages: [user('hi')], temperature }))).toEqual({ message, type: 'invalid_request_error', param: 'temperature', code });
  });

  it('while temperatures from 0 to 2 are answered', async () => {
    for (const temperature of [0, 0.7, 2]) await ok(post({ messages: [user('hi')], temperature }));
  });

  it('an unknown parameter, on a dated api-version and on v1', async () => {
    for (const path of [DATED, V1]) {
      expect(await refusal(post({ messages: [user('hi')], foo_bar: 1 }, path))).toEqual({ message: 'Unrecognized request argument supplied: foo_bar', type: 'invalid_request_error', param: null, code: null });
    }
    expect((await refusal(post({ messages: [user('hi')], topP: 1, frequencyPenalty: 0 }))).message).toBe('Unrecognized request arguments supplied: frequencyPenalty, topP');
  });

  it('while the parameters Azure documents are answered', async () => {
    await ok(post({ messages: [user('hi')], model: 'gpt-4o', top_p: 1, frequency_penalty: 0, presence_penalty: 0, seed: 1, stop: ['x'], user: 'u', logit_bias: {}, max_completion_tokens: 50, parallel_tool_calls: true, tools }));
  });

  it('a boolean given as something else, which a kinder server would read as false', async () => {
    expect(await refusal(post({ messages: [user('hi')], stream: 'yes' }))).toEqual({ message: "Invalid type for 'stream': expected a boolean, but got a string instead.", type: 'invalid_request_error', param: 'stream', code: 'invalid_type' });
    expect((await refusal(post({ messages: [user('hi')], logprobs: 1 }))).message).toBe("Invalid type for 'logprobs': expected a boolean, but got an integer instead.");
  });

  it('stream_options on a request that does not stream', async () => {
    const expected = { message: "The 'stream_options' parameter is only allowed when 'stream' is enabled.", type: 'invalid_request_error', param: 'stream_options', code: null };
    expect(await refusal(post({ messages: [user('hi')], stream_options: { include_usage: true } }))).toEqual(expected);
    expect(await refusal(post({ messages: [user('hi')], stream: false, stream_options: { include_usage: true } }, V1))).toEqual(expected);
    const streamed = await fetch(`${sim.url}/openai/${DATED}`, { method: 'POST', headers: { 'api-key': KEY, 'content-type': 'application/json' }, body: JSON.stringify({ messages: [user('hi')], stream: true, stream_options: { include_usage: true } }) });
    expect(streamed.status).toBe(200);
    await streamed.text();
  });
});

describe('a reply cut by the token limit finishes with "length"', () => {
  const long = 'one two three four five six seven eight nine ten';

  it.each(['max_tokens', 'max_completion_tokens'])('whole, with %s below the reply', async (limit) => {
    const reply = await ok(post({ messages: [user(long)], [limit]: 3 }));
    expect(reply.choices[0].message.content).toBe('Simulated reply to:');
    expect(reply.choices[0].finish_reason).toBe('length');
    expect(reply.usage.completion_tokens).toBe(3);
  });

  it('streamed', async () => {
    const res = await post({ messages: [user(long)], max_tokens: 4, stream: true });
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    const choices = events.flatMap((e) => e.choices as { delta: { content?: string }; finish_reason: string | null }[]);
    expect(choices.map((c) => c.delta.content ?? '').join('')).toBe('Simulated reply to: one');
    expect(choices.filter((c) => c.finish_reason !== null).map((c) => c.finish_reason)).toEqual(['length']);
  });

  it('while a reply that fits, or one padded up to the limit, finishes with "stop"', async () => {
    expect((await ok(post({ messages: [user(long)] }))).choices[0].finish_reason).toBe('stop');
    expect((await ok(post({ messages: [user('hi')], max_tokens: 40 }))).choices[0].finish_reason).toBe('stop');
  });
});
