#!/usr/bin/env bash
# Load test of `bct serve` with wrk (not run in CI).
#
#   tests/load/run.sh [--bct PATH] [--model PATH] [--server-cpus LIST]
#                     [--client-cpus LIST] [--duration S] [--out FILE]
#                     [-- extra bct serve flags]
#   tests/load/run.sh --soak [--soak-minutes M] ...
#
# Default mode, in one run: the server's throughput and p50 / p90 / p99
# latency at concurrency 1, 8 and 64 for single-sentence POST /classify
# requests (the SST-2 dev sentences), and `bct bench --data` on the same
# sentences, model, CPUs and thread count at the batch size the server
# formed at concurrency 64 (the "matching batch size", read from
# /metrics) and at batch 1.  Writes a markdown report (default
# build/load-report.md) with HTTP / offline at 64 (target >= 85%) and
# p50 at 1 against offline batch-1 latency (target <= + 1 ms).
#
# The server (and the offline bench) run pinned to --server-cpus, wrk to
# --client-cpus (default: the first half of the CPUs and the rest), so
# the load generator's own CPU time does not count against the server;
# the server gets one worker thread per server CPU.  On a 1-CPU machine
# both share it (the report says so).
#
# --model: a .bct file or checkpoint directory (default: the bundled
# models/sst2-tiny.bct).
#
# --soak: concurrency 64 for M minutes (default 5); fails unless every
# answer is 2xx and the server's RSS (from /proc) grew less than 5% between
# the end of the first minute (warm-up) and the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BCT=$ROOT/build/bct
SHARED=${BCT_SHARED_DIR:-$ROOT/../shared}
MODEL=$ROOT/models/sst2-tiny.bct
DEV=$SHARED/data/glue/SST-2/dev.tsv
DURATION=10
OUT=$ROOT/build/load-report.md
SOAK=0
SOAK_MINUTES=5
SERVER_CPUS=
CLIENT_CPUS=
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
    --bct) BCT=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --server-cpus) SERVER_CPUS=$2; shift 2 ;;
    --client-cpus) CLIENT_CPUS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --soak) SOAK=1; shift ;;
    --soak-minutes) SOAK_MINUTES=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in wrk jq curl taskset; do
    command -v $tool >/dev/null || { echo "run.sh: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$BCT" ] || { echo "run.sh: $BCT not built (deploy/build.sh)" >&2; exit 2; }
[ -e "$MODEL" ] && [ -f "$DEV" ] || { echo "run.sh: needs $MODEL and $DEV" >&2; exit 2; }

NCPU=$(nproc)
if [ -z "$SERVER_CPUS" ]; then
    if [ "$NCPU" -ge 2 ]; then
        SERVER_CPUS=0-$((NCPU / 2 - 1))
        CLIENT_CPUS=${CLIENT_CPUS:-$((NCPU / 2))-$((NCPU - 1))}
    else
        SERVER_CPUS=0
    fi
fi
CLIENT_CPUS=${CLIENT_CPUS:-$SERVER_CPUS}
# Worker threads = CPUs in SERVER_CPUS (a list like 0-3,6).
THREADS=$(taskset -c "$SERVER_CPUS" nproc)
CLIENT_THREADS=$(taskset -c "$CLIENT_CPUS" nproc)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bct-load.XXXXXX")
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

tail -n +2 "$DEV" | cut -f1 > "$WORK/sentences.txt"
jq -R -c '{inputs: .}' < "$WORK/sentences.txt" > "$WORK/bodies.jsonl"

start_server() {
    taskset -c "$SERVER_CPUS" "$BCT" serve --model "$MODEL" --host 127.0.0.1 --port 0 --port-file "$WORK/port" \
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
    [ "$c" -ge 8 ] && threads=$CLIENT_THREADS
    taskset -c "$CLIENT_CPUS" wrk -t "$threads" -c "$c" -d "${2}s" --timeout 30s -s "$ROOT/tests/load/classify.lua" \
        "$URL" -- "$WORK/bodies.jsonl" /classify | grep '^RESULT' | cut -d' ' -f2-
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }
# batch_totals: "count sum" of the batch size histogram, from one scrape
# (two scrapes could straddle a batch).
batch_totals() {
    curl -s "$URL/metrics" | awk '$1 == "bct_batch_size_count" { n = $2 } $1 == "bct_batch_size_sum" { s = $2 }
                                  END { print n, s }'
}

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
        echo "$(date -u +%FT%TZ), $NCPU CPUs (server on $SERVER_CPUS, wrk on $CLIENT_CPUS), model $(basename "$MODEL"), $THREADS workers, ${SOAK_MINUTES} min at concurrency 64"
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

