// The JavaScript API of a WebAssembly output (runtime_stub/wasm/loader.mjs), checked
// under node by tests/test_wasm.cpp: node api_check.mjs CONFIG_JSON, where the config
// names two compiles of one model (`embedded`, and `external` with --weights=external),
// a weights file of another model (`wrongWeights`), and the interpreter's greedy
// tokens for `prompt` (`tokens`, `n` of them). Prints one line per failed check and
// exits 1 if any failed.
import assert from "node:assert/strict";

const config = JSON.parse(process.argv[2]);
let failed = 0;
async function check(name, f) {
  try {
    await f();
  } catch (e) {
    ++failed;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}
async function rejects(promiseOrFn, code, pattern) {
  let error = null;
  try {
    await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof Error, `expected an Error (${code}), got ${error}`);
  assert.equal(error.code, code, `code of "${error.message}"`);
  assert.match(error.message, pattern);
}

const greedy = { maxTokens: config.n, temperature: 0 };
const { load } = await import(config.embedded);
const model = await load();

await check("info", () => {
  assert.equal(model.info.target, config.target);
  assert.equal(typeof model.info.n_ctx, "number");
  assert.equal(model.info.external_weights, false);
  assert.ok(model.memoryBytes > 0);
});

await check("generate gives the interpreter's greedy tokens", async () => {
  const r = await model.generate(config.prompt, greedy);
  assert.deepEqual(r.tokens, config.tokens);
  assert.equal(r.finishReason, config.tokens.length < config.n ? "stop" : "length");
  assert.equal(typeof r.text, "string");
  assert.deepEqual(r.promptTokens, await model.tokenize(config.prompt));
  assert.equal(await model.detokenize(r.tokens), r.text);
});

await check("stream gives generate's text piece by piece", async () => {
  const whole = (await model.generate(config.prompt, greedy)).text;
  const pieces = [];
  for await (const piece of model.stream(config.prompt, greedy)) pieces.push(piece);
  assert.ok(pieces.length > 1);
  assert.equal(pieces.join(""), whole);
});

await check("a seed gives the same sample twice, and stop strings cut", async () => {
  const opts = { maxTokens: config.n, temperature: 0.9, seed: 7 };
  const a = await model.generate(config.prompt, opts), b = await model.generate(config.prompt, opts);
  assert.deepEqual(a.tokens, b.tokens);
  const whole = (await model.generate(config.prompt, greedy)).text;
  const stop = whole.slice(Math.floor(whole.length / 2), Math.floor(whole.length / 2) + 3);
  const cut = await model.generate(config.prompt, { ...greedy, stop: [stop] });
  assert.equal(cut.text, whole.slice(0, whole.indexOf(stop)));
  assert.equal(cut.finishReason, "stop");
});

await check("lookup decoding changes no token", async () => {
  const drafted = await model.generate(config.prompt, { ...greedy, lookup: 4 });
  assert.deepEqual(drafted.tokens, config.tokens);
  assert.ok(drafted.timings.accepted <= drafted.timings.drafted);
  const opts = { maxTokens: config.n, temperature: 0.9, seed: 7, repeatPenalty: 1.1 };
  const a = await model.generate(config.prompt, opts), b = await model.generate(config.prompt, { ...opts, lookup: 8 });
  assert.deepEqual(b.tokens, a.tokens);
  await rejects(() => model.generate(config.prompt, { lookup: 65 }), "invalid_argument", /options\.lookup/);
});

await check("an AbortSignal ends a stream", async () => {
  const controller = new AbortController();
  const pieces = [];
  let error = null;
  try {
    for await (const piece of model.stream(config.prompt, { ...greedy, signal: controller.signal })) {
      pieces.push(piece);
      if (pieces.length === 2) controller.abort();
    }
  } catch (e) {
    error = e;
  }
  assert.equal(error && error.name, "AbortError");
  assert.equal(pieces.length, 2);
  assert.deepEqual((await model.generate(config.prompt, greedy)).tokens, config.tokens);
});

await check("bad options are errors naming the field", async () => {
  await rejects(() => model.generate(config.prompt, { temperature: NaN }), "invalid_argument", /options\.temperature/);
  await rejects(() => model.generate(config.prompt, { topP: -1 }), "invalid_argument", /options\.topP/);
  await rejects(() => model.generate(config.prompt, { seed: 1.5 }), "invalid_argument", /options\.seed/);
  await rejects(() => model.generate(config.prompt, { maxTokens: -2 }), "invalid_argument", /options\.maxTokens/);
});

await check("a lone surrogate is an error, and the model goes on", async () => {
  await rejects(() => model.generate("Once \uD800 upon", greedy), "prompt", /lone UTF-16 surrogate/);
  await rejects(() => model.tokenize("\uDC00"), "prompt", /lone UTF-16 surrogate/);
  assert.deepEqual((await model.generate(config.prompt, greedy)).tokens, config.tokens);
});

await check("a prompt over the context is the runtime's error, and the module is usable after", async () => {
  const long = config.prompt + " and then".repeat(model.info.n_ctx);
  await rejects(() => model.generate(long, greedy), "prompt", /context/);
  assert.deepEqual((await model.generate(config.prompt, greedy)).tokens, config.tokens);
  await rejects(() => model.detokenize([1 << 30]), "invalid_argument", /not in the vocabulary/);
  assert.deepEqual((await model.generate(config.prompt, greedy)).tokens, config.tokens);
});

await check("a memory cap too small is an error, at load or when a generation needs more", async () => {
  let needs = 0;
  await rejects(async () => {
    try {
      await load({ maxMemoryMB: 1 });
    } catch (e) {
      needs = Number(/needs (\d+) MB/.exec(e.message)[1]);
      throw e;
    }
  }, "out_of_memory", /maxMemoryMB 1: the module needs \d+ MB to start/);
  const small = await load({ maxMemoryMB: needs + 1 });  // starts, but holds no KV cache
  await rejects(() => small.generate(config.prompt, greedy), "out_of_memory", /memory cap is \d+ MB/);
  assert.deepEqual(await small.tokenize(config.prompt), await model.tokenize(config.prompt));
});

await check("free() ends the model", async () => {
  const m = await load();
  m.free();
  await rejects(() => m.generate(config.prompt, greedy), "invalid_argument", /freed/);
});

await check("external weights: from a path, from bytes, and a wrong file", async () => {
  const external = await import(config.external);
  const fromFile = await external.load();
  assert.equal(fromFile.info.external_weights, true);
  assert.deepEqual((await fromFile.generate(config.prompt, greedy)).tokens, config.tokens);
  const fs = await import("node:fs");
  const bytes = fs.readFileSync(config.externalWeights);
  const fromBytes = await external.load({ weights: new Uint8Array(bytes) });
  assert.deepEqual((await fromBytes.generate(config.prompt, greedy)).tokens, config.tokens);
  await rejects(() => external.load({ weights: config.wrongWeights }), "runtime", /is not the weights file of this model/);
  await rejects(() => external.load({ weights: "/nonexistent/model.weights" }), "io", /cannot read/);
  await rejects(() => load({ weights: config.externalWeights }), "invalid_argument", /holds its weights itself/);
});

if (failed) {
  console.log(`${failed} check(s) failed`);
  process.exit(1);
}
console.log("all checks passed");
