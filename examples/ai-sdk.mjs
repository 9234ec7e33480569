// examples/ai-sdk.mjs: the Vercel AI SDK's default openai(model), which speaks the Responses API, streamed.
import { createOpenAI } from '@ai-sdk/openai';
import { streamText } from 'ai';

const openai = createOpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

const result = streamText({ model: openai('gpt-4o-mini'), prompt: 'Write a haiku about gateways.' });
for await (const text of result.textStream) process.stdout.write(text);
console.log(`\ntokens: ${(await result.usage).totalTokens}`);
