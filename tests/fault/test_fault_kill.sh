#!/usr/bin/env bash
# kill -9 at every step of the upload -> compress -> publish path: the
# shim SIGKILLs the server instead of making the chosen call (every site
# of the counting run: its first and last call, all with
# BCT_FAULT_FULL=1), and once after the path's very last call.  Then:
# nothing partial under a final name in the store as the dead process
# left it; a restart (every store entry must load) serves version 1 or
# version 2 whole (2 only when the kill came after the publishing rename,
# 1 only when before), answering as that version does; no debris after
# the restart.
. "$(dirname "$0")/lib.sh"

count_sites
# The first call of the upload: calls before it (loading version 1 at
# start) are not on the path.
first=$(sed "s#$STORE#S#" "$WORK/count.log" | awk '$3 ~ /^S\/\.staging/ { print $1; exit }')
last_call=$(tail -1 "$WORK/count.log" | awk '{ print $2 }')
last_site=$(sed -e "s#$STORE#S#" -e 's#up-[A-Za-z0-9]\{6\}#up-*#g' "$WORK/count.log" | tail -1 | awk '{ print $3 }')

# running: the server process runs (kill -0 also succeeds on a zombie).
running() {
    local st
    st=$(cat "/proc/$SERVER_PID/stat" 2> /dev/null) || return 1
    set -- $st
    [ "$3" != Z ]
}
# dead_or_ended [JOB]: the server died (or JOB ended, for a kill never reached).
dead_or_ended() { ! running || { [ -n "$1" ] && job_ended "$1"; }; }

# kill_case ACTION CALL PATTERN K: one run, then the checks.
kill_case() {
    local action=$1 call=$2 pattern=$3 k=$4 what v
    what="kill ($action) at $call $pattern #$k"
    reset_store
    rm -f "$WORK/case.log"
    start_faulty BCT_FAULT_PATH="$(site_path "$pattern")" BCT_FAULT_CALLS="$call" BCT_FAULT_NTH="$k" \
        BCT_FAULT_ACTION="$action" BCT_FAULT_LOG="$WORK/case.log" BCT_FAULT_LOG_ALL="$STORE*"
    upload "$NAME" "$CK"
    id=
    [ "$STATUS" != 202 ] || id=$(echo "$BODY" | jq -r .job_id)
    wait_until "$what: the kill" dead_or_ended "$id"
    running && fail "$what: the server was not killed (upload $STATUS, job $(job "$id"))"
    wait "$SERVER_PID" 2> /dev/null
    check_eq "$what: killed by SIGKILL" 137 $?
    SERVER_PID=
    acted || fail "$what: the shim did not act"
    store_ok "$what, as the dead process left it"
    start_admin --strict-store 1
    v=$(served_version)
    if published_before_act; then
        check_eq "$what: killed after the publishing rename: the new version" 2 "$v"
    else
        check_eq "$what: killed before the publishing rename: the previous version" 1 "$v"
    fi
    serving "$what, after a restart" "$v"
    no_debris "$what, after a restart"
    store_ok "$what, after a restart"
    stop_server TERM
    check_eq "$what: clean exit after the restart" 0 "$SERVER_RC"
    echo "$what: upload $STATUS; after the restart version $v serves, no debris"
    CASES=$((CASES + 1))
    [ "$v" = 1 ] && before=$((before + 1)) || after=$((after + 1))
}

before=0 after=0
while IFS=$'\t' read -r call pattern n; do
    stable=1
    stable_site "$pattern" "$call" || stable=0
    for k in $(occurrences "$n" "$stable"); do
        # its index in the counting run: skip calls before the upload
        idx=$(sed -e "s#$STORE#S#" -e 's#up-[A-Za-z0-9]\{6\}#up-*#g' -e 's#\.tmp\.[A-Za-z0-9]\{6\}#.tmp.*#g' \
            -e 's#\.job-[0-9a-f]*-[0-9]*#.job-*#g' "$WORK/count.log" |
            awk -v c="$call" -v p="$pattern" -v k="$k" '$2 == c && $3 == p && ++n == k { print $1; exit }')
        [ -n "$idx" ] && [ "$idx" -ge "$first" ] || continue
        kill_case kill "$call" "$pattern" "$k"
    done
done < "$WORK/sites"
# after the last call of the path (the staging folder's removal)
kill_case kill-after "$last_call" "$last_site" "$(grep -c " $last_call " "$WORK/count.log")"
echo "kill -9: $CASES cases: $before ended with version 1 serving, $after with version 2"
[ "$before" -ge 5 ] && [ "$after" -ge 3 ] || fail "too few cases on one side of the publish"
done_ok
