# Sourced by test_fault_enospc.sh and test_fault_eio.sh with ERRNO and
# ERRTEXT set: every site of the upload -> compress -> publish path that
# writes (a chosen subset of occurrences; all with BCT_FAULT_FULL=1) fails
# once with ERRNO.  Each case ends with: a clean failure (a 5xx for the
# upload itself, or a failed job whose message has the errno's text and
# names the file), or, for a fault after the publishing rename (only
# tidying up is left), the new version; the served version answers as
# before; nothing partial under a final name; no debris, before and after
# a restart; the restart serves the same version.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The calls that write (close: only the writer's temp file, whose close
# the writer checks).
WRITE_CALLS=" open openat creat write pwrite writev pwritev fsync fdatasync ftruncate fallocate posix_fallocate fchmod rename renameat renameat2 link linkat mkdir mkdirat mkstemp mkostemp mkdtemp close "

count_sites
failed=0 published=0 refused=0
while IFS=$'\t' read -r call pattern n; do
    case "$WRITE_CALLS" in *" $call "*) ;; *) continue ;; esac
    [ "$call" != close ] || case "$pattern" in *.tmp.*) ;; *) continue ;; esac
    stable=1
    stable_site "$pattern" "$call" || stable=0
    for k in $(occurrences "$n" "$stable"); do
        what="$ERRNO at $call $pattern #$k/$n"
        reset_store
        rm -f "$WORK/case.log"
        start_faulty BCT_FAULT_PATH="$(site_path "$pattern")" BCT_FAULT_CALLS="$call" BCT_FAULT_NTH="$k" \
            BCT_FAULT_ERRNO="$ERRNO" BCT_FAULT_LOG="$WORK/case.log" BCT_FAULT_LOG_ALL="$STORE*"
        upload_new
        acted || fail "$what: the fault was not reached (upload $STATUS, job $JOB_STATE)"
        v=1
        if [ "$STATUS" = 202 ] && [ "$JOB_STATE" = succeeded ]; then
            published_before_act || fail "$what: the job succeeded although a step before the publish failed"
            v=2 published=$((published + 1))
        elif [ "$STATUS" = 202 ]; then
            check_eq "$what: job state" failed "$JOB_STATE"
            check_contains "$what: the job's error has the errno's text" "$ERRTEXT" "$JOB_ERROR"
            echo "$JOB_ERROR" | grep -q "$STORE/\|config.json\|model.safetensors\|vocab.txt" ||
                fail "$what: the job's error names no file: $JOB_ERROR"
            failed=$((failed + 1))
        else
            case "$STATUS" in 5??) ;; *) fail "$what: upload answered $STATUS: $BODY" ;; esac
            check_contains "$what: the upload's error has the errno's text" "$ERRTEXT" "$(echo "$BODY" | jq -r .error)"
            refused=$((refused + 1))
        fi
        echo "$what: upload $STATUS${JOB_STATE:+, job $JOB_STATE}; version $v serves${JOB_ERROR:+ ($JOB_ERROR)}"
        serving "$what" "$v"
        store_ok "$what"
        no_debris "$what"
        stop_server TERM
        check_eq "$what: clean exit" 0 "$SERVER_RC"
        restart_check "$what" "$v"
        CASES=$((CASES + 1))
    done
done < "$WORK/sites"
echo "$ERRNO: $CASES cases: $refused uploads refused, $failed jobs failed, $published published (fault after the publish)"
[ "$CASES" -ge 10 ] || fail "only $CASES cases: the counting run found too few sites"
done_ok
