// examples/azure-client.mjs: code written for Azure OpenAI, the AzureOpenAI client, with the gateway
// as its endpoint and one of the gateway's models as its deployment.
import { AzureOpenAI } from 'openai';

const client = new AzureOpenAI({
  endpoint: (process.env.GATEWAY_URL ?? 'http://localhost:7071/v1').replace(/\/v1$/, ''),
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
  apiVersion: '2025-04-01-preview',
  deployment: 'gpt-4o-mini',
});

const completion = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Hello from an Azure client' }],
});
console.log(completion.choices[0].message.content);
