#!/usr/bin/env bash
# bct compress end to end: checkpoint -> .bct -> eval/compare, on the shared
# SST-2 tiny model, with the accuracy and size targets of the presets.
. "$(dirname "$0")/lib.sh"
need_shared
DEV=$SHARED/data/glue/SST-2/dev.tsv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

json_num() { # json_num KEY JSON: the first numeric value of "KEY"
    sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<< "$2" | head -1
}
at_least() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a >= b)}'; }

# preset  min_ratio  min_correct (reference 693/872: 0.2 / 0.5 points)  min_agreement
for spec in "w8a8 3.9 692 0.995" "w4a8 7.9 689 0.98"; do
    read -r preset ratio correct agree <<< "$spec"
    rep=$("$BCT" compress --in "$TINY" --out "$tmp/$preset.bct" --preset "$preset" --json) ||
        fail "compress $preset"
    for key in input_bytes output_bytes ratio weights_ratio tensors; do
        check_contains "$preset report has $key" "\"$key\":" "$rep"
    done
    r=$(json_num ratio "$rep")
    check "$preset ratio $r >= $ratio" at_least "$r" "$ratio"
    check_eq "$preset output_bytes is the file size" "$(stat -c %s "$tmp/$preset.bct")" \
        "$(json_num output_bytes "$rep")"

    ev=$("$BCT" eval --model "$tmp/$preset.bct" --task sst2 --data "$DEV" --json) || fail "eval $preset"
    c=$(json_num correct "$ev")
    check "$preset accuracy: $c/872 correct >= $correct" at_least "$c" "$correct"

    cmp=$("$BCT" compare "$TINY" "$tmp/$preset.bct" --task sst2 --data "$DEV" --json) ||
        fail "compare $preset"
    a=$(json_num agreement "$cmp")
    check "$preset agreement $a >= $agree" at_least "$a" "$agree"
done

# The same file runs with fp32 activations and non-linear ops on request.
ev=$("$BCT" eval --model "$tmp/w8a8.bct" --task sst2 --data "$DEV" --json --activations fp32 \
    --nonlinear fp32) || fail "eval with overrides"
check "w8a8 weights-only accuracy" at_least "$(json_num correct "$ev")" 692
"$BCT" eval --model "$TINY" --task sst2 --data "$DEV" --activations int8 2>/dev/null
check_eq "int8 activations need a .bct" 1 $?

# Text report and classification from the .bct.
out=$("$BCT" compress --in "$TINY" --out "$tmp/text.bct" --preset w4a8)
check_contains "text report totals" "ratio" "$out"
check_contains "text report lists tensors" "bert.encoder.layer.1.output.dense.weight" "$out"
out=$("$BCT" classify --model "$tmp/w4a8.bct" "a charming and often affecting journey")
check_eq "classify from .bct" positive "$(echo "$out" | head -1 | awk '{print $1}')"

# Calibration: recorded in the file, still accurate; a bad file is an error.
sed -n 2,129p "$SHARED/data/glue/SST-2/train.tsv" | cut -f1 > "$tmp/calib.txt"
"$BCT" compress --in "$TINY" --out "$tmp/calib.bct" --preset w4a8 --calib "$tmp/calib.txt" \
    --calib-n 100 > /dev/null || fail "compress with --calib"
ev=$("$BCT" eval --model "$tmp/calib.bct" --task sst2 --data "$DEV" --json) || fail "eval calibrated"
check "calibrated w4a8 accuracy" at_least "$(json_num correct "$ev")" 689
check_contains "calibration recorded" '"sentences":100' "$(tail -c 20000 "$tmp/calib.bct" | tr -d '\0')"
err=$("$BCT" compress --in "$TINY" --out "$tmp/c2.bct" --calib /nonexistent.txt 2>&1)
check_eq "missing calibration file" 1 $?
check_contains "missing calibration message" "/nonexistent.txt" "$err"
printf 'fine\n\xff\xfe\n' > "$tmp/bad_calib.txt"
err=$("$BCT" compress --in "$TINY" --out "$tmp/c2.bct" --calib "$tmp/bad_calib.txt" 2>&1)
check_eq "invalid UTF-8 calibration" 1 $?
check_contains "calibration line reported" "line 2" "$err"

# Bad input: nothing is written under the final name.
"$BCT" compress --in /nonexistent --out "$tmp/x.bct" 2>/dev/null
check_eq "missing checkpoint fails" 1 $?
mkdir "$tmp/bad"
cp "$TINY/config.json" "$TINY/vocab.txt" "$tmp/bad/"
head -c 100000 "$TINY/model.safetensors" > "$tmp/bad/model.safetensors"
err=$("$BCT" compress --in "$tmp/bad" --out "$tmp/bad.bct" 2>&1)
check_eq "truncated checkpoint fails" 1 $?
check_contains "truncated checkpoint message" "model.safetensors" "$err"
check "no output for a failed compress" test ! -e "$tmp/bad.bct"
check_eq "no temp files left" "" "$(ls "$tmp" | grep tmp || true)"
"$BCT" compress --in "$TINY" --out "$tmp/y.bct" --preset w2 2>/dev/null
check_eq "unknown preset" 2 $?
"$BCT" compress --in "$TINY" --out "$tmp/y.bct" --block 48 2>/dev/null
check_eq "block not a multiple of 32" 1 $?
head -c 500000 "$tmp/w8a8.bct" > "$tmp/cut.bct"
err=$("$BCT" eval --model "$tmp/cut.bct" --task sst2 --data "$DEV" 2>&1)
check_eq "truncated .bct is rejected" 1 $?
check_contains "truncated .bct message" "truncated" "$err"
done_ok
