// examples/responses.mjs: the Responses API, with a follow-up that continues the stored response.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'Name a colour.' });
console.log(first.output_text);
const second = await client.responses.create({ model: 'gpt-4o-mini', previous_response_id: first.id, input: 'And another one.' });
console.log(second.output_text);
