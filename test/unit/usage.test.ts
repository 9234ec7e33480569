import { describe, expect, it } from 'vitest';
import { pickCounts, usageOfBody } from '../../src/bodies/usage';

/** What a reader that parses the whole answer would count. */
function parsed(body: string): ReturnType<typeof pickCounts> {
  return pickCounts((JSON.parse(body) as { usage?: Record<string, unknown> }).usage);
}

function counted(body: string): ReturnType<typeof pickCounts> {
  return usageOfBody(Buffer.from(body));
}

describe('usageOfBody: the token counts of a whole answer', () => {
  it('reads a chat answer, its details skipped', () => {
    const body = JSON.stringify({
      id: 'chatcmpl-1',
      choices: [{ message: { role: 'assistant', content: 'the "usage" of a word: {"prompt_tokens": 999}' } }],
      usage: { prompt_tokens: 12, completion_tokens_details: { reasoning_tokens: 3, accepted_prediction_tokens: 0 }, completion_tokens: 8, prompt_tokens_details: { cached_tokens: 5, audio_tokens: 0 }, total_tokens: 20 },
    });
    expect(counted(body)).toEqual({ prompt_tokens: 12, completion_tokens: 8, total_tokens: 20 });
  });

  it('reads the Responses API names as the chat ones', () => {
    const body = JSON.stringify({ id: 'resp_1', output: [], usage: { input_tokens: 7, input_tokens_details: { cached_tokens: 0 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 10 } });
    expect(counted(body)).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it('reads pretty-printed JSON', () => {
    const body = JSON.stringify({ object: 'list', usage: { prompt_tokens: 4, total_tokens: 4 } }, null, 2).replace(/\n/g, '\r\n\t');
    expect(counted(body)).toEqual({ prompt_tokens: 4, completion_tokens: undefined, total_tokens: 4 });
  });

  it('counts nothing for an answer without usage, with usage null, or with counts that are not numbers', () => {
    expect(counted('{"data":[]}')).toBeUndefined();
    expect(counted('{"usage":null}')).toBeUndefined();
    expect(counted('{"usage":{"prompt_tokens":"12","total_tokens":null}}')).toBeUndefined();
    expect(counted('{"usage":{}}')).toBeUndefined();
  });

  it('keeps the last of a repeated count, as a JSON parser does', () => {
    for (const body of ['{"usage":{"prompt_tokens":1,"prompt_tokens":2,"total_tokens":3}}', '{"usage":{"prompt_tokens":1,"total_tokens":3,"prompt_tokens":"x"}}']) {
      expect(counted(body)).toEqual(parsed(body));
    }
  });

  it('gives what a parser gives for fractions, exponents, escapes and huge numbers', () => {
    for (const body of [
      '{"usage":{"prompt_tokens":1.5,"total_tokens":2e3}}',
      '{"usage":{"prompt\\u005ftokens":4,"total_tokens":9}}',
      '{"usage":{"prompt_tokens":12345678901234567890,"total_tokens":-3}}',
      '{"usage":{"note":"a \\"quoted\\" } brace","prompt_tokens":6,"total_tokens":0}}',
      '{"usage":{"k\\"ey":"} {","prompt_tokens":3,"total_tokens":3}}',
      '{"usage":{"prompt_tokens":0,"total_tokens":0,"tags":["a",{"b":[1,2,{"c":"}"}]}],"flag":true,"none":null}}',
    ]) {
      expect(counted(body), body).toEqual(parsed(body));
    }
  });

  it('agrees with a parser on generated usage objects', () => {
    let seed = 17;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
    const keys = ['prompt_tokens', 'completion_tokens', 'total_tokens', 'input_tokens', 'output_tokens', 'cached_tokens', 'x"y', 'é'];
    const value = (depth: number): unknown => {
      const kind = pick(depth > 2 ? ['n', 's', 'l'] : ['n', 'n', 'n', 's', 'l', 'o', 'a']);
      if (kind === 'n') return pick([0, 1, 42, 1_000_000, -5, 2.5]);
      if (kind === 's') return pick(['', 'plain', 'with "quotes" and } { ] [', 'back\\slash', 'ünïcode ✓']);
      if (kind === 'l') return pick([true, false, null]);
      if (kind === 'a') return Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, () => [pick(keys), value(depth + 1)]));
    };
    for (let n = 0; n < 2000; n++) {
      const fields = Array.from({ length: Math.floor(random() * 6) }, () => `${JSON.stringify(pick(keys))}${pick(['', ' '])}:${pick(['', ' '])}${JSON.stringify(value(0))}`);
      const body = `{"id":"x","usage"${pick(['', ' '])}:${pick(['', '\n'])}{${fields.join(pick([',', ', ', ',\n']))}}}`;
      expect(counted(body), body).toEqual(parsed(body));
    }
  });
});
