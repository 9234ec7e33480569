// examples/structured.mjs: structured output; the answer is JSON that fits your schema.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

const completion = await client.chat.completions.parse({
  model: 'gpt-4-04-14-uplyf',
  messages: [{ role: 'user', content: 'Extract the event: Alice and Bob meet for lunch on Friday.' }],
  response_format: {
    type: 'json_schema',
    json_schema: {
      name: 'event',
      strict: true,
      schema: {
        type: 'object',
        properties: { name: { type: 'string' }, day: { type: 'string' }, participants: { type: 'array', items: { type: 'string' } } },
        required: ['name', 'day', 'participants'],
        additionalProperties: false,
      },
    },
  },
});
console.log(completion.choices[0].message.parsed);
