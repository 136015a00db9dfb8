#!/usr/bin/env bash
# Produces docs/compression.md: every shared model x compression format,
# with file size, whole-file ratio, dev accuracy, drop vs fp32 and
# prediction agreement.  Usage: tests/bench/compression_table.sh [BCT] [SHARED]
set -euo pipefail
cd "$(dirname "$0")/../.."
BCT=${1:-build/bct}
SHARED=${2:-../shared}
out=docs/compression.md
# Hand-written sections after the table (from "## Widths that fit no
# block" on) are kept.
kept=$(sed -n '/^## Widths that fit no block/,/^## Frontier/{/^## Frontier/!p}' "$out" 2>/dev/null || true)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The frontier section (tests/bench/frontier_table.sh makes its rows) is
# kept as it is below the regenerated table.
frontier=$(sed -n '/^## Frontier/,$p' "$out" 2>/dev/null || true)

num() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<< "$2" | head -1; }

# name | bct compress arguments
formats=(
  "w8a8 (preset)|--preset w8a8"
  "w4a8 (preset)|--preset w4a8"
  "q4 all, 32-blocks, f16 scales (ggml Q4_0-like)|--preset w4a8 --embeddings q4 --block 32 --scales f16"
  "q4 all, 128-blocks, log8 scales|--preset w4a8 --embeddings q4 --block 128"
  "q4 weights, q2 word embeddings|--preset w4a8 --embeddings q2"
  "w4a8 + --calib (512 train examples)|--preset w4a8 --calib CALIB"
)

{
echo "# Compression results"
echo
echo "Produced by \`tests/bench/compression_table.sh\` on $(date -u +%Y-%m-%d) with \`$("$BCT" --help >/dev/null && echo bct)\`"
echo "from the models in \`../shared/models\` and the GLUE dev sets in \`../shared/data/glue\`."
echo "Ratio = bytes of (model.safetensors + vocab.txt + config.json) / bytes of the .bct."
echo "Drop = fp32 accuracy - compressed accuracy, in points; agreement = share of dev examples"
echo "where both predict the same label.  All compressed rows run with int8 activations and"
echo "integer GELU/Softmax/LayerNorm unless noted.  The MRPC model's accuracy is not meaningful"
echo "(trained from scratch, below the majority baseline): read its agreement and logit columns."
echo
echo "| model | format | file bytes | ratio | dev accuracy | drop (points) | agreement | max / mean abs logit diff |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for m in sst2-bert-tiny-scratch:SST-2:sst2 sst2-bert-mini-scratch:SST-2:sst2 mrpc-bert-mini-scratch:MRPC:mrpc; do
  IFS=: read -r dir data task <<< "$m"
  model=$SHARED/models/$dir
  dev=$SHARED/data/glue/$data/dev.tsv
  # Calibration text: the first 512 training examples (text, or the pair).
  case $task in
    sst2) sed -n 2,513p "$SHARED/data/glue/$data/train.tsv" | cut -f1 > "$tmp/calib.txt" ;;
    mrpc) sed -n 2,513p "$SHARED/data/glue/$data/train.tsv" | cut -f4,5 > "$tmp/calib.txt" ;;
  esac
  ref=$("$BCT" eval --model "$model" --task "$task" --data "$dev" --json 2>/dev/null)
  ref_acc=$(num accuracy "$ref")
  ref_bytes=$(( $(stat -c %s "$model/model.safetensors") + $(stat -c %s "$model/vocab.txt") + $(stat -c %s "$model/config.json") ))
  printf '| %s | fp32 (checkpoint) | %d | 1.00 | %.4f | | | |\n' "$dir" "$ref_bytes" "$ref_acc"
  for f in "${formats[@]}"; do
    name=${f%%|*}
    # shellcheck disable=SC2086
    args=${f#*|}
    rep=$("$BCT" compress --in "$model" --out "$tmp/m.bct" ${args/CALIB/$tmp/calib.txt} --json 2>/dev/null)
    cmp=$("$BCT" compare "$model" "$tmp/m.bct" --task "$task" --data "$dev" --json 2>/dev/null)
    b=${cmp#*\"b\":}
    acc=$(num accuracy "$b")
    printf '| %s | %s | %d | %.2f | %.4f | %.2f | %.4f | %.3f / %.4f |\n' "$dir" "$name" \
      "$(num output_bytes "$rep")" "$(num ratio "$rep")" "$acc" \
      "$(awk -v a="$ref_acc" -v b="$acc" 'BEGIN{print 100*(a-b)}')" \
      "$(num agreement "$cmp")" "$(num max_logit_diff "$cmp")" "$(num mean_logit_diff "$cmp")"
  done
done
echo
echo "Reproduce one row: \`build/bct compress --in ../shared/models/sst2-bert-tiny-scratch --out m.bct --preset w4a8\`"
echo "then \`build/bct compare ../shared/models/sst2-bert-tiny-scratch m.bct --task sst2 --data ../shared/data/glue/SST-2/dev.tsv\`."
[ -z "$kept" ] || printf '\n%s\n' "$kept"
[ -z "$frontier" ] || printf '\n%s\n' "$frontier"
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
