#!/usr/bin/env bash
# Installs exactly what bitnetc's build and tests need, from Debian's archive.
# Idempotent: apt-get skips what is already there. Run as root (or with sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config
  # LLVM 14 / Halide 14 (one toolchain), clang-14 + libFuzzer for the fuzz targets
  llvm-14 llvm-14-dev clang-14 lld-14 libclang-rt-14-dev libfuzzer-14-dev libhalide14-0-dev
  # libraries
  libsentencepiece-dev sentencepiece libcli11-dev libgtest-dev libgmock-dev nlohmann-json3-dev libxxhash-dev
  # cross compilation and emulation for aarch64 outputs
  g++-aarch64-linux-gnu qemu-user
  # WebAssembly outputs (wasm32-simd, wasm32): clang-14 for wasm32-wasi with its C and
  # C++ libraries, linked by lld-14's wasm-ld, run by node (below)
  wasi-libc libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 libclang-rt-14-dev-wasm32
  # and the browser their web page's test drives (puppeteer-core, npm below)
  chromium
  # the Python package's tests (bitnet_py, under /usr/bin/python3) and its example web app
  python3 python3-pytest python3-fastapi python3-uvicorn python3-httpx
  # the HTTP server (outputs' --server): cpp-httplib's source package (below); its tests: curl,
  # and node for the official `openai` client (npm below; nodesource's nodejs carries npm)
  dpkg-dev xz-utils curl nodejs
)

export DEBIAN_FRONTEND=noninteractive
# cpp-httplib: Debian's libcpp-httplib-dev is the library's split, compiled form (a shared
# library linked with OpenSSL, zlib and brotli), which a self-contained output (a static
# aarch64 executable among them) cannot link. The same version's single header, with
# Debian's patches applied, comes from Debian's source package instead: unpacked into
# build-deps/ (git ignores it) and compiled into the outputs without TLS.
if ! ls /etc/apt/sources.list.d/bitnetc-deb-src.sources > /dev/null 2>&1; then
  printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm bookworm-updates' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
    'Types: deb-src' 'URIs: http://deb.debian.org/debian-security' 'Suites: bookworm-security' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
    $SUDO tee /etc/apt/sources.list.d/bitnetc-deb-src.sources > /dev/null
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
deps="$(cd "$(dirname "$0")/.." && pwd)/build-deps"
if ! ls "$deps"/cpp-httplib-*/httplib.h > /dev/null 2>&1; then
  mkdir -p "$deps"
  (cd "$deps" && apt-get source -qq cpp-httplib)
fi
# The server tests' real client, the official `openai` package, from the committed
# lockfile. nodesource's nodejs carries npm; Debian's needs its npm package.
command -v npm > /dev/null || $SUDO apt-get install -y -qq --no-install-recommends npm
npm ci --prefix "$(cd "$(dirname "$0")/.." && pwd)/tests/server" --no-audit --no-fund --loglevel=error
# The web page's test drives Debian's chromium with puppeteer-core (no browser download).
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix "$(cd "$(dirname "$0")/.." && pwd)/tests/web" --no-audit --no-fund --loglevel=error
