#!/usr/bin/env bash
# Model control on the bundled model (runs in a bare clone):
# POST /admin/models/{name}/unload and /load act on store entries without
# deleting files; a second replica following the store converges; the
# unload survives a restart.  Also (issue 17, items 9 and 10): an
# unauthenticated upload is answered 401 as soon as its headers are in, and
# closed; a %00 in a model name is refused; /load leaves the HTTP thread
# free (/health answers while a model loads).
. "$(dirname "$0")/lib.sh"
need_tools
new_store
cp "$STORE/sst2-tiny.bct" "$STORE/copy.bct"
start_admin --default-model sst2-tiny --store-rescan-s 1
ADMIN_URL=$URL
ADMIN_PID=$SERVER_PID
# A second replica on the same store, without the admin API.
SERVER_PID=
launch_server --model-store "$STORE" --default-model sst2-tiny --store-rescan-s 1 --threads 1
wait_until "/ready of the replica" is_ready
REPLICA_URL=$URL
REPLICA_PID=$SERVER_PID
EXTRA_PIDS+=($REPLICA_PID)
SERVER_PID=$ADMIN_PID
URL=$ADMIN_URL

has_model() { # has_model URL NAME: NAME is in URL's /models
    curl -s --max-time 10 "$1/models" | jq -e --arg n "$2" '.models | map(.name) | index($n) != null' > /dev/null
}
lacks_model() { ! has_model "$@"; }

check "copy served by the admin replica" has_model "$ADMIN_URL" copy
wait_until "copy served by the other replica" has_model "$REPLICA_URL" copy

# ---- unload ----
req POST /admin/models/copy/unload
expect_error 401 Unauthorized "unload without a token"
req POST /admin/models/copy/unload "${AUTH[@]}"
check_eq "unload: 200" 200 "$STATUS"
check_eq "unload: was loaded" true "$(echo "$BODY" | jq .was_loaded)"
check "unloaded here at once" lacks_model "$ADMIN_URL" copy
check "its file is kept" test -f "$STORE/copy.bct"
wait_until "the other replica unloads it" lacks_model "$REPLICA_URL" copy
pass=$((pass + 1))
req GET /models/copy
check_eq "/models/copy after unload: 503" 503 "$STATUS"
check_eq "/models/copy: not_loaded" not_loaded "$(echo "$BODY" | jq -r .state)"
post /classify '{"inputs": "fine", "model": "copy"}'
expect_error 404 ModelNotFound "classify with an unloaded model"
req POST /admin/models/sst2-tiny/unload "${AUTH[@]}"
expect_error 409 Conflict "unload the default model"
req POST /admin/models/nope/unload "${AUTH[@]}"
expect_error 404 ModelNotFound "unload an unknown model"
req GET /admin/models/copy/unload "${AUTH[@]}"
expect_error 405 MethodNotAllowed "GET on unload"

# ---- the unload survives a restart ----
stop_server TERM
start_admin --default-model sst2-tiny --store-rescan-s 1
check "still unloaded after a restart" lacks_model "$URL" copy

# ---- load ----
req POST /admin/models/copy/load "${AUTH[@]}"
check_eq "load: 200" 200 "$STATUS"
check_eq "load: version" 1 "$(echo "$BODY" | jq .version)"
check "loaded here at once" has_model "$URL" copy
post /classify '{"inputs": "fine", "model": "copy"}'
check_eq "classify with the loaded model" 200 "$STATUS"
wait_until "the other replica loads it again" has_model "$REPLICA_URL" copy
pass=$((pass + 1))
req POST /admin/models/nope/load "${AUTH[@]}"
expect_error 404 ModelNotFound "load an unknown model"
# the same through `bct admin`
out=$("$BCT" admin unload --server "$URL" --token "$TOKEN" copy)
check_contains "bct admin unload" '"unloaded":"copy"' "$out"
check "bct admin unload: gone" lacks_model "$URL" copy
out=$("$BCT" admin load --server "$URL" --token "$TOKEN" copy)
check_contains "bct admin load" '"loaded":"copy"' "$out"
check "bct admin load: back" has_model "$URL" copy
if "$BCT" admin unload --server "$URL" --token "$TOKEN" sst2-tiny 2>/dev/null; then fail "bct admin unload of the default succeeded"; fi
pass=$((pass + 1))

