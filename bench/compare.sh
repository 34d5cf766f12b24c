#!/usr/bin/env bash
# bitnetc against a peer engine on the same GGUF file, in one run, as one JSON object:
# `bitnetc bench` (which compiles the file) and the peer's llama-bench (llama.cpp,
# ik_llama.cpp and bitnet.cpp all ship one), the same prefill sizes, generation length,
# repetitions and threads, one after the other, then bitnetc's t/s over the peer's per
# test. The peer is built by hand (this project never builds or ships one).
#
#   bench/compare.sh --llama-bench ~/llama.cpp/build/bin/llama-bench --model 2b4t-tq2_0.gguf
#   bench/compare.sh --llama-bench PATH --model FILE -p 128,512 -n 128 -r 3 -t 2 \
#       --target x86-64-avx2 --peer-args "-mmp 0"
#
# --peer-args passes flags to llama-bench as they are (e.g. "-mmp 0" to read the file into
# memory instead of mapping it, "-fa 1"); --bitnetc-args likewise to `bitnetc bench`.
set -euo pipefail
BITNETC=${BITNETC:-build/bin/bitnetc}
PYTHON=${PYTHON:-/usr/bin/python3}
llama_bench="" model="" prompts="128,512" gen=128 reps=3 threads=$(nproc) target=host peer_args="" bitnetc_args=""
usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-bench) llama_bench=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    -p) prompts=$2; shift 2 ;;
    -n) gen=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --peer-args) peer_args=$2; shift 2 ;;
    --bitnetc-args) bitnetc_args=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$llama_bench" ] && [ -n "$model" ] || { echo "compare.sh: --llama-bench and --model are required" >&2; usage; }
[ -x "$llama_bench" ] || { echo "compare.sh: --llama-bench $llama_bench: not an executable" >&2; exit 2; }
[ -f "$model" ] || { echo "compare.sh: --model $model: not a file" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck disable=SC2086 # (the extra arguments are split as words on purpose)
"$BITNETC" bench "$model" --target "$target" -p "$prompts" -n "$gen" -r "$reps" -t "$threads" --json -q \
  $bitnetc_args > "$dir/bitnetc.json"
# shellcheck disable=SC2086
"$llama_bench" -m "$model" -p "$prompts" -n "$gen" -r "$reps" -t "$threads" -o json $peer_args \
  > "$dir/peer.json" 2> "$dir/peer.err" || { cat "$dir/peer.err" >&2; exit 1; }

"$PYTHON" - "$dir/bitnetc.json" "$dir/peer.json" "$llama_bench" "$peer_args" <<'EOF'
import json, sys
ours = json.load(open(sys.argv[1]))
peer = json.load(open(sys.argv[2]))
def peer_test(r):  # llama-bench's names: ppN (prefill only) or tgN (generation only)
    return f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
peer_tps = {peer_test(r): r for r in peer}
ratios = []
for t in ours["tests"]:
    p = peer_tps.get(t["test"])
    if p is None:
        continue
    ratios.append({"test": t["test"], "bitnetc_tps": t["median_tps"], "bitnetc_stddev": t["stddev"],
                   "peer_tps": p["avg_ts"], "peer_stddev": p["stddev_ts"],
                   "ratio": t["median_tps"] / p["avg_ts"] if p["avg_ts"] else None})
print(json.dumps({"model": ours["model"], "threads": ours["threads"], "target": ours["target"],
                  "bitnetc": ours,
                  "peer": {"llama_bench": sys.argv[3], "args": sys.argv[4],
                           "build": peer[0].get("build_commit") if peer else None,
                           "backend": peer[0].get("backends") if peer else None,
                           "type": peer[0].get("model_type") if peer else None, "results": peer},
                  "ratios": ratios}, indent=2))
EOF
