#!/usr/bin/env bash
# kill -9 of the server in the middle of a compression leaves no
# half-written model under a final name, and the next start serves the
# previous models and clears what the dead process left (the .bct
# writer's temp file, the staging area).  Also: a full job queue refuses
# uploads with 429 before reading them; SIGTERM during a compression
# cancels it and leaves nothing behind.
#
# The slow job is the mini checkpoint with calibration text (the fp32
# model runs over every sentence before any tensor is quantized); the
# test polls the job's stage and kills the server while tensors are being
# quantized and written.
. "$(dirname "$0")/lib.sh"
need_mini
need_tools

dev_sentences 872 > "$WORK/calib.txt"
for i in 1 2 3 4; do cat "$WORK/calib.txt"; done > "$WORK/calib4.txt"
NAME=sentiment
new_store
start_admin

# ---- version 1 of the model, then a slow replacement killed mid-way ----
upload "$NAME" "$CKPT"
check_eq "v1: 202" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "v1: succeeded" succeeded "$(jq -r .state "$WORK/job.json")"

stage_is_writing() {
    local state
    state=$(job "$1")
    case "$state" in succeeded | failed) return 2 ;; esac
    jq -r .stage "$WORK/job.json" | grep -q '^quantizing\|^writing'
}
killed=
for attempt in 1 2 3; do
    upload "$NAME" "$MINI" -F "calibration=@$WORK/calib.txt" -F calib_n=872
    check_eq "slow job: 202" 202 "$STATUS"
    id=$(echo "$BODY" | jq -r .job_id)
    end=$((SECONDS + DEADLINE_S))
    while [ $SECONDS -lt $end ]; do
        stage_is_writing "$id"
        rc=$?
        [ $rc = 1 ] || break
        sleep 0.01
    done
    if [ $rc = 0 ]; then
        echo "killing the server at: $(jq -r '"\(.stage) (\(.progress)%)"' "$WORK/job.json")"
        kill -KILL "$SERVER_PID"
        wait "$SERVER_PID" 2> /dev/null
        SERVER_PID=
        killed=1
        break
    fi
    [ $rc = 2 ] || fail "the slow job never reached the quantizing stage"
    echo "attempt $attempt: the job ended before it was caught; again"
done
[ -n "$killed" ] || fail "could not catch the job while it was quantizing"

# what the dead process left
ls -la "$STORE/$NAME" > "$WORK/after-kill.txt"
check_eq "after kill -9: the only final version is 1" "1.bct" \
    "$(ls "$STORE/$NAME" | grep -v '^\.' | tr '\n' ' ' | sed 's/ $//')"
tmp=$(find "$STORE" -name '*.bct.tmp.*' | wc -l)
[ "$tmp" -ge 1 ] || fail "expected the writer's temp file after the kill (got: $(cat "$WORK/after-kill.txt"))"
pass=$((pass + 1))
check "after kill -9: the upload is still staged" test -n "$(ls -A "$STORE/.staging")"
for f in "$STORE"/*; do
    case "${f##*/}" in "$NAME" | sst2-tiny.bct) ;; *) fail "unexpected store entry ${f##*/}" ;; esac
done
pass=$((pass + 1))

# ---- the next start: the previous models, debris removed ----
start_admin
req GET /models
check_eq "restart: the previous models" "$NAME:1 sst2-tiny:1" \
    "$(echo "$BODY" | jq -r '[.models[] | "\(.name):\(.version)"] | join(" ")')"
post /classify "$(jq -cn --arg m "$NAME" '{inputs: "a charming and often affecting journey", model: $m}')"
check_eq "restart: version 1 answers" 200 "$STATUS"
check_eq "restart: no temp files left" 0 "$(find "$STORE" -name '*.tmp.*' | wc -l)"
check_eq "restart: no unpublished compressions left" 0 "$(find "$STORE" -name '.job-*' | wc -l)"
check_eq "restart: staging area emptied" "" "$(ls -A "$STORE/.staging")"
grep -q 'removed [0-9]* leftover file' "$WORK/server.log" || fail "restart: no cleanup log line"
pass=$((pass + 1))
# the same upload now completes (a fresh job)
upload "$NAME" "$CKPT" -F preset=w4a8
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "after restart: a new version publishes" "succeeded 2" "$(jq -r '"\(.state) \(.version)"' "$WORK/job.json")"
stop_server TERM

# ---- a full queue: 429 before the body is read ----
# One job runs (calibrating on 3488 sentences: long), one waits; the queue
# holds one, so the next upload is refused.
start_admin --admin-queue-size 1
upload slow "$MINI" -F "calibration=@$WORK/calib4.txt" -F calib_n=3488
check_eq "queue: first job accepted" 202 "$STATUS"
slow=$(echo "$BODY" | jq -r .job_id)
running() { [ "$(job "$1")" = running ]; }
wait_until "the first job running" running "$slow"
upload waiting "$CKPT"
check_eq "queue: second job accepted (queued)" 202 "$STATUS"
waiting=$(echo "$BODY" | jq -r .job_id)
check_eq "queue: second job queued" queued "$(job "$waiting")"
upload refused "$CKPT"
expect_error 429 Overloaded "queue full"
check_eq "queue full: Retry-After" 1 "$(header Retry-After)"
expect_message "admin_queue_size" "queue full"
req GET /admin/jobs "${AUTH[@]}"
check_eq "queue: the jobs of this run, newest first" "waiting:queued slow:running" \
    "$(echo "$BODY" | jq -r '[.jobs[] | "\(.name):\(.state)"] | join(" ")')"
still_serving "while a job runs and one waits"
# kill -9 with a job running and one queued: nothing of either is published
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2> /dev/null
SERVER_PID=
check_eq "killed with jobs pending: nothing published" "$NAME sst2-tiny.bct" \
    "$(ls "$STORE" | tr '\n' ' ' | sed 's/ $//')"
start_admin
check_eq "restart: staging area emptied" "" "$(ls -A "$STORE/.staging")"
req GET /admin/jobs "${AUTH[@]}"
check_eq "restart: job history starts empty" 0 "$(echo "$BODY" | jq '.jobs | length')"

# ---- SIGTERM mid-compression: the job is cancelled, nothing is left ----
upload late "$MINI" -F "calibration=@$WORK/calib.txt" -F calib_n=872
check_eq "late job: 202" 202 "$STATUS"
late=$(echo "$BODY" | jq -r .job_id)
writing_or_ended() { stage_is_writing "$1"; [ $? != 1 ]; }
wait_until "the late job quantizing" writing_or_ended "$late"
stop_server TERM
check_eq "SIGTERM during a job: exit code" 0 "$SERVER_RC"
check_eq "SIGTERM during a job: staging area emptied" "" "$(ls -A "$STORE/.staging")"
check_eq "SIGTERM during a job: no temp or pending files" 0 \
    "$(find "$STORE" -name '*.tmp.*' -o -name '.job-*' | wc -l)"
check "SIGTERM during a job: the log says it was cancelled (or it had finished)" \
    grep -q 'cancelled\|"late\\" version 1 published' "$WORK/server.log"
done_ok
