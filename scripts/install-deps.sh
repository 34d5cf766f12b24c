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
  libsentencepiece-dev sentencepiece libcli11-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  # cross compilation and emulation for aarch64 outputs
  g++-aarch64-linux-gnu qemu-user
  # the Python package's tests (bitnet_py, under /usr/bin/python3) and its example web app
  python3 python3-pytest python3-fastapi python3-uvicorn python3-httpx
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
