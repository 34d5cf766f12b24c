#!/usr/bin/env bash
# WebAssembly outputs against native ones, in one run: the bundled TinyStories model and
# a mid-size synthetic model that fits a browser's 4 GB (15 layers, hidden 1280, FFN
# 3584, 10/5 heads, vocab 32000, F16 tied embedding; made here by `bitnetc synth`),
# each compiled for wasm32-simd and wasm32 (run by node, one thread) and for
# x86-64-avx2 on one thread, measured by `bitnetc bench`: pp128 and tg128 tokens/s,
# output size and start-up. Prints one JSON object with every run and each wasm
# target's ratios to x86-64-avx2 (same model, same run). Extra arguments go to
# `bitnetc bench` (e.g. -r 5).
#
#   bench/bench_wasm.sh
set -euo pipefail
BITNETC=${BITNETC:-build/bin/bitnetc}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$BITNETC" synth --shape tiny --arch bitnet-b1.58 --type i2_s --embd-type f16 --embd 1280 --ff 3584 --layers 15 \
  --heads 10 --kv-heads 5 --vocab 32000 --ctx 1024 -o "$dir/mid.gguf" >&2
models=("models/tinystories-bitnet-3m/model.bin" "$dir/mid.gguf")
runs=()
for model in "${models[@]}"; do
  for target in x86-64-avx2 wasm32-simd wasm32; do
    out="$dir/run-${#runs[@]}.json"
    "$BITNETC" bench "$model" --target "$target" -t 1 -p 128 -n 128 --json "$@" > "$out"
    runs+=("$out")
  done
done
# One object: the runs, and per model and wasm target its ratios to x86-64-avx2.
node - "${runs[@]}" <<'JS'
const fs = require("fs");
const runs = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const tps = (r, test) => r.tests.find((t) => t.test === test).median_tps;
const ratios = runs.filter((r) => r.target !== "x86-64-avx2").map((r) => {
  const native = runs.find((n) => n.model === r.model && n.target === "x86-64-avx2");
  return { model: r.model, target: r.target, pp128_ratio: tps(r, "pp128") / tps(native, "pp128"),
           tg128_ratio: tps(r, "tg128") / tps(native, "tg128"), output_bytes: r.output_bytes,
           startup_s: r.startup_s };
});
console.log(JSON.stringify({ runs, ratios }, null, 2));
JS
