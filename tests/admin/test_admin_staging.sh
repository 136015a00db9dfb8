#!/usr/bin/env bash
# Issue 17 (3): the admin replica used to empty admin_staging_dir at start
# with no check: set to the model store, or to a folder of other files, it
# deleted them, and a symlinked .staging had its target emptied.  Now only
# upload folders bct made (up-*, with its marker) are deleted, and a
# staging dir that is a symlink, the store itself, or holds anything else
# stops the start with a message naming it.
. "$(dirname "$0")/lib.sh"
need_tools

new_store
# serve_exit [flags...]: runs the admin server expecting it to refuse; its exit code.
serve_exit() {
    "$BCT" serve --host 127.0.0.1 --port 0 --model-store "$STORE" --admin-token "$TOKEN" --threads 1 \
        "$@" 2> "$WORK/refused.log" &
    local pid=$! i
    for i in $(seq 1 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $pid 2>/dev/null; then kill -KILL $pid; wait $pid; echo running; return; fi
    wait $pid
    echo $?
}

# ---- the store as staging dir: refused, nothing deleted ----
check_eq "staging = store: refused" 1 "$(serve_exit --admin-staging-dir "$STORE")"
check "staging = store: the model is still there" test -s "$STORE/sst2-tiny.bct"
check_contains "staging = store: says why" "is the model store" "$(cat "$WORK/refused.log")"

# ---- a folder of unrelated files: refused, nothing deleted ----
mkdir -p "$WORK/mine/sub"
echo precious > "$WORK/mine/notes.txt"
echo precious > "$WORK/mine/sub/more.txt"
check_eq "foreign files: refused" 1 "$(serve_exit --admin-staging-dir "$WORK/mine")"
check "foreign files: kept" test -s "$WORK/mine/notes.txt"
check "foreign files: kept (sub-folder)" test -s "$WORK/mine/sub/more.txt"
check_contains "foreign files: names one" "which bct did not create" "$(cat "$WORK/refused.log")"

# ---- a symlinked .staging: refused, its target untouched ----
ln -s "$WORK/mine" "$STORE/.staging"
check_eq "symlinked .staging: refused" 1 "$(serve_exit)"
check "symlinked .staging: target kept" test -s "$WORK/mine/notes.txt"
check_contains "symlinked .staging: says why" "symlink" "$(cat "$WORK/refused.log")"
rm "$STORE/.staging"

# ---- bct's own leftovers are removed, and uploads still work ----
mkdir -p "$STORE/.staging/up-AbC123" "$STORE/.staging/up-Empty1"
touch "$STORE/.staging/up-AbC123/.bct-upload" "$STORE/.staging/up-AbC123/model.safetensors"
start_admin
check "leftover upload folder removed" test ! -e "$STORE/.staging/up-AbC123"
check "empty upload folder removed" test ! -e "$STORE/.staging/up-Empty1"
upload fresh "$CKPT"
check_eq "upload: 202" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "upload: succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
check_eq "staging is empty after the job" "" "$(ls -A "$STORE/.staging")"
stop_server
check_eq "clean exit" 0 "$SERVER_RC"
done_ok
