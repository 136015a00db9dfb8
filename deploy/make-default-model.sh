#!/usr/bin/env bash
# Regenerates the bundled default model, models/sst2-tiny.bct, from the
# shared SST-2 tiny checkpoint with the project's own quantizer (w4a8).
# Usage: deploy/make-default-model.sh [BCT] [SHARED]
set -euo pipefail
cd "$(dirname "$0")/.."
BCT=${1:-build/bct}
SHARED=${2:-../shared}
"$BCT" compress --in "$SHARED/models/sst2-bert-tiny-scratch" --out models/sst2-tiny.bct --preset w4a8 |
    tail -3
