#!/usr/bin/env bash
# Set up (idempotent), build, and run the whole test suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD_DIR="${MONOLOGUE_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${MONOLOGUE_JOBS:-$(nproc)}" "$@"
