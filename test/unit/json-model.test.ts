import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, modelRewriter } from '../../src/bodies/json-model';
import { GatewayError } from '../../src/core/errors';

const rewrite = (text: string, model = 'dep-1') => modelRewriter(Buffer.from(text))(model).toString('utf8');

describe('rewriting a body\'s model in its bytes', () => {
  it('gives what JSON.parse would see with model replaced, every other byte as sent', () => {
    const bodies = [
      '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
      ' {\n  "messages" : [ {"content": "a \\"model\\": \\"x\\" {[" } ] ,\n  "model" :  "gpt-4o" , "n": 2 }',
      '{"temperature":0.5,"model":"a","stop":["}"],"model":"b","x":{"model":"nested"}}',
      '{"mod\\u0065l":"escaped","stream":true}',
      '{"n":-1.5e3,"ok":true,"none":null,"model":"m"}',
    ];
    for (const body of bodies) {
      const out = rewrite(body);
      expect(JSON.parse(out), body).toEqual({ ...JSON.parse(body), model: 'dep-1' });
    }
    expect(rewrite('{"model":"gpt-4o","messages":[ 1 ,2 ]}')).toBe('{"model":"dep-1","messages":[ 1 ,2 ]}');
  });

  it('quotes a deployment name as JSON', () => {
    expect(JSON.parse(rewrite('{"model":"x"}', 'we"ird\\name')).model).toBe('we"ird\\name');
  });

  it('refuses a body nested deeper than the limit, without recursing, however deep', () => {
    const deep = (n: number) => `{"model":"x","input":${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(JSON.parse(rewrite(deep(MAX_JSON_DEPTH - 1))).model).toBe('dep-1');
    for (const n of [MAX_JSON_DEPTH, 100_000]) {
      let err: unknown;
      try {
        rewrite(deep(n));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).status).toBe(400);
      expect((err as GatewayError).code).toBe('json_too_deep');
    }
  });
});
