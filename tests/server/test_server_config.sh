#!/usr/bin/env bash
# bct serve configuration: defaults file < BCT_* environment < flags,
# validation messages, model store rules, start-up failures.
. "$(dirname "$0")/lib.sh"
need_tools
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

# serve_fails EXPECTED_RC NEEDLE DESCRIPTION [args...]: bct serve must
# exit with EXPECTED_RC and say NEEDLE on stderr.
serve_fails() {
    local want=$1 needle=$2 what=$3; shift 3
    local out rc
    out=$(timeout 60 "$BCT" serve --port 0 --access-log off "$@" 2>&1 >/dev/null)
    rc=$?
    check_eq "$what: exit code" "$want" "$rc"
    check_contains "$what: message" "$needle" "$out"
}

# ---- --help documents every key of config/default.json ----
help=$("$BCT" serve --help) || fail "serve --help exit code"
check_contains "serve --help" "usage: bct serve" "$help"
for key in $(jq -r 'keys[]' "$ROOT/config/default.json"); do
    check_contains "--help lists $key" "\"$key\"" "$help"
    env=BCT_$(echo "$key" | tr a-z A-Z)
    check_contains "--help lists $env" "$env" "$help"
    grep -q "\`$key\`" "$ROOT/config/README.md" || fail "config/README.md does not document $key"
done

# ---- validation (exit 2, nothing started) ----
serve_fails 2 "no model to serve" "no model"
serve_fails 2 "port" "port out of range" --model /x --port 70000
serve_fails 2 "--max-batch-size" "non-numeric flag" --model /x --max-batch-size abc
BCT_THREADS=-1 serve_fails 2 "BCT_THREADS" "bad environment value" --model /x
BCT_LOG_LEVEL=loud serve_fails 2 "log_level" "bad log level" --model /x
serve_fails 2 "larger than queue_size" "max_inputs_per_request > queue_size" --model /x \
    --queue-size 4 --max-inputs-per-request 8
serve_fails 2 "max_batch_tokens" "max_batch_tokens < max_seq_len" --model /x \
    --max-batch-tokens 64 --max-seq-len 128
serve_fails 2 "unexpected argument" "stray argument" --model /x extra
serve_fails 2 "cannot open config file" "missing config file" --config "$WORK/nope.json"
echo '{"port": 8080, "prot": 1}' > "$WORK/unknown.json"
serve_fails 2 'unknown key "prot"' "unknown key in the file" --config "$WORK/unknown.json" --model /x
echo '{"port": "8080"}' > "$WORK/type.json"
serve_fails 2 "must be an integer" "string for an integer" --config "$WORK/type.json" --model /x
echo '{"threads": 1.5}' > "$WORK/frac.json"
serve_fails 2 "must be an integer" "fraction for an integer" --config "$WORK/frac.json" --model /x
echo '{"host": 5}' > "$WORK/host.json"
serve_fails 2 "must be a string" "number for a string" --config "$WORK/host.json" --model /x
echo '{"queue_size": 0}' > "$WORK/range.json"
serve_fails 2 "queue_size must be an integer in [1, " "out of range in the file" \
    --config "$WORK/range.json" --model /x
echo '{"port": 8080,' > "$WORK/broken.json"
serve_fails 2 "not valid JSON" "broken JSON" --config "$WORK/broken.json" --model /x
echo '[1]' > "$WORK/array.json"
serve_fails 2 "must be a JSON object" "not an object" --config "$WORK/array.json" --model /x

# ---- start-up failures (exit 1) ----
serve_fails 1 "/nonexistent" "missing model" --model /nonexistent
serve_fails 1 "is not loaded" "unknown default model" --model "$SERVE_MODEL" --default-model nope
mkdir -p "$WORK/empty"
serve_fails 1 "no models found" "empty model store" --model-store "$WORK/empty"
serve_fails 1 "model store" "missing model store" --model-store "$WORK/missing"
serve_fails 1 "resolve" "bad bind address" --model "$SERVE_MODEL" --host no.such.host.invalid

