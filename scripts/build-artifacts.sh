#!/usr/bin/env bash
# Compiles one model for each named target into OUT_DIR, each output with a JSON manifest
# (the output's own `--version --json`: bitnetc version, target, architecture, model
# fingerprint, layouts, weights; plus the file's name, size and sha256) and one SHA256SUMS
# for the folder. What .github/workflows/models.yml runs per target; tests run it here.
#
#   scripts/build-artifacts.sh MODEL OUT_DIR TARGET...
#
# $BITNETC names the compiler (default: bitnetc on PATH, else this checkout's build).
# aarch64 outputs report their manifest under qemu-aarch64; CUDA outputs need no GPU.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 MODEL OUT_DIR TARGET..." >&2
  exit 2
fi
model=$1
out_dir=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
bitnetc=${BITNETC:-$(command -v bitnetc || echo "$here/build/bin/bitnetc")}
[[ -x $bitnetc ]] || { echo "$0: no bitnetc at $bitnetc (set \$BITNETC)" >&2; exit 1; }
[[ -e $model ]] || { echo "$0: $model: no such model" >&2; exit 1; }
mkdir -p "$out_dir"

# Artifacts are named after the model: its file's stem, or its folder's name for a
# folder or a file named model.* (models/tinystories-bitnet-3m/model.bin).
stem=$(basename "${model%/}")
stem=${stem%.*}
if [[ -d $model || $stem == model ]]; then
  stem=$(basename "$(cd "$(dirname "${model%/}")" && pwd)")
  [[ -d $model ]] && stem=$(basename "${model%/}")
fi
names=()
for target in "$@"; do
  name="$stem-$target"
  output="$out_dir/$name"
  "$bitnetc" compile "$model" --target="$target" -q -o "$output"
  case $target in
    aarch64-*) manifest=$(qemu-aarch64 "$output" --version --json) ;;
    *) manifest=$(                      "$output" --version --json) ;;
  esac
  sha=$(sha256sum "$output" | cut -d' ' -f1)
  bytes=$(stat -c %s "$output")
  # The output's manifest with the artifact's own facts appended (one JSON object).
  printf '%s,"file":"%s","bytes":%s,"sha256":"%s"}\n' "${manifest%\}}" "$name" "$bytes" "$sha" \
    > "$output.manifest.json.tmp"
  mv "$output.manifest.json.tmp" "$output.manifest.json"
  echo "$name: $bytes bytes, sha256 $sha"
  names+=("$name")
done
(cd "$out_dir" && sha256sum -- "${names[@]}" > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
