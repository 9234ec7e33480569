/**
 * npm run bench:hot-path — the gateway's own work per request, without
 * sockets: chat requests (non-streamed) go through the pipeline, auth, the
 * handler and the balancer to a stand-in upstream client that answers at once
 * from memory, and the time per request is taken in blocks, the variants in
 * turn, so a busy machine slows every variant alike. It prices what a feature
 * adds to the hot path (a named key with limits against an unnamed key), what
 * a streamed answer costs (the simulator's chat events, one upstream read
 * each, through the event filter), and with BENCH_BASELINE=<another built
 * checkout> the same requests there.
 *
 * BENCH_BLOCKS (default 30) blocks of BENCH_BLOCK_REQUESTS (default 2000)
 * requests per variant; the median block counts, the fastest is shown beside it.
 */
import path from 'node:path';
import { Readable } from 'node:stream';

const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 30);
const PER_BLOCK = Number(process.env.BENCH_BLOCK_REQUESTS ?? 2000);
const KEY = 'bench-proxy-key';
const MODELS = { 'gpt-4o-mini': ['chat-a', 'chat-b'] };

/** What the bench needs of a checkout's build: the same few entry points in every version. */
interface Checkout {
  createGateway(env: Record<string, string>, overrides: Record<string, unknown>): unknown;
  serve(route: unknown, req: unknown, gateway: unknown): Promise<{ status: number; body?: unknown }>;
  route: unknown;
  ClientGone: new () => unknown;
}

function load(root: string): Checkout {
  const dist = path.resolve(root, 'dist/src');
  return {
    createGateway: require(path.join(dist, 'bootstrap.js')).createGateway,
    serve: require(path.join(dist, 'gateway/pipeline.js')).serve,
    route: require(path.join(dist, 'routes.js')).routes.chatCompletions,
    ClientGone: require(path.join(dist, 'core/http.js')).ClientGone,
  };
}

/** Every variant sends the same body (streamed or not); only the ones configured for prompt-cache affinity act on its key. */
const QUESTION = { model: 'gpt-4o-mini', prompt_cache_key: 'bench-conversation-42', messages: [{ role: 'user', content: 'Hello, how are you today?' }] };
const REQUEST_BODY = Buffer.from(JSON.stringify(QUESTION));
const STREAM_BODY = Buffer.from(JSON.stringify({ ...QUESTION, stream: true, max_tokens: 20 }));
const ANSWER = Buffer.from(JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'I am well, thank you for asking.' }, finish_reason: 'stop', logprobs: null, content_filter_results: {} }],
  usage: { prompt_tokens: 14, completion_tokens: 9, total_tokens: 23 }, system_fingerprint: 'fp_bench', prompt_filter_results: [],
}));

/** A body stream that hands over its chunks in order, one per read, and ends with the last, as a socket's would. */
function chunksOf(chunks: readonly Buffer[]): Readable {
  let next = 0;
  return new Readable({
    read() {
      this.push(chunks[next++]);
      if (next === chunks.length) this.push(null);
    },
  });
}

/** The answer to a streamed chat request, as Azure sends it when asked for usage, one upstream read per event. */
const EVENTS = (require(path.resolve(__dirname, '../src/simulator/chat.js')).chatChunks as (body: unknown, model: string) => string[])(
  { ...QUESTION, stream: true, max_tokens: 20, stream_options: { include_usage: true } }, 'gpt-4o-mini',
).map((e) => Buffer.from(e));

/** A 200 from memory, its body streamed, written into the reader's stream or read whole, as the real client's reply is. */
function replyOf(headers: Record<string, string>, chunks: readonly Buffer[]) {
  return {
    status: 200,
    headers,
    get body() {
      return chunksOf(chunks);
    },
    whole: () => Promise.resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)),
    discard: () => {},
    into: (sink: NodeJS.WritableStream): void => {
      chunksOf(chunks).pipe(sink);
    },
  };
}