# ---- precedence: file < environment < flags ----
# Relative paths in a file are relative to the file, not to the cwd.
mkdir -p "$WORK/cfg/store"
ln -s "$SERVE_MODEL" "$WORK/cfg/store/tiny$([ -f "$SERVE_MODEL" ] && echo .bct)"
cat > "$WORK/cfg/server.json" <<'EOF'
{"model_store": "store", "queue_size": 100, "threads": 1, "max_inputs_per_request": 8}
EOF
capacity() { metric bct_queue_capacity; }
cd /
start_server --config "$WORK/cfg/server.json"
check_eq "file: queue_size" 100 "$(capacity)"
check_eq "file: threads" 1 "$(metric bct_workers)"
check_eq "file: model store relative to the file" tiny "$(curl -s "$URL/models" | jq -r .default)"
post /classify '{"inputs": ["1","2","3","4","5","6","7","8","9"]}'
check_eq "file: max_inputs_per_request" 413 "$STATUS"
stop_server
BCT_QUEUE_SIZE=200 BCT_THREADS=2 start_server --config "$WORK/cfg/server.json"
check_eq "env over file: queue_size" 200 "$(capacity)"
check_eq "env over file: threads" 2 "$(metric bct_workers)"
stop_server
BCT_QUEUE_SIZE=200 start_server --queue-size 300 --config "$WORK/cfg/server.json"
check_eq "flag over env over file (flag before --config)" 300 "$(capacity)"
stop_server
BCT_CONFIG=$WORK/cfg/server.json start_server
check_eq "BCT_CONFIG names the file" 100 "$(capacity)"
stop_server
cd "$ROOT"

# ---- config/default.json is valid and matches the built-in defaults ----
start_server --config "$ROOT/config/default.json" --model "$SERVE_MODEL"
check_eq "default.json: queue_size" "$(jq .queue_size config/default.json)" "$(capacity)"
check_eq "default.json: one worker per CPU" "$(nproc)" "$(metric bct_workers)"
check_eq "--model names the model after its folder (or file)" "$(basename "${SERVE_MODEL%.bct}")" \
    "$(curl -s "$URL/models" | jq -r .default)"
# Another server cannot take the same port.
port=${URL##*:}
out=$(timeout 60 "$BCT" serve --model "$SERVE_MODEL" --port "$port" --access-log off 2>&1 >/dev/null)
check_eq "port in use: exit code" 1 $?
check_contains "port in use: message" "cannot listen" "$out"
stop_server

# ---- max_connections ----
start_server --model "$SERVE_MODEL" --max-connections 2
port=${URL##*:}
# Two keep-alive connections, each known to be accepted (answered once).
for fd in 3 4; do
    eval "exec $fd<>/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
    printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&$fd
    IFS= read -r -t 30 line <&$fd || fail "no answer on connection $fd"
    check_contains "connection $fd answered" "200" "$line"
done
# A third connection waits (not accepted) for as long as both stay open.
req GET /health --max-time 2
check_eq "a third connection is not served while two are open" 000 "$STATUS"
exec 3<&- 3>&- 4<&- 4>&-
health_ok() { req GET /health; [ "$STATUS" = 200 ]; }
wait_until "connections free again" health_ok
pass=$((pass + 1))
stop_server

# ---- log level ----
: > "$WORK/server.log"
start_server --model "$SERVE_MODEL" --log-level warn
stop_server
grep -q '"level":"info"' "$WORK/server.log" && fail "log_level warn still printed info lines"
pass=$((pass + 1))
: > "$WORK/server.log"
start_server --model "$SERVE_MODEL" --access-log off
req GET /health
stop_server
check_eq "access_log off writes nothing" 0 "$(wc -c < "$WORK/access.log")"
done_ok
