#!/usr/bin/env bash
# A read-only model store: the admin server starts (the start-up clean-up
# of debris it cannot delete is not fatal), serves, answers uploads with
# 507 InsufficientStorage naming the cause ("Read-only file system")
# before reading them, refuses DELETE and unload with a 5xx, and leaves
# the store as it was.  Two ways to make it read-only:
#   real: a read-only bind mount in a mount namespace (`unshare -m`; needs
#         the privilege to mount, skipped without it);
#   shim: every write-class call on the store fails with EROFS (the shim,
#         BCT_FAULT_COUNT=0), which also reaches the compression job when
#         uploads are staged elsewhere (admin_staging_dir): the job fails
#         with the error, nothing is published.
. "$(dirname "$0")/lib.sh"

# The store: version 1, a second model, and debris of a crashed writer.
ro_store() {
    new_store
    cp "$ROOT/models/sst2-tiny.bct" "$STORE/zz-other.bct"
    mkdir -p "$STORE/.staging/up-AbC123"
    : > "$STORE/.staging/up-AbC123/.bct-upload"
    echo '{}' > "$STORE/.staging/up-AbC123/config.json"
    head -c 1000 "$ROOT/models/sst2-tiny.bct" > "$STORE/.job-1-1.bct"
    head -c 1000 "$ROOT/models/sst2-tiny.bct" > "$STORE/sst2-tiny.bct.tmp.AbC123"
    : > "$WORK/server.log"
}
listing() { (cd "$STORE" && find . -printf '%p %s\n' | sort && find . -type f -exec md5sum {} + | sort); }

# ro_checks MODE: the checks on a running server.
ro_checks() {
    local m=$1
    serving "$m: starts and serves" 1
    upload "$NAME" "$CK"
    if [ "$STATUS" = 202 ]; then
        # staged elsewhere: the job meets the read-only store
        wait_job "$(echo "$BODY" | jq -r .job_id)"
        check_eq "$m: the job fails" failed "$(jq -r .state "$WORK/job.json")"
        check_contains "$m: the job's error" "Read-only file system" "$(jq -r .error "$WORK/job.json")"
        check_contains "$m: the job's error names the file" "$STORE/.job-" "$(jq -r .error "$WORK/job.json")"
    else
        expect_error 507 InsufficientStorage "$m: upload"
        check_contains "$m: upload message" "Read-only file system" "$(echo "$BODY" | jq -r .error)"
    fi
    req DELETE /admin/models/zz-other "${AUTH[@]}"
    case "$STATUS" in 5??) pass=$((pass + 1)) ;; *) fail "$m: DELETE answered $STATUS: $BODY" ;; esac
    req POST /admin/models/zz-other/unload "${AUTH[@]}"
    case "$STATUS" in 5??) pass=$((pass + 1)) ;; *) fail "$m: unload answered $STATUS: $BODY" ;; esac
    post /classify '{"inputs": "fine", "model": "zz-other"}'
    check_eq "$m: the model it could not delete still serves" 200 "$STATUS"
    serving "$m: still serving" 1
    stop_server TERM
    check_eq "$m: clean exit" 0 "$SERVER_RC"
    check_eq "$m: the store is as it was" "$(cat "$WORK/before")" "$(listing)"
}

reset_store
start_admin
A1=$(answers)
stop_server TERM

# ---- real: a read-only bind mount ----
ro_store
listing > "$WORK/before"
if unshare -m sh -c 'mount --bind -o ro "$0" "$0" && ! touch "$0/.probe" 2>/dev/null' "$STORE" 2> /dev/null; then
    rm -f "$WORK/port"
    unshare -m sh -c 'mount --bind -o ro "$0" "$0" && exec "$@"' "$STORE" \
        "$BCT" serve --host 127.0.0.1 --port 0 --port-file "$WORK/port" --model-store "$STORE" \
        --admin-token "$TOKEN" --threads 1 --access-log "$WORK/access.log" 2>> "$WORK/server.log" &
    SERVER_PID=$!
    wait_until "port file" port_known
    URL="http://127.0.0.1:$(cat "$WORK/port")"
    wait_until "/ready" is_ready
    ro_checks "read-only mount"
    CASES=$((CASES + 1))
else
    echo "read-only mount: skipped (cannot mount in a namespace here)"
fi

# ---- shim: EROFS on every write-class call on the store ----
RO_ENV=(BCT_FAULT_PATH="$STORE*" BCT_FAULT_NTH=1 BCT_FAULT_COUNT=0 BCT_FAULT_ERRNO=EROFS
    BCT_FAULT_CALLS=open,openat,creat,write,pwrite,writev,fsync,fdatasync,ftruncate,fallocate,fchmod,rename,renameat,renameat2,link,linkat,mkdir,mkdirat,unlink,unlinkat,rmdir,mkstemp,mkostemp,mkdtemp)
ro_store
listing > "$WORK/before"
start_faulty "${RO_ENV[@]}"
ro_checks "EROFS shim"
CASES=$((CASES + 1))

# the same with uploads staged outside the store: the job meets it
ro_store
listing > "$WORK/before"
mkdir -p "$WORK/staging"
start_faulty "${RO_ENV[@]}" BCT_ADMIN_STAGING_DIR="$WORK/staging"
ro_checks "EROFS shim, staging elsewhere"
check_eq "staging elsewhere: emptied" "" "$(ls -A "$WORK/staging")"
CASES=$((CASES + 1))
echo "read-only store: $CASES setups"
done_ok
