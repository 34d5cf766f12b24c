#!/usr/bin/env bash
# The serving benchmark: aggregate generated tokens/s and time to first token (p50/p99)
# at 1, 2, 4 and 8 concurrent streamed requests (64-token prompts, 128 tokens each), by
# bench/serve_load.mjs (node). Without --url it makes a synthetic model of BitNet b1.58
# 2B4T's shape (`bitnetc synth`, never committed; see bench_2b4t.sh), compiles it for
# TARGET (default host) and serves it with `OUT --server -np 8 -c 256 -t THREADS`
# (default 2) on a loopback port; with --url it measures that server instead, so the
# same workload can be pointed at llama-server or any OpenAI-compatible server (it must
# take token-id prompts and ignore_eos). Prints one JSON object; extra arguments go to
# serve_load.mjs (--streams 1,4 --rounds 2 --max-tokens 64 ...).
#
#   bench/bench_serve.sh
#   THREADS=1 bench/bench_serve.sh --streams 1,8
#   bench/bench_serve.sh --url http://127.0.0.1:8080 --vocab 32000
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BITNETC=${BITNETC:-build/bin/bitnetc}
url=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=$2; shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done

if [ -z "$url" ]; then
  dir=$(mktemp -d)
  server_pid=""
  cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$dir"
  }
  trap cleanup EXIT
  "$BITNETC" synth --shape 2b4t --arch "${ARCH:-bitnet-b1.58}" --type "${TYPE:-i2_s}" --embd-type f16 \
    -o "$dir/2b4t.gguf" >&2
  "$BITNETC" compile "$dir/2b4t.gguf" --target "${TARGET:-host}" -q -o "$dir/2b4t"
  rm "$dir/2b4t.gguf"
  "$dir/2b4t" --server --port 0 -np 8 -c 256 -t "${THREADS:-2}" 2>"$dir/server.log" &
  server_pid=$!
  for _ in $(seq 600); do  # at most 60 s to load and listen
    url=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$dir/server.log")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "bench_serve.sh: the server did not listen within 60 s" >&2; exit 1; }
  # The synthetic vocabulary has 128256 tokens.
  pass=(--vocab 128256 "${pass[@]}")
fi
node "$here/serve_load.mjs" --url "$url" "${pass[@]}"
