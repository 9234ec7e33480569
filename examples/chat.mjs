// examples/chat.mjs: the original design's chat example through the official openai SDK.
// Run: node examples/chat.mjs (GATEWAY_URL and GATEWAY_KEY point it elsewhere).
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

const completion = await client.chat.completions.create({
  model: 'gpt-4-04-14-uplyf',
  messages: [{ role: 'user', content: 'Hello, how are you?' }],
});
console.log(completion.choices[0].message.content);
console.log(`tokens: ${completion.usage?.total_tokens}`);
