#!/usr/bin/env bash
# Issue 17 (7): a DELETE of a model while a compression job of that model
# waits or runs used to answer 200, and then the job published the model
# again.  Now the DELETE cancels the job (it ends "failed", "cancelled:
# ...") and nothing of that name comes back.
. "$(dirname "$0")/lib.sh"
need_mini
need_tools

new_store
start_admin --admin-max-jobs 1
dev_sentences 256 > "$WORK/calib.txt"

# ---- victim version 1 is published and served ----
upload victim "$CKPT"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "v1 published" "succeeded 1" "$(jq -r '"\(.state) \(.version)"' "$WORK/job.json")"

# ---- a slow job holds the one runner; victim's version 2 waits ----
upload slow "$MINI" -F "calibration=@$WORK/calib.txt"
check_eq "slow job: 202" 202 "$STATUS"
SLOW=$(echo "$BODY" | jq -r .job_id)
upload victim "$CKPT" -F preset=w4a8
check_eq "victim v2: 202" 202 "$STATUS"
V2=$(echo "$BODY" | jq -r .job_id)
req DELETE /admin/models/victim "${AUTH[@]}"
check_eq "DELETE: 200" 200 "$STATUS"
check_eq "DELETE: cancelled the waiting job" 1 "$(echo "$BODY" | jq -r .jobs_cancelled)"
wait_job "$V2"
check_eq "victim v2: failed" failed "$(jq -r .state "$WORK/job.json")"
check_contains "victim v2: cancelled" cancelled "$(jq -r .error "$WORK/job.json")"
wait_job "$SLOW"
check_eq "the slow job itself succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
req GET /models
check_eq "victim is not served" "" "$(echo "$BODY" | jq -r '.models[] | select(.name == "victim") | .name')"
check_eq "victim is not in the store" "" "$(ls "$STORE" | grep victim)"

# ---- a running job of a model being deleted: cancelled too ----
upload victim "$MINI" -F "calibration=@$WORK/calib.txt"
V3=$(echo "$BODY" | jq -r .job_id)
running() { [ "$(job "$V3")" = running ]; }
wait_until "victim v3 running" running
req DELETE /admin/models/victim "${AUTH[@]}"
check_eq "DELETE during the run: 200" 200 "$STATUS"
wait_job "$V3"
check_eq "victim v3: failed" failed "$(jq -r .state "$WORK/job.json")"
check_contains "victim v3: cancelled" cancelled "$(jq -r .error "$WORK/job.json")"
req GET /models
check_eq "victim is still not served" "" "$(echo "$BODY" | jq -r '.models[] | select(.name == "victim") | .name')"
check_eq "victim is still not in the store" "" "$(ls "$STORE" | grep victim)"
stop_server
check_eq "clean exit" 0 "$SERVER_RC"
done_ok
