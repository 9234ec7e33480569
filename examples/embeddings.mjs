// examples/embeddings.mjs: embeddings for two texts, and how alike they are.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

const { data } = await client.embeddings.create({
  model: 'text-embedding-3-small',
  input: ['The cat sat on the mat.', 'A cat was sitting on a mat.'],
});
const [a, b] = data.map((d) => d.embedding);
const dot = a.reduce((sum, x, i) => sum + x * b[i], 0);
const norm = (v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
console.log(`${a.length} dimensions; cosine similarity ${(dot / (norm(a) * norm(b))).toFixed(3)}`);
