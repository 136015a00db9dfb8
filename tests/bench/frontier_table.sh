#!/usr/bin/env bash
# Markdown rows of the compression frontier (issue 15): smoothing and GPTQ
# on the outlier-stress models (built by tests/data/make_outlier_model.py
# into build-cache/ when absent: minutes of CPU) and GPTQ at 3 and 2 bits
# on the shared SST-2 models.  Every row carries the command that made it.
# Usage: tests/bench/frontier_table.sh [BCT] [SHARED] >> docs/compression.md
# ROW_GROUPS (environment) picks row groups: any of outlier-tiny outlier-mini
# shared-tiny shared-mini (default all); HEADER=0 leaves the header out.
set -euo pipefail
cd "$(dirname "$0")/../.."
BCT=${1:-build/bct}
SHARED=${2:-../shared}
CACHE=build-cache
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
num() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<< "$2" | head -1; }
DEV=$SHARED/data/glue/SST-2/dev.tsv
# Calibration: the first 512 SST-2 training sentences (not the dev set).
CALIB=$CACHE/sst2-calib-512.txt
mkdir -p "$CACHE"
sed -n 2,513p "$SHARED/data/glue/SST-2/train.tsv" | cut -f1 > "$CALIB"

ROW_GROUPS=${ROW_GROUPS:-outlier-tiny outlier-mini shared-tiny shared-mini}
want() { case " $ROW_GROUPS " in *" $1 "*) return 0 ;; esac; return 1; }
for size in tiny mini; do
  dir=$CACHE/sst2-bert-$size-outlier
  { [ -f "$dir/model.safetensors" ] || ! want outlier-$size; } && continue
  steps=300; [ $size = mini ] && steps=250
  /usr/bin/python3 tests/data/make_outlier_model.py --src "$SHARED/models/sst2-bert-$size-scratch" \
    --out "$dir" --train "$SHARED/data/glue/SST-2/train.tsv" --dev "$DEV" --ref-tools "$SHARED/tools" \
    --steps $steps --lr 3e-4 >&2
done

row() { # row MODEL_DIR NAME ARGS...
  local model=$1 name=$2; shift 2
  local rep cmp b acc ref
  rep=$("$BCT" compress --in "$model" --out "$tmp/m.bct" "$@" --json 2>/dev/null)
  cmp=$("$BCT" compare "$model" "$tmp/m.bct" --task sst2 --data "$DEV" --json 2>/dev/null)
  b=${cmp#*\"b\":}; acc=$(num accuracy "$b"); ref=$(num accuracy "${cmp%%\"b\":*}")
  printf '| %s | %s | %d | %.2f | %.4f | %.2f | %.4f | %.3f / %.4f | %.0f | `%s` |\n' "$(basename "$model")" "$name" \
    "$(num output_bytes "$rep")" "$(num ratio "$rep")" "$acc" \
    "$(awk -v a="$ref" -v b="$acc" 'BEGIN{print 100*(a-b)}')" \
    "$(num agreement "$cmp")" "$(num max_logit_diff "$cmp")" "$(num mean_logit_diff "$cmp")" \
    "$(num seconds "$rep")" "bct compress --in M --out m.bct $*"
}

[ "${HEADER:-1}" = 0 ] || echo "| model | method | file bytes | ratio | dev accuracy | drop (points) | agreement | max / mean abs logit diff | compress s | command |"
[ "${HEADER:-1}" = 0 ] || echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
C="--calib $CALIB"
for size in tiny mini; do
  want outlier-$size || continue
  m=$CACHE/sst2-bert-$size-outlier
  row "$m" "w8a8 (preset)" --preset w8a8
  row "$m" "w8a8, fp32 activations (weights only)" --preset w8a8 --activations fp32
  row "$m" "w8a8 + smoothing (alpha searched)" --preset w8a8 $C --smooth auto
  row "$m" "w4a8 (preset)" --preset w4a8
  row "$m" "w4a8 + smoothing + GPTQ" --preset w4a8 $C --smooth auto --gptq
  row "$m" "w4a8, q4 embeddings, q8 tables + smoothing + GPTQ" --preset w4a8 --embeddings q4 --tables q8 $C --smooth auto --gptq
done
for size in tiny mini; do
  want shared-$size || continue
  m=$SHARED/models/sst2-bert-$size-scratch
  row "$m" "q3 weights, q2 embeddings" --preset w4a8 --weights q3 --embeddings q2 $C
  row "$m" "q3 weights, q2 embeddings + GPTQ" --preset w4a8 --weights q3 --embeddings q2 $C --gptq
  row "$m" "q2 weights, q2 embeddings" --preset w4a8 --weights q2 --embeddings q2 $C
  row "$m" "q2 weights, q2 embeddings + GPTQ" --preset w4a8 --weights q2 --embeddings q2 $C --gptq
done
