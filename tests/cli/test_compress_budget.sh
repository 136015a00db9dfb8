#!/usr/bin/env bash
# Accuracy-budgeted compression (issue 15 item 5): `bct compress --max-drop
# P --eval TSV --task T` on a random checkpoint whose evaluation labels are
# its own fp32 predictions (fp32 accuracy 1.0), so every lost example is a
# drop.  Checks: the reported drop is what `bct compare` measures on the
# file written; it is within the budget; a budget of 0 either keeps every
# prediction or fails with nothing written; the printed rules rebuild the
# same model; no temporary file is left; bad option sets are refused.
# Needs no shared data (`random_ckpt` writes the model).
. "$(dirname "$0")/lib.sh"
command -v jq > /dev/null || { echo "skipped: jq not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

CK=$tmp/ck
random_ckpt "$CK" --layers 2 --hidden 128 --heads 2 --intermediate 256 --vocab 600

# 60 texts of 4-12 random tokens, labelled by the checkpoint itself.
printf 'sentence\tlabel\n' > "$tmp/eval.tsv"
RANDOM=7
for i in $(seq 60); do
    text=""
    for j in $(seq $((4 + RANDOM % 9))); do text="$text tok$((RANDOM % 590 + 5))"; done
    label=$("$BCT" classify --model "$CK" --json "${text# }" | jq '.logits | to_entries | max_by(.value) | .key') ||
        fail "classify fp32"
    printf '%s\t%s\n' "${text# }" "$label" >> "$tmp/eval.tsv"
done

acc_b() { "$BCT" compare "$CK" "$1" --task sst2 --data "$tmp/eval.tsv" --json | jq '.b.accuracy'; }

# A loose budget: every group lowered as far as it goes (q2), and the
# drop reported is the one compare measures.
"$BCT" compress --in "$CK" --out "$tmp/loose.bct" --preset w8a8 --max-drop 100 --eval "$tmp/eval.tsv" \
    --task sst2 --threads 1 --json > "$tmp/loose.json" 2> "$tmp/loose.log" || fail "budget 100: $(tail -3 "$tmp/loose.log")"
check_eq "budget 100: every tunable group at q2" "2" \
    "$(jq '[.groups[] | select(.params >= 10000) | .bits] | unique | join(",")' -r "$tmp/loose.json")"
check_eq "budget 100: fp32 accuracy on its own labels" "1" "$(jq '.fp32_accuracy' "$tmp/loose.json")"
measured=$(acc_b "$tmp/loose.bct")
check_eq "budget 100: reported accuracy is measured" "$(jq '.accuracy' "$tmp/loose.json" | awk '{printf "%.4f", $1}')" \
    "$(awk -v a="$measured" 'BEGIN{printf "%.4f", a}')"
"$BCT" compress --in "$CK" --out "$tmp/w8a8.bct" --preset w8a8 > /dev/null || fail "w8a8"
check "budget 100: smaller than w8a8" test "$(stat -c %s "$tmp/loose.bct")" -lt "$(stat -c %s "$tmp/w8a8.bct")"
check_eq "no temporary files left" "" "$(ls "$tmp" | grep budget || true)"

# The printed rules rebuild the same file.
args=()
for r in $(jq -r '.rules[]' "$tmp/loose.json"); do args+=(--tensor-format "$r"); done
"$BCT" compress --in "$CK" --out "$tmp/again.bct" --preset w8a8 "${args[@]}" > /dev/null || fail "--tensor-format rebuild"
# (the files differ only in their creation time)
check_eq "rules rebuild the same size" "$(stat -c %s "$tmp/loose.bct")" "$(stat -c %s "$tmp/again.bct")"
check_eq "rules rebuild the same logits" "0" \
    "$("$BCT" compare "$tmp/loose.bct" "$tmp/again.bct" --task sst2 --data "$tmp/eval.tsv" --json | jq '.max_logit_diff')"

# A budget of 0: no example may change, or nothing is written.
if "$BCT" compress --in "$CK" --out "$tmp/zero.bct" --preset w8a8 --max-drop 0 --eval "$tmp/eval.tsv" \
    --task sst2 --threads 1 --json > "$tmp/zero.json" 2> "$tmp/zero.log"; then
    check_eq "budget 0: drop" "0" "$(jq '.drop' "$tmp/zero.json")"
    check_eq "budget 0: compare agrees" "1" "$(acc_b "$tmp/zero.bct")"
else
    check_contains "budget 0: refused with the reason" "even the base preset" "$(cat "$tmp/zero.log")"
    check "budget 0: nothing written" test ! -e "$tmp/zero.bct"
fi
# A middle budget stays within it, as compare measures.
"$BCT" compress --in "$CK" --out "$tmp/mid.bct" --preset w8a8 --max-drop 5 --eval "$tmp/eval.tsv" \
    --task sst2 --threads 1 --json > "$tmp/mid.json" 2> "$tmp/mid.log" || fail "budget 5: $(tail -3 "$tmp/mid.log")"
check_eq "budget 5: standard error reported" "true" "$(jq '.drop_standard_error >= 0' "$tmp/mid.json")"
check "budget 5: measured within 5 points" awk -v a="$(acc_b "$tmp/mid.bct")" 'BEGIN{exit !(100 * (1 - a) <= 5 + 1e-9)}'

# A margin of standard errors only makes the plan more careful.
"$BCT" compress --in "$CK" --out "$tmp/conf.bct" --preset w8a8 --max-drop 5 --confidence 2 --eval "$tmp/eval.tsv" \
    --task sst2 --threads 1 --json > "$tmp/conf.json" 2> "$tmp/conf.log" &&
    check "confidence 2: drop + 2 se within 5" jq -e '.drop + 2 * .drop_standard_error <= 5 + 1e-9' "$tmp/conf.json" ||
    check_contains "confidence 2: refused with the reason" "even the base preset" "$(cat "$tmp/conf.log")"

# Bad option sets.
usage() { "$BCT" compress --in "$CK" --out "$tmp/x.bct" "$@" > /dev/null 2>&1; echo $?; }
check_eq "--max-drop without --eval" 2 "$(usage --max-drop 1)"
check_eq "--eval without --max-drop" 2 "$(usage --eval "$tmp/eval.tsv" --task sst2)"
check_eq "--max-drop negative" 2 "$(usage --max-drop -1 --eval "$tmp/eval.tsv" --task sst2)"
check_eq "--task unknown" 2 "$(usage --max-drop 1 --eval "$tmp/eval.tsv" --task cola)"
check_eq "--confidence without --max-drop" 2 "$(usage --confidence 1)"
check_eq "--confidence out of range" 2 "$(usage --confidence -1 --max-drop 1 --eval "$tmp/eval.tsv" --task sst2)"
check_eq "--tensor-format without a format" 2 "$(usage --tensor-format layer.0.)"
check_eq "--tensor-format bad format" 2 "$(usage --tensor-format layer.0.=q5)"
check_eq "--tensor-format with --max-drop" 2 \
    "$(usage --tensor-format layer.0.=q4 --max-drop 1 --eval "$tmp/eval.tsv" --task sst2)"
out=$("$BCT" compress --in "$CK" --out "$tmp/x.bct" --max-drop 1 --eval "$tmp/missing.tsv" --task sst2 2>&1)
check_eq "missing eval file fails" "1" "$?"
check_contains "missing eval file named" "missing.tsv" "$out"
done_ok
