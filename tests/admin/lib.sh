# Helpers for the admin API tests: a `bct serve` with the admin API on a
# model store in $WORK/store (a copy of the bundled models/sst2-tiny.bct),
# uploads with curl, job polling, background /classify traffic.  Sources
# tests/server/lib.sh (start_server, req, post, expect_error, ...).
. "$(dirname "${BASH_SOURCE[0]}")/../server/lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MINI=$SHARED/models/sst2-bert-mini-scratch
# Checkpoints to upload: ../shared's tiny one (CKPT) and mini one (MINI,
# for slow jobs), or (a bare clone) random-weight ones of the same shapes
# from `bct bench`'s generator (server/lib.sh: random_ckpt).  Tests that
# check a trained model's answers keep those checks behind `trained`.
need_sst_ckpt
CKPT=$SST_CK
# need_mini: MINI is ../shared's mini checkpoint, or a random one of its shape.
need_mini() {
    [ -d "$MINI" ] && return
    MINI=$WORK/mini-ck
    [ -d "$MINI" ] || random_ckpt "$MINI" $MINI_SHAPE
}
STORE=$WORK/store
TOKEN=test-admin-token-5f1c2e9a
AUTH=(-H "Authorization: Bearer $TOKEN")
EXTRA_PIDS=()   # background loops, killed on exit

cleanup_admin() {
    local p
    for p in "${EXTRA_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    cleanup
}
trap cleanup_admin EXIT

new_store() {
    rm -rf "$STORE"
    mkdir -p "$STORE"
    cp "$ROOT/models/sst2-tiny.bct" "$STORE/"
}

# start_admin [flags...]: the server on $STORE with the admin API on.
start_admin() { start_server --model-store "$STORE" --admin-token "$TOKEN" --threads 2 "$@"; }

# upload NAME DIR [curl args...]: POST /admin/compress with DIR's
# config.json, model.safetensors and vocab.txt; sets STATUS and BODY.
upload() {
    local name=$1 dir=$2
    shift 2
    req POST /admin/compress "${AUTH[@]}" -F "name=$name" -F "config=@$dir/config.json" \
        -F "weights=@$dir/model.safetensors" -F "vocab=@$dir/vocab.txt" "$@"
}

# job ID: GET /admin/jobs/ID into $WORK/job.json; prints its state.
job() {
    curl -s --max-time 30 "${AUTH[@]}" -o "$WORK/job.json" "$URL/admin/jobs/$1" || true
    jq -r '.state // "?"' "$WORK/job.json" 2>/dev/null || echo "?"
}
job_ended() { case "$(job "$1")" in succeeded | failed) return 0 ;; *) return 1 ;; esac }
# wait_job ID: until it succeeded or failed; $WORK/job.json holds it.
wait_job() { wait_until "job $1 to end" job_ended "$1"; }

# expect_message SUBSTRING DESCRIPTION: the last error answer says it.
expect_message() { check_contains "$2: message" "$1" "$(echo "$BODY" | jq -r .error)"; }

jqe() { jq -e "$@" > /dev/null; }

# still_serving DESCRIPTION: the default model answers.
still_serving() {
    post /classify '{"inputs": "a charming and often affecting journey"}'
    check_eq "$1: still serving" 200 "$STATUS"
}

# start_traffic TAG MODEL: /classify requests for MODEL, one after the
# other, until $WORK/stop-TAG exists (at most 20000); one status code per
# line in $WORK/traffic-TAG.  Runs in the background; its pid in $TRAFFIC.
start_traffic() {
    : > "$WORK/traffic-$1"
    rm -f "$WORK/stop-$1"
    traffic "$@" &
    TRAFFIC=$!
    EXTRA_PIDS+=($TRAFFIC)
}
traffic() {
    local tag=$1 body i code
    body=$(jq -cn --arg m "$2" '{inputs: ["a charming and often affecting journey", "dull"], model: $m}')
    for ((i = 0; i < 20000; i++)); do
        [ -e "$WORK/stop-$tag" ] && break
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
            --data-binary "$body" "$URL/classify") || true
        echo "$code" >> "$WORK/traffic-$tag"
    done
}
traffic_count() { wc -l < "$WORK/traffic-$1"; }
traffic_at_least() { [ "$(traffic_count "$1")" -ge "$2" ]; }
# stop_traffic TAG PID: stops the loop, then every request must be 200.
stop_traffic() {
    touch "$WORK/stop-$1"
    wait "$2"
    local n ok
    n=$(traffic_count "$1")
    ok=$(grep -c '^200$' "$WORK/traffic-$1" || true)
    echo "traffic $1: $n requests, $ok answered 200"
    [ "$n" -gt 0 ] || fail "traffic $1: no requests were sent"
    check_eq "traffic $1: every request answered 200" "$n" "$ok"
}

# argmax_agree GOT REF DESCRIPTION: rows of logits with the same argmax.
argmax_agree() {
    [ "$(wc -l < "$1")" = "$(wc -l < "$2")" ] || fail "$3: $(wc -l < "$1") rows vs $(wc -l < "$2")"
    paste "$1" "$2" | awk -F'\t' -v what="$3" '
        function am(from, to,   i, b) { b = from; for (i = from + 1; i <= to; i++) if ($i > $b) b = i; return b - from }
        { h = NF / 2; if (am(1, h) != am(h + 1, NF)) bad++ }
        END { if (bad) { printf "%s: %d of %d predictions differ\n", what, bad, NR > "/dev/stderr"; exit 1 } }' ||
        fail "$3"
    pass=$((pass + 1))
}
