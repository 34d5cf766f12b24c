#!/usr/bin/env bash
# The CUDA device tests, for a machine with an NVIDIA GPU and its driver (CI has none;
# there tests/test_cuda.cpp runs the same outputs on a stand-in driver). One command:
#
#   scripts/test-cuda-device.sh            # target from nvidia-smi's compute capability
#   TARGET=cuda-sm90 scripts/test-cuda-device.sh
#
# Builds bitnetc if needed, then for the target: `bitnetc verify` (greedy tokens and
# top logits against the reference interpreter, which the kernels match bit for bit)
# on every golden model, --head=q8's tokens against the CPU q8 output's, sampling with a
# repetition penalty and a long prompt against `bitnetc run`, and
# bench/bench_2b4t.sh (decode and prefill tokens/s and the fraction of the GPU's
# measured read bandwidth) and --profile (each decode launch's time) on the 2B4T-shape
# synthetic model.
# Exits non-zero when any check fails; the benchmark's JSON goes to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
BITNETC=${BITNETC:-build/bin/bitnetc}
SHARED=${SHARED:-../shared}
if [ ! -x "$BITNETC" ]; then
  cmake --preset release && cmake --build --preset release --target bitnetc
fi
if [ -z "${TARGET:-}" ]; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
  # The newest target whose cubin runs here (same major, lower minor) or, beyond sm_90,
  # the sm_90 PTX, which the driver compiles for the GPU.
  case "$cc" in
    80|87) TARGET=cuda-sm80 ;;
    86) TARGET=cuda-sm86 ;;
    89) TARGET=cuda-sm89 ;;
    *) if [ "$cc" -ge 90 ]; then TARGET=cuda-sm90; else echo "compute capability $cc: no CUDA target (sm_80 or newer)" >&2; exit 1; fi ;;
  esac
fi
echo "target $TARGET" >&2
G="$SHARED/golden"
status=0
for model in "$SHARED/models/tinystories-bitnet-3m/model.bin" \
             "$G/gguf/synth-b158/synth-b158-tq2_0.gguf" "$G/gguf/synth-b158/synth-b158-tq1_0.gguf" \
             "$G/hf-bitnet-tiny/packed" "$G/hf-bitnet-tiny/bf16"; do
  echo "verify $model" >&2
  "$BITNETC" verify "$model" --target="$TARGET" -n 64 >&2 || status=1
done
# --head=q8 has no reference in the interpreter: its device tokens must be the CPU q8
# output's (greedy, and seeded sampling from all logits).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ts="$SHARED/models/tinystories-bitnet-3m/model.bin"
"$BITNETC" "$ts" --target="$TARGET" --head=q8 -q -o "$work/gpu" 2>/dev/null
"$BITNETC" "$ts" --target=host --head=q8 -q -o "$work/cpu" 2>/dev/null
for flags in "-n 48 --temp 0" "-n 40 --temp 0.9 --top-k 0 --top-p 0.95 -s 7"; do
  # shellcheck disable=SC2086
  if [ "$("$work/gpu" -p "Once upon a time" $flags 2>/dev/null)" != "$("$work/cpu" -p "Once upon a time" $flags 2>/dev/null)" ]; then
    echo "--head=q8: the device's tokens differ from the CPU output's ($flags)" >&2
    status=1
  fi
done
# Device-side sampling (repetition penalty, top-k candidates) and a prompt of several
# prefill chunks (tensor-core matmuls, 64 tokens a chunk): the tokens of `bitnetc run`.
"$BITNETC" "$ts" --target="$TARGET" -q -o "$work/plain" 2>/dev/null
long=$(for i in $(seq 12); do printf 'Once upon a time, a little cat played in the sun. '; done)
for flags in "-n 40 --temp 0.9 --top-k 20 --repeat-penalty 1.5 -s 5" "-n 40 --temp 0 --repeat-penalty 2"; do
  for prompt in "Once upon a time" "$long"; do
    # shellcheck disable=SC2086
    if [ "$("$work/plain" -p "$prompt" $flags --json 2>/dev/null | grep -o '"tokens":[^]]*')" != \
         "$("$BITNETC" run "$ts" -p "$prompt" $flags --json 2>/dev/null | grep -o '"tokens":[^]]*')" ]; then
      echo "sampling on the device differs from bitnetc run ($flags, prompt of ${#prompt} bytes)" >&2
      status=1
    fi
  done
done
BITNETC="$BITNETC" TARGET="$TARGET" bench/bench_2b4t.sh -r 3 || status=1
# Each launch of a 2B4T decode step timed on the GPU, with the bandwidth of the matmuls:
# the kernels to tune first (JSON on stdout).
"$BITNETC" synth --shape 2b4t --arch bitnet-b1.58 --type i2_s --embd-type f16 -o "$work/2b4t.gguf" >&2
"$BITNETC" "$work/2b4t.gguf" --target="$TARGET" -q -o "$work/2b4t" && "$work/2b4t" --profile 20 || status=1
exit $status
