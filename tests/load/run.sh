#!/usr/bin/env bash
# Load test of `bct serve` with wrk (not run in CI).
#
#   tests/load/run.sh [--bct PATH] [--model DIR] [--threads N] [--duration S]
#                     [--out FILE] [-- extra bct serve flags]
#   tests/load/run.sh --soak [--soak-minutes M] ...
#
# Default mode: measures the engine's offline throughput on the SST-2 dev
# sentences (`bct eval`, one single-threaded process per worker thread, the
# same parallelism the server uses), then the server's throughput and p50 /
# p90 / p99 latency at concurrency 1, 8 and 64 for single-sentence POST
# /classify requests, and writes a markdown report (default
# build/load-report.md) with the HTTP/offline ratio (target: >= 85% at 64).
#
# --soak: concurrency 64 for M minutes (default 5); fails unless every
# answer is 2xx and the server's RSS (from /proc) grew less than 5% between
# the end of the first minute (warm-up) and the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BCT=$ROOT/build/bct
SHARED=${BCT_SHARED_DIR:-$ROOT/../shared}
MODEL=$SHARED/models/sst2-bert-tiny-scratch
DEV=$SHARED/data/glue/SST-2/dev.tsv
THREADS=$(nproc)
DURATION=10
OUT=$ROOT/build/load-report.md
SOAK=0
SOAK_MINUTES=5
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
    --bct) BCT=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --soak) SOAK=1; shift ;;
    --soak-minutes) SOAK_MINUTES=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in wrk jq curl; do
    command -v $tool >/dev/null || { echo "run.sh: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$BCT" ] || { echo "run.sh: $BCT not built (deploy/build.sh)" >&2; exit 2; }
[ -d "$MODEL" ] && [ -f "$DEV" ] || { echo "run.sh: needs $MODEL and $DEV" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bct-load.XXXXXX")
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

tail -n +2 "$DEV" | cut -f1 | jq -R -c '{inputs: .}' > "$WORK/bodies.jsonl"

start_server() {
    "$BCT" serve --model "$MODEL" --host 127.0.0.1 --port 0 --port-file "$WORK/port" \
        --threads "$THREADS" --access-log off --queue-size 4096 "${EXTRA[@]}" 2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        [ -s "$WORK/port" ] && curl -sf "http://127.0.0.1:$(cat "$WORK/port")/ready" >/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
        sleep 0.1
    done
    URL="http://127.0.0.1:$(cat "$WORK/port")"
}

# run_wrk CONCURRENCY SECONDS: prints the RESULT line's key=value pairs.
run_wrk() {
    local c=$1 threads=1
    [ "$c" -ge 8 ] && threads=2
    wrk -t "$threads" -c "$c" -d "${2}s" --timeout 30s -s "$ROOT/tests/load/classify.lua" \
        "$URL" -- "$WORK/bodies.jsonl" /classify | grep '^RESULT' | cut -d' ' -f2-
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }

if [ "$SOAK" = 1 ]; then
    start_server
    echo "soak: ${SOAK_MINUTES} min at concurrency 64 against $URL"
    r=$(run_wrk 64 60)
    warm=$(rss_kb)
    echo "warm-up: $(field "$r" rps) req/s, RSS ${warm} kB"
    r=$(run_wrk 64 $((SOAK_MINUTES * 60 - 60)))
    end=$(rss_kb)
    growth=$(awk -v a="$warm" -v b="$end" 'BEGIN { printf "%.2f", (b - a) * 100 / a }')
    bad=$(( $(field "$r" non2xx) + $(field "$r" errors) ))
    {
        echo "# bct serve soak test"
        echo
        echo "$(date -u +%FT%TZ), $(nproc) CPUs, model $(basename "$MODEL"), $THREADS workers, ${SOAK_MINUTES} min at concurrency 64"
        echo
        echo "| requests | req/s | p50 ms | p99 ms | non-2xx + errors | RSS after warm-up | RSS at end | growth |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
        echo "| $(field "$r" requests) | $(field "$r" rps) | $(field "$r" p50_ms) | $(field "$r" p99_ms) | $bad | ${warm} kB | ${end} kB | ${growth}% |"
    } > "$OUT"
    cat "$OUT"
    ok=$(awk -v g="$growth" -v b="$bad" 'BEGIN { print (g < 5 && b == 0) ? 1 : 0 }')
    [ "$ok" = 1 ] || { echo "soak: FAILED (non-2xx/errors $bad, RSS growth ${growth}%)" >&2; exit 1; }
    echo "soak: passed"
    exit 0
fi

# ---- offline: the engine alone, same parallelism as the server ----
# Prints "sentences/s CPU-us-per-sentence": wall-clock throughput of the
# parallel processes (their own timing, model loading excluded) and the
# CPU time they used (bash `time`, model loading included: ~2%).
offline() {
    local p rounds=10
    for p in $(seq "$THREADS"); do
        (
            TIMEFORMAT='%3U %3S'
            : > "$WORK/eval.$p"
            { time for _ in $(seq $rounds); do
                "$BCT" eval --model "$MODEL" --task sst2 --data "$DEV" --threads 1 --json >> "$WORK/eval.$p"
            done; } 2> "$WORK/cpu.$p"
        ) &
    done
    wait
    local n s cpu
    n=$(cat "$WORK"/eval.* | jq -s 'map(.n) | add')
    # Sentences/s summed over processes: each process's n / its seconds.
    s=$(for p in $(seq "$THREADS"); do jq -s '(map(.n) | add) / (map(.seconds) | add)' "$WORK/eval.$p"; done |
        awk '{ t += $1 } END { printf "%.1f", t }')
    cpu=$(cat "$WORK"/cpu.* | awk -v n="$n" '{ t += $1 + $2 } END { printf "%.1f", t * 1e6 / n }')
    echo "$s $cpu"
}
# server_cpu_s: user + system CPU seconds the server has used so far.
server_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' \
        "/proc/$SERVER_PID/stat"
}
echo "offline engine throughput ($THREADS processes x 1 thread)..."
read -r OFFLINE_BEFORE CPU_BEFORE <<< "$(offline)"
echo "  $OFFLINE_BEFORE sentences/s, $CPU_BEFORE CPU us/sentence"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