/** Answers every call at once: a stream of events when events were asked for, else a whole JSON answer. */
const upstream = {
  send: (call: { headers: Record<string, unknown> }) => Promise.resolve(call.headers.accept === 'text/event-stream'
    ? replyOf({ 'content-type': 'text/event-stream; charset=utf-8' }, EVENTS)
    : replyOf({ 'content-type': 'application/json', 'content-length': String(ANSWER.length) }, [ANSWER])),
  close: () => {},
};

interface Variant {
  readonly name: string;
  one(): Promise<void>;
}

function variant(name: string, checkout: Checkout, env: Record<string, string>, headers: Record<string, string>, body = REQUEST_BODY): Variant {
  const gateway = checkout.createGateway({ AZURE_OPENAI_ENDPOINT: 'https://bench.invalid', AZURE_OPENAI_API_KEY: 'k', MODEL_DEPLOYMENTS: JSON.stringify(MODELS), ...env }, { upstream });
  const problems = (gateway as { config: { problems: { setting: string; message: string }[] } }).config.problems;
  if (problems.length > 0) throw new Error(`${name}: ${problems.map((p) => `${p.setting}: ${p.message}`).join('; ')}`);
  const header = (n: string) => headers[n];
  return {
    name,
    async one() {
      const req = { method: 'POST', path: '/v1/chat/completions', query: '', params: {}, header, body: chunksOf([body]), gone: new checkout.ClientGone() };
      const res = await checkout.serve(checkout.route, req, gateway);
      if (res.status !== 200) throw new Error(`${name}: status ${res.status}`);
      if (res.body instanceof Readable) await new Promise((r) => res.body instanceof Readable && res.body.on('end', r).resume());
    },
  };
}

async function main(): Promise<void> {
  // The log lines are formatted as usual and dropped here: writing them is not the hot path's work.
  process.stdout.write = (() => true) as typeof process.stdout.write;
  const here = load(path.resolve(__dirname, '../..'));
  const bearer = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
  const variants: Variant[] = [variant('unnamed key', here, { PROXY_API_KEY: KEY }, bearer)];
  variants.push(variant('named key, no limits', here, { PROXY_KEYS: JSON.stringify([{ name: 'team', key: KEY }]) }, bearer));
  variants.push(variant('named key with limits', here, { PROXY_KEYS: JSON.stringify([{ name: 'team', key: KEY, rpm: 1e9, tpm: 1e12 }]) }, bearer));
  const withAffinity = { 'gpt-4o-mini': { deployments: MODELS['gpt-4o-mini'], affinity: 'prompt_cache_key' } };
  variants.push(variant('prompt-cache affinity', here, { PROXY_API_KEY: KEY, MODEL_DEPLOYMENTS: JSON.stringify(withAffinity) }, bearer));
  variants.push(variant(`streamed, ${EVENTS.length} events`, here, { PROXY_API_KEY: KEY }, bearer, STREAM_BODY));
  if (process.env.BENCH_BASELINE) {
    const baseline = load(process.env.BENCH_BASELINE);
    variants.push(variant('baseline, unnamed key', baseline, { PROXY_API_KEY: KEY }, bearer));
    variants.push(variant(`baseline, streamed, ${EVENTS.length} events`, baseline, { PROXY_API_KEY: KEY }, bearer, STREAM_BODY));
  }

  // Warm up: JIT every path.
  for (const v of variants) for (let i = 0; i < 3000; i++) await v.one();
  const blocks = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let b = 0; b < BLOCKS; b++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(b + k) % variants.length];
      // CPU time, not wall time: on a shared machine the process waits for a core, and that wait is not the gateway's.
      const t = process.cpuUsage();
      for (let i = 0; i < PER_BLOCK; i++) await v.one();
      const used = process.cpuUsage(t);
      blocks.get(v.name)!.push((used.user + used.system) / PER_BLOCK);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const first = median(blocks.get(variants[0].name)!);
  const lines = ['| variant | CPU µs per request, median block | fastest block | added over the first |', '|---|---|---|---|'];
  for (const v of variants) {
    const xs = blocks.get(v.name)!;
    lines.push(`| ${v.name} | ${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)} | ${(median(xs) - first).toFixed(1)} |`);
  }
  process.stderr.write(`${lines.join('\n')}\n`);
  process.exit(0);
}

void main();
