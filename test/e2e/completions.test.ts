import { describe, expect, it } from 'vitest';
import { harnessForFile } from '../support/suite';

const suite = harnessForFile();

describe('legacy completions', () => {
  it('serves legacy completions, whole and streamed', async () => {
    const whole = await suite.h.client.completions.create({ model: 'gpt-35-turbo-instruct', prompt: 'Say this is a test' });
    expect(whole.choices[0].text).toBe('Simulated reply to: Say this is a test');
    const stream = await suite.h.client.completions.create({ model: 'gpt-35-turbo-instruct', prompt: 'stream it', stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0].text;
    expect(text).toBe('Simulated reply to: stream it');
  });
});
