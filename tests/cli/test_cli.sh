#!/usr/bin/env bash
# bct command line: help, errors, classify and tokenize.
. "$(dirname "$0")/lib.sh"

for cmd in classify tokenize eval; do
    out=$("$BCT" "$cmd" --help) || fail "$cmd --help exit code"
    check_contains "$cmd --help" "usage: bct $cmd" "$out"
done
"$BCT" --help > /dev/null || fail "bct --help"
"$BCT" frobnicate 2>/dev/null
check_eq "unknown command" 2 $?
"$BCT" classify 2>/dev/null
check_eq "classify without args" 2 $?
err=$("$BCT" classify --model /nonexistent "hi" 2>&1)
check_eq "missing model exit" 1 $?
check_contains "missing model message" "/nonexistent" "$err"

# ../shared's tiny checkpoint, or (a bare clone) the bundled model: the
# same trained model compressed, with the same tokenizer.
M=$TINY
[ -d "$M" ] || M=$(cd "$(dirname "$0")/../.." && pwd)/models/sst2-tiny.bct
out=$("$BCT" classify --model "$M" --json "a charming and often affecting journey")
check_contains "positive sentence" '"labels":[{"label":"positive"' "$out"
out=$("$BCT" classify --model "$M" "unflinchingly bleak and desperate")
check_eq "negative sentence first line" "negative" "$(echo "$out" | head -1 | awk '{print $1}')"
check_eq "two labels printed" 2 "$(echo "$out" | wc -l)"

out=$(printf 'Hello, World!\nfirst\tsecond\n' | "$BCT" tokenize --model "$M")
check_eq "tokenize single" '{"ids":[101,7592,1010,2088,999,102],"type_ids":[0,0,0,0,0,0]}' \
    "$(echo "$out" | sed -n 1p)"
check_eq "tokenize pair" '{"ids":[101,2034,102,2117,102],"type_ids":[0,0,0,1,1]}' \
    "$(echo "$out" | sed -n 2p)"
out=$(printf 'ok\n\xff\xfe bad\nfine\n' | "$BCT" tokenize --model "$M" 2>/dev/null)
check_eq "invalid UTF-8 exit code" 1 $?
check_eq "one output line per input line" 3 "$(echo "$out" | wc -l)"
check_contains "invalid UTF-8 reported" '"error"' "$(echo "$out" | sed -n 2p)"
out=$(echo "one two three four five six" | "$BCT" tokenize --model "$M" --max-len 5)
check_eq "max-len truncation" '{"ids":[101,2028,2048,2093,102],"type_ids":[0,0,0,0,0]}' "$out"
done_ok
