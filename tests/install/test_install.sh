#!/usr/bin/env bash
# install.relocatable: bitnetc as a user installs and integrates it (issue 22).
#   1. `cmake --install` to a prefix, then moved: no file names the build folder, and the
#      moved bitnetc compiles the bundled model for x86-64, aarch64 and wasm32-simd; all
#      run (aarch64 under qemu, wasm under node) and print the same greedy story.
#   2. The sample CMake consumer (examples/cmake) builds against the moved package with
#      Ninja: two models compiled by bitnetc_add_model, the program linked to one; a second
#      build does nothing, a newer bitnetc compiles again. pkg-config gives the include folder.
#   3. The installed Python package finds the installed bitnetc.
#   4. `cpack -G DEB`: control fields, file list, and the extracted package's bitnetc.
#   5. scripts/build-artifacts.sh for two targets: each manifest is its output's
#      `--version --json` plus the file's true size and sha256.
# usage: test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
model="$src/models/tinystories-bitnet-3m/model.bin"
prompt="Once upon a time"
work=$(mktemp -d "${TMPDIR:-/tmp}/bitnetc-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== 1. install, move, no build path, compile and run for x86-64, aarch64 and wasm32-simd"
cmake --install "$build" --prefix "$work/staged" > "$work/install.log"
mv "$work/staged" "$work/moved"
prefix="$work/moved"
if hits=$(grep -rlF "$build" "$prefix"); then fail "installed files name the build folder $build: $hits"; fi
if hits=$(grep -rlF "$src/" "$prefix"); then fail "installed files name the source folder $src: $hits"; fi
"$prefix/bin/bitnetc" --version | grep -qxF "runtime: $prefix/lib/bitnetc" ||
  fail "bitnetc --version does not name its moved runtime: $("$prefix/bin/bitnetc" --version)"
"$prefix/bin/bitnetc" "$model" --target=host -q -o "$work/story-x86"
"$prefix/bin/bitnetc" "$model" --target=aarch64-neon -q -o "$work/story-a64"
x86=$("$work/story-x86" -p "$prompt" -n 32 --temp 0 2>/dev/null)
a64=$(qemu-aarch64 -cpu cortex-a72 "$work/story-a64" -p "$prompt" -n 32 --temp 0 2>/dev/null)
[[ $x86 == "$prompt"?* ]] || fail "x86-64 output printed: $x86"
[[ $x86 == "$a64" ]] || fail "x86-64 and aarch64 differ: '$x86' vs '$a64'"
# WebAssembly: the moved runtime folder's wasm32 libraries and loader, run by node.
"$prefix/bin/bitnetc" "$model" --target=wasm32-simd -q -o "$work/story.mjs"
wasm=$(node "$work/story.mjs" -p "$prompt" -n 32 --temp 0 2>/dev/null)
[[ $x86 == "$wasm" ]] || fail "x86-64 and wasm32-simd differ: '$x86' vs '$wasm'"
echo "   $x86"

echo "== 2. the CMake consumer against the moved package"
cmake -S "$src/examples/cmake" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DMODEL="$model" \
  > "$work/consumer-configure.log" || { cat "$work/consumer-configure.log"; fail "consumer configure"; }
cmake --build "$work/consumer" > "$work/consumer-build.log" || { cat "$work/consumer-build.log"; fail "consumer build"; }
story=$("$work/consumer/story" "$prompt")
[[ $story == "$x86" ]] || fail "the consumer's program printed '$story', the executable '$x86'"
cli=$("$work/consumer/bitnetc/stories_cli/stories_cli" -p "$prompt" -n 32 --temp 0 2>/dev/null)
[[ $cli == "$x86" ]] || fail "bitnetc_add_model(EMIT exe) printed '$cli'"
ninja -C "$work/consumer" -n | grep -q "no work to do" || fail "a second build is not a no-op"
touch "$prefix/bin/bitnetc"
ninja -C "$work/consumer" -n | grep -c "bitnetc: compiling" | grep -qx 2 || fail "a newer bitnetc does not recompile both models"
cflags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags bitnet)
[[ $cflags == "-I$prefix/lib/pkgconfig/../../include "* || $cflags == "-I$prefix/lib/pkgconfig/../../include" ]] ||
  fail "pkg-config --cflags bitnet: $cflags"
