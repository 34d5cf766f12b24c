// The serving benchmark's client (bench_serve.sh runs it): at each concurrency level,
// that many streams each send ROUNDS streamed /v1/completions requests one after the
// other (a prompt of PROMPT_TOKENS token ids, distinct per request so no server can
// reuse a cached prefix; MAX_TOKENS generated, EOS ignored, greedy) and the level is
// timed from the first request sent to the last token received. Prints one JSON object.
// Works against any OpenAI-compatible server that takes token-id prompts and
// llama-server's ignore_eos (llama-server does; OpenAI's own API does not).
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8080 [--streams 1,2,4,8]
//        [--prompt-tokens 64] [--max-tokens 128] [--rounds 1] [--vocab 20000]
//        [--timeout 600]

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const url = (args.url ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const levels = (args.streams ?? '1,2,4,8').split(',').map(Number);
const promptTokens = Number(args['prompt-tokens'] ?? 64);
const maxTokens = Number(args['max-tokens'] ?? 128);
const rounds = Number(args.rounds ?? 1);
const vocab = Number(args.vocab ?? 20000);   // prompt ids are drawn below this (and above 100)
const deadline = Date.now() + 1000 * Number(args.timeout ?? 600);

// A different prompt for every request (a small LCG: the same run to run).
function prompt(level, stream, round) {
  let x = (level * 1000003 + stream * 7919 + round * 104729 + 12345) >>> 0;
  const ids = [];
  for (let i = 0; i < promptTokens; ++i) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    ids.push(100 + (x % (vocab - 100)));
  }
  return ids;
}

// One streamed request: when its first text came, when it ended, and its token count.
async function request(ids) {
  const sent = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${process.env.API_KEY ?? 'none'}` },
    body: JSON.stringify({ model: 'bench', prompt: ids, max_tokens: maxTokens, temperature: 0, ignore_eos: true,
                           stream: true, stream_options: { include_usage: true } }),
    signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = null, chunks = 0, usage = null, buffered = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffered += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices?.length && chunk.choices[0].text) {
        if (first === null) first = performance.now();
        ++chunks;
      }
    }
  }
  const done = performance.now();
  return { ttft: ((first ?? done) - sent) / 1000, decodeSeconds: (done - (first ?? done)) / 1000,
           tokens: usage?.completion_tokens ?? chunks, promptTokens: usage?.prompt_tokens ?? ids.length };
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const round3 = (x) => Math.round(x * 1000) / 1000;

const results = [];
for (const n of levels) {
  const start = performance.now();
  const perRequest = (await Promise.all(Array.from({ length: n }, async (_, s) => {
    const mine = [];
    for (let r = 0; r < rounds; ++r) mine.push(await request(prompt(n, s, r)));
    return mine;
  }))).flat();
  const seconds = (performance.now() - start) / 1000;
  const tokens = perRequest.reduce((a, r) => a + r.tokens, 0);
  const ttfts = perRequest.map((r) => r.ttft);
  // A stream's own decode rate: the tokens after its first, over the time after it.
  const streamRates = perRequest.filter((r) => r.decodeSeconds > 0).map((r) => (r.tokens - 1) / r.decodeSeconds);
  results.push({
    streams: n, requests: perRequest.length, seconds: round3(seconds), generated_tokens: tokens,
    prompt_tokens: perRequest.reduce((a, r) => a + r.promptTokens, 0),
    aggregate_tokens_per_s: round3(tokens / seconds),
    per_stream_decode_tokens_per_s_mean: round3(streamRates.reduce((a, x) => a + x, 0) / Math.max(1, streamRates.length)),
    ttft_s_p50: round3(percentile(ttfts, 50)), ttft_s_p99: round3(percentile(ttfts, 99)),
  });
}
const one = results.find((r) => r.streams === 1);
for (const r of results) if (one) r.aggregate_vs_one_stream = round3(r.aggregate_tokens_per_s / one.aggregate_tokens_per_s);
console.log(JSON.stringify({ url, prompt_tokens: promptTokens, max_tokens: maxTokens, rounds, levels: results }, null, 1));
