#!/usr/bin/env bash
# bct compress --smooth and --gptq end to end on the shared SST-2 tiny
# model: calibrated from training sentences, judged on the dev set.
. "$(dirname "$0")/lib.sh"
need_shared
DEV=$SHARED/data/glue/SST-2/dev.tsv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
json_num() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<< "$2" | head -1; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a >= b)}'; }
at_most() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a <= b)}'; }
sed -n 2,129p "$SHARED/data/glue/SST-2/train.tsv" | cut -f1 > "$tmp/calib.txt"
header() { tail -c 60000 "$1" | tr -d '\0'; }

# Smoothing: every Linear gets an exponent (or none), Q/K/V share one
# act_scale blob, and the file stays as accurate as the plain preset
# (reference 693/872 correct; plain w8a8: 692, agreement 0.9989).
rep=$("$BCT" compress --in "$TINY" --out "$tmp/s.bct" --preset w8a8 --calib "$tmp/calib.txt" --smooth auto \
    --json) || fail "compress --smooth auto"
check_contains "report gives the chosen exponent" '"smooth_alpha":' "$rep"
h=$(header "$tmp/s.bct")
check_contains "Q/K/V share the key's act_scale" \
    '"act_scale":"bert.encoder.layer.1.attention.self.key.weight.act_scale"' "$h"
check_contains "smoothing recorded" '"smoothing":' "$h"
cmp=$("$BCT" compare "$TINY" "$tmp/s.bct" --task sst2 --data "$DEV" --json) || fail "compare smoothed"
check "smoothed w8a8 agreement $(json_num agreement "$cmp") >= 0.995" at_least "$(json_num agreement "$cmp")" 0.995
check "smoothed w8a8 mean |logit diff| <= 0.02" at_most "$(json_num mean_logit_diff "$cmp")" 0.02
# With fp32 inputs the loader folds act_scale back into the weights.
cmp=$("$BCT" compare "$TINY" "$tmp/s.bct" --task sst2 --data "$DEV" --json --activations fp32) ||
    fail "compare smoothed, fp32 activations"
check "smoothed w8a8 weights-only mean |logit diff| <= 0.02" at_most "$(json_num mean_logit_diff "$cmp")" 0.02

# GPTQ: at 3-bit weights it must beat plain rounding on the logits.
"$BCT" compress --in "$TINY" --out "$tmp/r.bct" --preset w4a8 --weights q3 --calib "$tmp/calib.txt" \
    > /dev/null || fail "compress q3"
"$BCT" compress --in "$TINY" --out "$tmp/g.bct" --preset w4a8 --weights q3 --calib "$tmp/calib.txt" --gptq \
    > /dev/null || fail "compress q3 --gptq"
check_contains "GPTQ recorded" 'GPTQ' "$(header "$tmp/g.bct")"
r=$(json_num mean_logit_diff "$("$BCT" compare "$TINY" "$tmp/r.bct" --task sst2 --data "$DEV" --json)")
g=$(json_num mean_logit_diff "$("$BCT" compare "$TINY" "$tmp/g.bct" --task sst2 --data "$DEV" --json)")
check "GPTQ mean |logit diff| $g < rounding's $r" awk -v a="$g" -v b="$r" 'BEGIN{exit !(a < b)}'
ev=$("$BCT" eval --model "$tmp/g.bct" --task sst2 --data "$DEV" --json) || fail "eval GPTQ"
check "GPTQ q3 accuracy" at_least "$(json_num correct "$ev")" 684

# Both need calibration text; the exponent is checked.
"$BCT" compress --in "$TINY" --out "$tmp/x.bct" --smooth auto 2>/dev/null
check_eq "--smooth without --calib" 2 $?
"$BCT" compress --in "$TINY" --out "$tmp/x.bct" --gptq 2>/dev/null
check_eq "--gptq without --calib" 2 $?
"$BCT" compress --in "$TINY" --out "$tmp/x.bct" --calib "$tmp/calib.txt" --smooth 1.5 2>/dev/null
check_eq "--smooth 1.5" 2 $?
[ ! -e "$tmp/x.bct" ]
check_eq "no file written on usage errors" 0 $?
done_ok
