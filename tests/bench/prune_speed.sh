#!/usr/bin/env bash
# CPU seconds per forward run of two .bct files, one thread, measured in
# one run of this script (interleaved, best of REPEATS): the speed of a
# pruned model against its unpruned twin on a shared, loaded machine,
# where wall-clock time is noise.  A run's CPU time is that of
# `bct bench --runs 1+N` less that of `--runs 1` (model load and warm-up
# cancel), over N.
#   tests/bench/prune_speed.sh BASE.bct PRUNED.bct [bench options...]
# e.g. --batch 8 --seq 128, or --data dev.tsv --batch 32.
set -eu
BCT=${BCT:-build/bct}
N=${N:-10}
REPEATS=${REPEATS:-3}
base=$1 pruned=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu() { # cpu MODEL RUNS BENCH_OPTIONS...: user + sys seconds of one bench process
    local model=$1 runs=$2
    shift 2
    /usr/bin/time -f "%U %S" -o "$tmp/t" "$BCT" bench --model "$model" --threads 1 --runs "$runs" --no-gemm "$@" \
        > /dev/null 2> "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    awk '{ print $1 + $2 }' "$tmp/t"
}
best() { awk 'NR == 1 || $1 < m { m = $1 } END { print m }'; }
: > "$tmp/base"
: > "$tmp/pruned"
for r in $(seq "$REPEATS"); do
    for m in base pruned; do
        f=${!m}
        one=$(cpu "$f" 1 "$@")
        many=$(cpu "$f" $((N + 1)) "$@")
        awk -v a="$one" -v b="$many" -v n="$N" 'BEGIN { print (b - a) / n }' >> "$tmp/$m"
    done
done
b=$(best < "$tmp/base")
p=$(best < "$tmp/pruned")
awk -v b="$b" -v p="$p" 'BEGIN { printf "cpu s/run: unpruned %.4f  pruned %.4f  speed-up %.2fx\n", b, p, b / p }'
