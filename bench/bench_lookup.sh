#!/usr/bin/env bash
# Where lookup decoding (--lookup N) pays. Compiles MODEL for TARGET (default host) and
# prints one JSON object with:
#   "step_cost": what a decode step of the token and K drafts costs (the output's
#     --bench 0,G,R --bench-draft K: every row's logits, none kept), as the median
#     steps/s and its ratio to K = 0. A step of K drafts pays when more than
#     ratio - 1 of them are kept on average.
#   "runs": greedy generations of each prompt with --lookup 0 and each N in LOOKUP:
#     decode tokens/s (the median of REPS runs), drafts fed and kept, and the speed-up.
# The default prompts are TinyStories-style; a prompt that quotes text the answer
# repeats is where drafts are kept.
#
#   bench/bench_lookup.sh                                   # the bundled TinyStories model
#   bench/bench_lookup.sh MODEL.gguf "prompt one" "prompt two"
#   LOOKUP="4 8" N=256 REPS=3 THREADS=2 bench/bench_lookup.sh
set -euo pipefail
BITNETC=${BITNETC:-build/bin/bitnetc}
MODEL=${1:-models/tinystories-bitnet-3m/model.bin}
shift || true
N=${N:-256}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
LOOKUP=${LOOKUP:-4 8}
DRAFTS=${DRAFTS:-0 1 2 4 8}
if [ $# -eq 0 ]; then
  set -- "Once upon a time" \
    "Tom had a red ball. Tom liked the red ball. Tom had a red ball and a blue car. One day Tom" \
    "Lily said, \"I want to play in the park.\" Mom said, \"You can play in the park.\" Lily said,"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$BITNETC" "$MODEL" --target "${TARGET:-host}" -o "$dir/model" -q >&2

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '{"model": "%s", "threads": %d, "n": %d, "reps": %d, "step_cost": [' "$MODEL" "$THREADS" "$N" "$REPS"
base=""
sep=""
for k in $DRAFTS; do
  steps=$("$dir/model" -t "$THREADS" --bench "0,64,$REPS" --bench-draft "$k" |
    sed 's/.*"tg_tps":\[\([^]]*\)\].*/\1/' | tr ',' '\n' | median)
  [ -z "$base" ] && base=$steps
  printf '%s\n  {"drafts": %d, "steps_per_s": %s, "cost_vs_one_row": %s}' "$sep" "$k" "$steps" \
    "$(awk -v b="$base" -v s="$steps" 'BEGIN { printf "%.3f", b / s }')"
  sep=","
done
printf '],\n "runs": ['
sep=""
for prompt in "$@"; do
  plain=""
  for lookup in 0 $LOOKUP; do
    : > "$dir/tps"
    for _ in $(seq "$REPS"); do
      "$dir/model" -t "$THREADS" -p "$prompt" -n "$N" --temp 0 --lookup "$lookup" > /dev/null 2> "$dir/err"
      sed -n 's/.*generated [0-9]* tokens in [0-9.]* s (\([0-9.]*\) t\/s).*/\1/p' "$dir/err" >> "$dir/tps"
    done
    tps=$(median < "$dir/tps")
    [ "$lookup" = 0 ] && plain=$tps
    kept=$(sed -n 's/^lookup: \([0-9]*\) of \([0-9]*\) drafted.*/\1 \2/p' "$dir/err")
    [ -n "$kept" ] || kept="0 0"
    printf '%s\n  {"prompt": "%s", "lookup": %d, "decode_tps": %s, "accepted": %s, "drafted": %s, "speedup": %s}' \
      "$sep" "$(printf '%s' "$prompt" | sed 's/\\/\\\\/g; s/"/\\"/g')" "$lookup" "$tps" "${kept% *}" "${kept#* }" \
      "$(awk -v p="$plain" -v t="$tps" 'BEGIN { printf "%.3f", t / p }')"
    sep=","
  done
done
printf '\n]}\n'