# offline BATCHES: `bct bench --data` on the server's CPUs with its thread
# count; prints "batch sentences_per_s ms_per_batch" lines.
offline() {
    taskset -c "$SERVER_CPUS" "$BCT" bench --model "$MODEL" --modes fp32 --data "$WORK/sentences.txt" \
        --batch "$1" --threads "$THREADS" --runs 7 --no-gemm --json 2>/dev/null |
        jq -r '.[] | select(.kind == "forward") | "\(.batch) \(.sentences_per_s) \(.ms_per_batch)"'
}
# server_cpu_s: user + system CPU seconds the server has used so far.
server_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' \
        "/proc/$SERVER_PID/stat"
}
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

start_server
run_wrk 8 2 > /dev/null # warm-up
rows=()
for c in 1 8 64; do
    echo "concurrency $c..."
    cpu0=$(server_cpu_s)
    read -r n0 s0 <<< "$(batch_totals)"
    r=$(run_wrk "$c" "$DURATION")
    read -r n1 s1 <<< "$(batch_totals)"
    cpu1=$(server_cpu_s)
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(field "$r" requests)" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')
    batch=$(awk -v a="$s1" -v b="$s0" -v m="$n1" -v k="$n0" 'BEGIN { printf "%.1f", (m > k) ? (a - b) / (m - k) : 0 }')
    rows+=("$c cpu_us=$cpu_us batch=$batch $r")
done
kill -TERM "$SERVER_PID" && wait "$SERVER_PID" || true
SERVER_PID=

# The matching batch size: the mean batch the server formed at 64.
B64=$(field "${rows[2]#* }" batch | awk '{ b = int($1 + 0.5); print (b < 1) ? 1 : b }')
echo "offline (bct bench --data, batch 1 and $B64, $THREADS thread(s) on CPUs $SERVER_CPUS)..."
offline "1,$B64" > "$WORK/offline.txt"
cat "$WORK/offline.txt"
OFF1_MS=$(awk '$1 == 1 { print $3 }' "$WORK/offline.txt")
OFF_SPS=$(awk -v b="$B64" '$1 == b { print $2 }' "$WORK/offline.txt")

{
    echo "# bct serve load test"
    echo
    echo "$(date -u +%FT%TZ); $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); load average at the start $LOAD_BEFORE."
    echo "Model $(basename "$MODEL"); server on CPUs $SERVER_CPUS with $THREADS worker thread(s); wrk on CPUs $CLIENT_CPUS$([ "$SERVER_CPUS" = "$CLIENT_CPUS" ] && echo " (shared: only one CPU)"); ${DURATION} s per row; single-sentence POST /classify, the $(wc -l < "$WORK/sentences.txt") SST-2 dev sentences in turn."
    echo
    echo "Offline: \`bct bench --model $(basename "$MODEL") --data <the same sentences> --batch 1,$B64 --threads $THREADS\` on CPUs $SERVER_CPUS, after the HTTP runs: batch $B64 (the server's mean batch at concurrency 64) **$(printf '%.1f' "$OFF_SPS") sentences/s**; batch 1 **$(printf '%.3f' "$OFF1_MS") ms** per sentence."
    echo
    echo "| concurrency | req/s | % of offline | mean batch | server CPU µs/request | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for row in "${rows[@]}"; do
        c=${row%% *}; r=${row#* }
        pct=$(awk -v a="$(field "$r" rps)" -v b="$OFF_SPS" 'BEGIN { printf "%.1f%%", a * 100 / b }')
        echo "| $c | $(field "$r" rps) | $pct | $(field "$r" batch) | $(field "$r" cpu_us) | $(field "$r" p50_ms) | $(field "$r" p90_ms) | $(field "$r" p99_ms) | $(field "$r" non2xx) | $(field "$r" errors) |"
    done
    r64=${rows[2]#* }; r1=${rows[0]#* }
    ratio=$(awk -v a="$(field "$r64" rps)" -v b="$OFF_SPS" 'BEGIN { printf "%.1f", a * 100 / b }')
    lat_ok=$(awk -v p="$(field "$r1" p50_ms)" -v o="$OFF1_MS" 'BEGIN { print (p <= o + 1) ? "met" : "NOT met" }')
    thr_ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 85) ? "met" : "NOT met" }')
    echo
    echo "- Throughput at concurrency 64: $ratio% of offline at batch $B64 (target >= 85%: $thr_ok)."
    echo "- p50 at concurrency 1: $(field "$r1" p50_ms) ms against offline batch-1 $(printf '%.3f' "$OFF1_MS") ms + 1 ms (target: $lat_ok)."
    echo
    echo "Flags: ${EXTRA[*]:-(defaults)}"
} > "$OUT"
cat "$OUT"
