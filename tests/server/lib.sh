# Helpers for the server integration tests: start `bct serve` on a free
# loopback port, talk to it with curl, stop it.  Sources tests/cli/lib.sh
# for check/check_eq/check_contains/need_shared/done_ok.
#
# Every wait polls with a generous deadline (a loaded 2-core machine, or
# an ASan build, can be slow); none relies on a fixed sleep.
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"

case "$BCT" in /*) ;; *) BCT=$PWD/$BCT ;; esac
MRPC=$SHARED/models/mrpc-bert-mini-scratch
SST2_DEV=$SHARED/data/glue/SST-2/dev.tsv
# A model for tests that need one but no reference data: ../shared's tiny
# checkpoint when present, else the bundled compressed model (a bare clone).
BUNDLED=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/models/sst2-tiny.bct
if [ -d "$TINY" ]; then SERVE_MODEL=$TINY; else SERVE_MODEL=$BUNDLED; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bct-server-test.XXXXXX")
mkdir -p "$WORK/par"
SERVER_PID=
URL=
STATUS=
BODY=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

need_tools() {
    command -v curl >/dev/null || { echo "skipped: curl not installed"; exit 77; }
    command -v jq >/dev/null || { echo "skipped: jq not installed"; exit 77; }
}

# Shows the server log when a check fails, then exits.
fail() {
    echo "FAIL: $*" >&2
    if [ -f "$WORK/server.log" ]; then
        echo "--- server log (last 40 lines) ---" >&2
        tail -n 40 "$WORK/server.log" >&2
    fi
    exit 1
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null; }
port_known() {
    server_alive || fail "server exited during start-up"
    [ -s "$WORK/port" ]
}
is_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL/ready")" = 200 ]; }

# launch_server [bct serve flags...]: port 0 + --port-file, access log in
# $WORK/access.log, server log in $WORK/server.log; returns once it listens.
launch_server() {
    rm -f "$WORK/port"
    : > "$WORK/access.log"
    "$BCT" serve --host 127.0.0.1 --port 0 --port-file "$WORK/port" \
        --access-log "$WORK/access.log" "$@" 2>>"$WORK/server.log" &
    SERVER_PID=$!
    wait_until "port file" port_known
    URL="http://127.0.0.1:$(cat "$WORK/port")"
}
# start_server [bct serve flags...]: launch_server, then wait for /ready.
start_server() {
    launch_server "$@"
    wait_until "/ready" is_ready
}

# stop_server [SIGNAL]: signals the server, waits; sets SERVER_RC.
stop_server() {
    kill "-${1:-TERM}" "$SERVER_PID"
    wait "$SERVER_PID"
    SERVER_RC=$?
    SERVER_PID=
}

# req METHOD PATH [curl args...]: sets STATUS and BODY; headers in $WORK/headers.
req() {
    local method=$1 path=$2 how
    shift 2
    # curl -X HEAD would wait for the body that Content-Length announces.
    if [ "$method" = HEAD ]; then how=-I; else how="-X$method"; fi
    STATUS=$(curl -s --max-time 60 "$how" -o "$WORK/body" -D "$WORK/headers" \
        -w '%{http_code}' "$@" "$URL$path") || true
    BODY=$(cat "$WORK/body" 2>/dev/null)
}

# post PATH JSON [curl args...]: a JSON POST.
post() {
    local path=$1 json=$2; shift 2
    req POST "$path" -H 'Content-Type: application/json' --data-binary "$json" "$@"
}

header() { # header NAME: value of a response header of the last req
    grep -i "^$1:" "$WORK/headers" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

# metric NAME [LABELS]: the value of one series from /metrics (0 if absent).
metric() {
    local line
    line=$(curl -s --max-time 10 "$URL/metrics" | grep -F "$1${2:-} " | grep -v '^#' | head -1)
    echo "${line##* }" | awk '{ printf "%d\n", $1 + 0 }'
}

# expect_error STATUS TYPE DESCRIPTION: checks the last response.
expect_error() {
    check_eq "$3: status" "$1" "$STATUS"
    check_eq "$3: error_type" "$2" "$(echo "$BODY" | jq -r .error_type)"
    local msg
    msg=$(echo "$BODY" | jq -r '.error | strings')
    [ -n "$msg" ] || fail "$3: no error message in [$BODY]"
    case "$(header Content-Type)" in application/json*) ;; *) fail "$3: error is not JSON" ;; esac
}

# close_to A B [TOL]: |A - B| <= TOL (default 1e-4).
close_to() { awk -v a="$1" -v b="$2" -v t="${3:-1e-4}" 'BEGIN { d = a - b; exit !(d <= t && -d <= t) }'; }

# ---- checkpoints: trained ones from ../shared, else random ones ----
# Tests that need a checkpoint directory but no trained answer run on
# ../shared's models when present, else (a bare clone) on random-weight
# checkpoints of the same shapes written by `bct bench --keep`, with
# random "tokN" sentences (their vocabulary) instead of SST-2's and
# references computed by `bct eval` instead of PyTorch's.  Checks of a
# trained model's answers stay behind `trained`.
trained() { [ -d "$TINY" ]; }

# need_ckpts: SST_CK (single sentences: ../shared's tiny SST-2 model, or a
# random one) and PAIR_CK (MRPC's mini model, or a random one of its
# shape and labels).
need_sst_ckpt() {
    if trained; then SST_CK=$TINY; else
        SST_CK=$WORK/sst-ck
        [ -d "$SST_CK" ] || random_ckpt "$SST_CK"
    fi
}
need_ckpts() {
    need_sst_ckpt
    if [ -d "$MRPC" ]; then PAIR_CK=$MRPC; else
        PAIR_CK=$WORK/pair-ck
        if [ ! -d "$PAIR_CK" ]; then
            random_ckpt "$PAIR_CK" $MINI_SHAPE
            jq -c '.id2label = {"0": "not_equivalent", "1": "equivalent"}' "$PAIR_CK/config.json" > "$WORK/cfg.json" &&
                mv "$WORK/cfg.json" "$PAIR_CK/config.json"
        fi
    fi
}
# The shape of ../shared's mini models (sst2-bert-mini-scratch, MRPC's).
MINI_SHAPE="--layers 4 --hidden 256 --heads 4 --intermediate 1024"

# random_sentences N [SEED]: N lines of 3 to 24 "tokN" words.
random_sentences() {
    awk -v n="$1" -v seed="${2:-7}" 'BEGIN { srand(seed); for (i = 0; i < n; i++) {
        k = 3 + int(rand() * 22); s = ""
        for (j = 0; j < k; j++) s = s (j ? " " : "") "tok" (5 + int(rand() * 30000))
        print s } }'
}

# dev_sentences N: the first N SST-2 dev sentences, one per line (random
# ones in a bare clone).
dev_sentences() {
    if trained; then tail -n +2 "$SST2_DEV" | head -n "$1" | cut -f1; else random_sentences "$1"; fi
}

# ref_logits N: the reference logits of dev_sentences N on SST_CK: PyTorch's
# (../shared), else `bct eval`'s.
ref_logits() {
    if trained; then head -n "$1" "$TINY/ref_dev_logits.tsv"; return; fi
    need_ckpts
    { echo "sentence	label"; dev_sentences "$1" | sed 's/$/	0/'; } > "$WORK/ref_in.tsv"
    "$BCT" eval --model "$SST_CK" --task sst2 --data "$WORK/ref_in.tsv" --threads 1 \
        --dump-logits "$WORK/ref_out.tsv" > /dev/null || fail "bct eval for reference logits"
    cat "$WORK/ref_out.tsv"
}

# parallel_post PATH: POSTs every $WORK/par/b*.json at once (one curl,
# --parallel); answers land in o*.json, "status file" lines in $WORK/status.
parallel_post() {
    local cfg=$WORK/par.cfg f i
    : > "$cfg"
    for f in "$WORK"/par/b*.json; do
        i=${f##*/b}; i=${i%.json}
        [ -s "$cfg" ] && echo next >> "$cfg"
        printf 'silent\nurl = "%s%s"\nheader = "Content-Type: application/json"\ndata-binary = "@%s"\noutput = "%s/par/o%s.json"\nwrite-out = "%%{http_code} %s\\n"\n' \
            "$URL" "$1" "$f" "$WORK" "$i" "$i" >> "$cfg"
    done
    curl -s -Z --parallel-immediate --parallel-max 64 --max-time 120 -K "$cfg" \
        > "$WORK/status" 2> "$WORK/curl.err"
}
all_200() { # all_200 COUNT DESCRIPTION
    check_eq "$2: answers" "$1" "$(wc -l < "$WORK/status")"
    check_eq "$2: all 200" "$1" "$(grep -c '^200 ' "$WORK/status")"
}
# logits_of FILE [MODEL]: the logits (label id order) of each input of an
# answer with raw scores, one TAB-separated row per input.
logits_of() {
    local labels
    labels=$(curl -s "$URL/models" | jq -c --arg m "${2:-sst2-bert-tiny-scratch}" \
        '.models[] | select(.name == $m) | .labels')
    jq -r --argjson L "$labels" 'if (.[0] | type) == "object" then [.] else . end | .[]
           | (map({(.label): .score}) | add) as $s | [$L[] | $s[.]] | @tsv' "$1"
}
compare_rows() { # compare_rows GOT REF DESCRIPTION: same logits, row by row
    paste "$1" "$2" | awk -F'\t' '
        { for (i = 1; i <= 2; i++) { d = $i - $(i + 2); if (d < 0) d = -d; if (d > 1e-4) bad = 1 } }
        END { exit bad || NR == 0 }' || fail "$3: logits differ from the reference"
    pass=$((pass + 1))
}