start_server
run_wrk 8 2 > /dev/null # warm-up
{
    echo "# bct serve load test"
    echo
    echo "$(date -u +%FT%TZ); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); model $(basename "$MODEL"); $THREADS workers; wrk on the same machine; ${DURATION} s per row; single-sentence POST /classify, SST-2 dev sentences."
    echo
} > "$OUT"
rows=()
for c in 1 8 64; do
    echo "concurrency $c..."
    cpu0=$(server_cpu_s)
    r=$(run_wrk "$c" "$DURATION")
    cpu1=$(server_cpu_s)
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(field "$r" requests)" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')
    rows+=("$c cpu_us=$cpu_us $r")
done
curl -s "$URL/metrics" | grep -E '^bct_(batch_size|batch_tokens)_(sum|count)|^bct_inputs_total' > "$WORK/metrics"
kill -TERM "$SERVER_PID" && wait "$SERVER_PID" || true
SERVER_PID=
echo "offline engine throughput again..."
read -r OFFLINE_AFTER CPU_AFTER <<< "$(offline)"
echo "  $OFFLINE_AFTER sentences/s, $CPU_AFTER CPU us/sentence"
# The larger throughput and the smaller CPU cost: ratios err on the low side.
OFFLINE=$(awk -v a="$OFFLINE_BEFORE" -v b="$OFFLINE_AFTER" 'BEGIN { print (a > b) ? a : b }')
CPU_OFF=$(awk -v a="$CPU_BEFORE" -v b="$CPU_AFTER" 'BEGIN { print (a < b) ? a : b }')
{
    echo "Offline engine (\`bct eval\` on the same sentences, $THREADS processes x 1 BLAS thread, batches of 32), measured before and after the HTTP runs: $OFFLINE_BEFORE and $OFFLINE_AFTER sentences/s, $CPU_BEFORE and $CPU_AFTER CPU µs per sentence. Ratios use the better of each: **$OFFLINE sentences/s**, **$CPU_OFF µs**. Load average at the start: $LOAD_BEFORE (other work on the machine makes the wall-clock ratio noisy; the CPU ratio is not affected by it)."
    echo
    echo "| concurrency | req/s | % of offline req/s | server CPU µs/request | engine CPU ÷ server CPU | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for row in "${rows[@]}"; do
        c=${row%% *}; r=${row#* }
        pct=$(awk -v a="$(field "$r" rps)" -v b="$OFFLINE" 'BEGIN { printf "%.0f%%", a * 100 / b }')
        eff=$(awk -v a="$CPU_OFF" -v b="$(field "$r" cpu_us)" 'BEGIN { printf "%.0f%%", a * 100 / b }')
        echo "| $c | $(field "$r" rps) | $pct | $(field "$r" cpu_us) | $eff | $(field "$r" p50_ms) | $(field "$r" p90_ms) | $(field "$r" p99_ms) | $(field "$r" non2xx) | $(field "$r" errors) |"
    done
} >> "$OUT"
{
    echo
    echo "Server batches during the run (from /metrics):"
    echo
    echo '```'
    cat "$WORK/metrics"
    echo '```'
    echo
    echo "Flags: ${EXTRA[*]:-(defaults)}"
} >> "$OUT"
cat "$OUT"
