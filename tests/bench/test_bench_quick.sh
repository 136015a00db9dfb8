#!/usr/bin/env bash
# bct bench --quick: the CI-sized benchmark runs end to end (random model,
# compression, a forked process per mode, the GEMM against the ISA peak) and
# its outputs have the promised shape.  No timing assertions: the machine
# may be shared.  Needs nothing from ../shared.
. "$(dirname "$0")/../cli/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$BCT" bench --help > "$tmp/help" || fail "bench --help"
check_contains "help names --json" "--json" "$(cat "$tmp/help")"
check_contains "help names BCT_ISA" "BCT_ISA" "$(cat "$tmp/help")"

"$BCT" bench --quick --threads 2 --json > "$tmp/out.json" 2> "$tmp/err" || fail "bench --quick --json: $(cat "$tmp/err")"
jqe() { jq -e "$@" "$tmp/out.json" > /dev/null; }
check "output is a JSON list" jqe 'type == "array"'
# 3 modes x batch {1,8} x seq {16,64}
check_eq "forward entries" 12 "$(jq '[.[] | select(.kind == "forward")] | length' "$tmp/out.json")"
check "every forward entry has the promised fields" \
    jqe '[.[] | select(.kind == "forward") | has("mode") and has("batch") and has("seq") and has("sentences_per_s") and has("ms_per_batch") and has("peak_rss_mb")] | all'
check "modes fp32, int8, int4" jqe '[.[] | select(.kind == "forward") | .mode] | unique == ["fp32", "int4", "int8"]'
check "positive speeds and memory" \
    jqe '[.[] | select(.kind == "forward") | .sentences_per_s > 0 and .ms_per_batch > 0 and .peak_rss_mb > 0] | all'
check "GEMM entries with a peak" jqe '[.[] | select(.kind == "gemm") | .gops > 0 and .peak_gops > 0] | (length > 0 and all)'
check "machine entry" jqe '[.[] | select(.kind == "machine")] | length == 1'

# Text table, one mode, an explicit grid and no GEMM.
out=$("$BCT" bench --quick --modes int8 --batch 2 --seq 8 --runs 1 --no-gemm 2> /dev/null) || fail "bench text"
check_contains "table header" "sentences/s" "$out"
check_eq "one table row" 1 "$(echo "$out" | grep -c '^int8 ')"

# Every ISA the CPU has gives a run; an ISA it lacks falls back with a warning.
for isa in scalar avx2 avxvnni avx512vnni amx; do
    err=$(BCT_ISA=$isa "$BCT" bench --quick --modes int8 --batch 1 --seq 8 --runs 1 --no-gemm 2>&1 > /dev/null) ||
        fail "BCT_ISA=$isa"
    case "$err" in *"warning: BCT_ISA=$isa"*) echo "note: $isa not available here (fallback warned)" ;; esac
done

# --data: real texts through the bundled model's tokenizer; seq = their mean length.
BUNDLED=$(cd "$(dirname "$0")/../.." && pwd)/models/sst2-tiny.bct
printf 'a fine film\tignored\n\nthe worst movie i have ever seen , and i have seen many\nok\nfun\n' > "$tmp/texts"
"$BCT" bench --model "$BUNDLED" --data "$tmp/texts" --batch 1,2 --runs 2 --no-gemm --json > "$tmp/data.json" \
    2> "$tmp/err" || fail "bench --data: $(cat "$tmp/err")"
check_eq "--data: one entry per batch size" 2 "$(jq '[.[] | select(.kind == "forward")] | length' "$tmp/data.json")"
check_eq "--data: blank line skipped, 4 inputs" 4 "$(jq '[.[] | select(.kind == "forward") | .inputs] | unique | .[0]' "$tmp/data.json")"
# Tokens: [CLS] a fine film [SEP] = 5, 13 + 2 = 15, ok = 3, fun = 3: mean 6.5;
# batch 2 times the first 4 (all), batch 1 all 4 too.
check_eq "--data: mean tokens" 6.5 "$(jq '[.[] | select(.kind == "forward") | .mean_tokens] | unique | .[0]' "$tmp/data.json")"
check_eq "--data: seq is the rounded mean" 7 "$(jq '[.[] | select(.kind == "forward") | .seq] | unique | .[0]' "$tmp/data.json")"
"$BCT" bench --model "$BUNDLED" --data "$tmp/texts" --batch 5 --runs 1 --no-gemm > /dev/null 2>&1
check_eq "--data: batch larger than the inputs fails" 1 $?
"$BCT" bench --model "$BUNDLED" --data "$tmp/texts" --seq 16 --no-gemm > /dev/null 2>&1
check_eq "--data with --seq is a usage error" 2 $?
"$BCT" bench --model "$BUNDLED" --data "$tmp/nonexistent" --no-gemm > /dev/null 2>&1
check_eq "--data: missing file is a usage error" 2 $?

# Usage errors.
"$BCT" bench --modes fp16 > /dev/null 2>&1
check_eq "unknown mode is a usage error" 2 $?
"$BCT" bench --gemm 1,2 > /dev/null 2>&1
check_eq "bad --gemm is a usage error" 2 $?
"$BCT" bench --model /nonexistent.bct --no-gemm --runs 1 > /dev/null 2>&1
check_eq "missing model fails" 1 $?
done_ok
