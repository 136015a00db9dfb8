#!/usr/bin/env bash
# bct eval end to end: accuracies equal the reference figures of SOURCE.md.
. "$(dirname "$0")/lib.sh"
need_shared

out=$("$BCT" eval --model "$TINY" --task sst2 --data "$SHARED/data/glue/SST-2/dev.tsv" --json) ||
    fail "eval tiny"
check_contains "tiny task" '"task":"sst2"' "$out"
check_contains "tiny n" '"n":872' "$out"
check_contains "tiny correct (0.794725)" '"correct":693' "$out"
check_contains "tiny f1 key" '"f1":' "$out"

out=$("$BCT" eval --model "$SHARED/models/mrpc-bert-mini-scratch" --task mrpc \
    --data "$SHARED/data/glue/MRPC/dev.tsv" --json --batch 7 --threads 1) || fail "eval mrpc"
check_contains "mrpc n" '"n":408' "$out"
check_contains "mrpc correct (0.625)" '"correct":255' "$out"
check_contains "mrpc f1 (0.7151)" '"f1":0.715083' "$out"

text=$("$BCT" eval --model "$TINY" --task sst2 --data "$SHARED/data/glue/SST-2/dev.tsv" --limit 100) ||
    fail "eval text output"
check_contains "text output" "n 100" "$text"

logits=$(mktemp)
"$BCT" eval --model "$TINY" --task sst2 --data "$SHARED/data/glue/SST-2/dev.tsv" \
    --dump-logits "$logits" >/dev/null || fail "dump logits"
check_eq "dumped rows" 872 "$(wc -l < "$logits")"
# Same numbers as the reference logits, to the printed precision.
maxdiff=$(paste "$logits" "$TINY/ref_dev_logits.tsv" |
    awk '{for(i=1;i<=2;i++){d=$i-$(i+2); if(d<0)d=-d; if(d>m)m=d}} END{printf "%.6f", m}')
check "dumped logits within 1e-4 (max $maxdiff)" awk -v d="$maxdiff" 'BEGIN{exit !(d <= 0.0001)}'
rm -f "$logits"

"$BCT" eval --model "$TINY" --task qnli --data x.tsv 2>/dev/null
check_eq "unknown task is a usage error" 2 $?
"$BCT" eval --model "$TINY" --task sst2 --data /nonexistent.tsv 2>/dev/null
check_eq "missing data file fails" 1 $?
done_ok
