#!/usr/bin/env bash
# Configure and build monologue into ./build (or $MONOLOGUE_BUILD_DIR). Extra arguments go to CMake.
# Assumes scripts/setup.sh has run (it is idempotent; scripts/quickstart.sh and scripts/test.sh call it).
set -euo pipefail
cd "$(dirname "$0")/.."
MONOLOGUE_HOME="${MONOLOGUE_HOME:-$HOME/.cache/monologue}"
PY="${MONOLOGUE_PYTHON:-$MONOLOGUE_HOME/venv/bin/python}"
BUILD_DIR="${MONOLOGUE_BUILD_DIR:-build}"
# Paths relative to the checkout in ccache's keys, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" "$@"
elif (($#)); then
  cmake -S . -B "$BUILD_DIR" "$@"
fi
cmake --build "$BUILD_DIR" -j "${MONOLOGUE_JOBS:-$(nproc)}"