cc -o "$work/story-pc" "$src/examples/cmake/main.c" $cflags -L "$work/consumer/bitnetc/stories" -lstories \
  -Wl,-rpath,"$work/consumer/bitnetc/stories"
[[ $("$work/story-pc" "$prompt") == "$x86" ]] || fail "the pkg-config build prints another story"

echo "== 3. the installed Python package finds the installed bitnetc"
found=$(env -u BITNETC PATH=/usr/bin:/bin PYTHONPATH="$prefix/lib/python3/dist-packages" /usr/bin/python3 -c \
  'import bitnet_py._compile as c; print(c.find_bitnetc()); print(c.find_tokenizer_library())')
[[ $found == "$prefix/bin/bitnetc"$'\n'"$prefix/lib/libbitnetc_tokenizer.so" ]] || fail "bitnet_py found: $found"

echo "== 4. the Debian package"
(cd "$build" && cpack -G DEB -B "$work/deb" > "$work/cpack.log") || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/deb/bitnetc_*_amd64.deb)
control=$(dpkg-deb -f "$deb")
for field in "Package: bitnetc" "Architecture: amd64" "Version: $("$prefix/bin/bitnetc" --version | sed -n 's/^bitnetc //p')"; do
  grep -qxF "$field" <<< "$control" || fail "control lacks '$field': $control"
done
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libhalide14-0 libsentencepiece0 clang-14 llvm-14 g++-aarch64-linux-gnu wasi-libc libc++-14-dev-wasm32; do
  [[ ", $depends," == *", $dep,"* ]] || fail "Depends lacks $dep: $depends"
done
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/bitnetc ./usr/include/bitnet.h ./usr/include/bitnet_c.h ./usr/lib/pkgconfig/bitnet.pc \
         ./usr/lib/cmake/bitnetc/bitnetcConfig.cmake ./usr/lib/libbitnetc_tokenizer.so \
         ./usr/lib/bitnetc/include/HalideRuntime.h ./usr/lib/bitnetc/x86_64-linux-gnu/default/libbitnetc_runtime.a \
         ./usr/lib/bitnetc/aarch64-linux-gnu/default/libbitnetc_runtime.a \
         ./usr/lib/bitnetc/wasm32-wasi/default/libbitnetc_runtime.a ./usr/lib/bitnetc/wasm32-wasi/loader.mjs \
         ./usr/lib/python3/dist-packages/bitnet_py/__init__.py ./usr/share/doc/bitnetc/bitnetc-compile.txt; do
  grep -qxF "$f" <<< "$files" || fail "the package lacks $f"
done
dpkg-deb -x "$deb" "$work/root"
"$work/root/usr/bin/bitnetc" --version | grep -qxF "runtime: $work/root/usr/lib/bitnetc" || fail "packaged bitnetc"
"$work/root/usr/bin/bitnetc" "$model" --target=host -q -o "$work/story-deb"
[[ $("$work/story-deb" -p "$prompt" -n 32 --temp 0 2>/dev/null) == "$x86" ]] || fail "the packaged bitnetc's output"

echo "== 5. CI artifacts with manifests"
BITNETC="$prefix/bin/bitnetc" "$src/scripts/build-artifacts.sh" "$model" "$work/artifacts" x86-64-avx2 aarch64-neon \
  > "$work/artifacts.log"
(cd "$work/artifacts" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS"
for target in x86-64-avx2 aarch64-neon; do
  out="$work/artifacts/tinystories-bitnet-3m-$target"
  manifest=$(cat "$out.manifest.json")
  case $target in aarch64-*) version=$(qemu-aarch64 "$out" --version --json) ;; *) version=$("$out" --version --json) ;; esac
  [[ $manifest == "${version%\}},\"file\":\"$(basename "$out")\",\"bytes\":$(stat -c %s "$out"),\"sha256\":\"$(sha256sum "$out" | cut -d' ' -f1)\"}" ]] ||
    fail "$target manifest $manifest does not match the output ($version)"
  [[ $version == *"\"target\":\"$target\""* && $version == *'"fingerprint":"'* && $version == *'"bitnetc_version":"'* ]] ||
    fail "$target --version --json: $version"
done
echo "install.relocatable: all checks passed"
