#!/usr/bin/env bash
# The whole-model benchmark: a synthetic model of BitNet b1.58 2B4T's shape (30 layers,
# hidden 2560, FFN 6912, 20 heads / 5 KV heads, vocab 128256, F16 tied embedding; made
# here at bench time by `bitnetc synth`, never committed), compiled for TARGET (default
# host) and measured by `bitnetc bench`: pp128, pp512, tg128 tokens/s with spread,
# compile time, output size, start-up, peak RSS, and the fraction of the decode
# roofline. Prints one JSON object; extra arguments go to `bitnetc bench` (e.g. -t 1).
#
#   bench/bench_2b4t.sh                 # weights as I2_S, bitnet.cpp's semantics
#   TYPE=tq2_0 ARCH=bitnet bench/bench_2b4t.sh -t 1
#   bench/bench_2b4t.sh --head q8       # int8 head (changes numerics)
set -euo pipefail
BITNETC=${BITNETC:-build/bin/bitnetc}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$BITNETC" synth --shape 2b4t --arch "${ARCH:-bitnet-b1.58}" --type "${TYPE:-i2_s}" --embd-type f16 \
  -o "$dir/2b4t.gguf" >&2
"$BITNETC" bench "$dir/2b4t.gguf" --target "${TARGET:-host}" --json "$@"