# ---- %00 in a model name (issue 17, item 10) ----
req DELETE '/admin/models/copy%00x' "${AUTH[@]}"
expect_error 400 BadRequest "DELETE with %00 in the name"
check "copy was not deleted" test -f "$STORE/copy.bct"
check "copy still served" has_model "$URL" copy

printf 'copy\0evil' > "$WORK/nul-name"
req POST /admin/compress "${AUTH[@]}" -F "name=<$WORK/nul-name" -F "config=@$CKPT/config.json" \
    -F "weights=@$CKPT/model.safetensors" -F "vocab=@$CKPT/vocab.txt"
expect_error 422 Validation "an upload whose name field holds a NUL"
check_contains "the NUL is named" "NUL" "$BODY"

# ---- an unauthenticated upload is answered from its headers (issue 17, item 9) ----
port=${URL##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
printf 'POST /admin/compress HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000000\r\n\r\n' >&3
answer=$(timeout 20 cat <&3)
exec 3<&- 3>&-
check_contains "401 before the body" "HTTP/1.1 401" "$answer"
check_contains "and the connection closed" "Unauthorized" "$answer"
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
printf 'POST /admin/compress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 1000000000\r\n\r\n' >&3
answer=$(timeout 20 cat <&3)
exec 3<&- 3>&-
check_contains "403 before the body" "HTTP/1.1 403" "$answer"
server_alive || fail "the admin server died"
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"

# ---- /load runs off the HTTP thread: the server answers while a model loads ----
# "slow" is a checkpoint folder whose weights are a FIFO, so that loading
# it blocks in open() until the test writes to it: a load as long as the
# test wants.  Unloaded from the start (else start-up would load it), and
# no store watcher (it would load it too once /load lifts the marker).
kill -KILL "$REPLICA_PID" 2>/dev/null
wait "$REPLICA_PID" 2>/dev/null
new_store
mkdir -p "$STORE/slow" "$STORE/.unloaded"
cp "$CKPT/config.json" "$CKPT/vocab.txt" "$STORE/slow/"
mkfifo "$STORE/slow/model.safetensors"
: > "$STORE/.unloaded/slow"
start_admin --default-model sst2-tiny --store-rescan-s 0
check "slow: not loaded at start" lacks_model "$URL" slow
curl -s --max-time 300 -o "$WORK/load.json" -w '%{http_code}' "${AUTH[@]}" -X POST \
    "$URL/admin/models/slow/load" > "$WORK/load.status" &
LOADER=$!
EXTRA_PIDS+=($LOADER)
marker_gone() { [ ! -e "$STORE/.unloaded/slow" ]; }
wait_until "the load to start (its marker lifted)" marker_gone
for i in 1 2 3 4 5; do
    req GET /health --max-time 10
    check_eq "/health during the load ($i)" 200 "$STATUS"
done
post /classify '{"inputs": "a charming and often affecting journey"}' --max-time 10
check_eq "classify during the load" 200 "$STATUS"
req GET /models/slow --max-time 10
check_eq "/models/slow during the load: not loaded yet" 503 "$STATUS"
kill -0 "$LOADER" 2>/dev/null || fail "the load answered before its weights could be read: $(cat "$WORK/load.status")"
# Let the load go on: the real weights through the FIFO.  The loader wants
# a regular file (it maps it), so this load fails; whatever it answers,
# it answers with JSON.
timeout 60 cat "$CKPT/model.safetensors" > "$STORE/slow/model.safetensors" 2>/dev/null || true
wait "$LOADER"
code=$(cat "$WORK/load.status")
case "$code" in 200 | 4?? | 5??) ;; *) fail "the blocked load answered [$code]" ;; esac
jqe . "$WORK/load.json" || fail "the blocked load's answer is not JSON"
pass=$((pass + 1))
rm -f "$STORE/slow/model.safetensors"
cp "$CKPT/model.safetensors" "$STORE/slow/"
req POST /admin/models/slow/load "${AUTH[@]}"
check_eq "load of the real file: 200" 200 "$STATUS"
check "slow: served" has_model "$URL" slow
post /classify '{"inputs": "a charming and often affecting journey", "model": "slow"}'
check_eq "classify with slow" 200 "$STATUS"
server_alive || fail "the admin server died"
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"
done_ok
