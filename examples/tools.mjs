// examples/tools.mjs: the model calls a function of yours; runTools sends the result back
// and returns the model's final answer.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL ?? 'http://localhost:7071/v1',
  apiKey: process.env.GATEWAY_KEY ?? 'your-proxy-api-key',
});

function getWeather({ city }) {
  return JSON.stringify({ city, forecast: 'sunny', celsius: 21 });
}

const runner = client.chat.completions.runTools({
  model: 'gpt-4-04-14-uplyf',
  messages: [{ role: 'user', content: 'What is the weather in Paris? Use get_weather.' }],
  tools: [{
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather forecast for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
      function: getWeather,
      parse: JSON.parse,
    },
  }],
});
runner.on('functionToolCall', (call) => console.log(`the model called ${call.name}(${call.arguments})`));
console.log(await runner.finalContent());
