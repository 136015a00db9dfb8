#!/usr/bin/env bash
# Configures and builds bct.  Usage: deploy/build.sh [BUILD_DIR] [cmake args...]
# Shared by .ci/run, the quick start and the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" > /dev/null
cmake --build "$dir" -j"$(nproc)"
