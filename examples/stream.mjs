// examples/stream.mjs: a streamed chat, printed as it arrives, with token usage at the end.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

const stream = await client.chat.completions.create({
  model: 'gpt-4-04-14-uplyf',
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: 'user', content: 'Hello' }],
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
  if (chunk.usage) console.log(`\ntokens: ${chunk.usage.total_tokens}`);
}
