#!/usr/bin/env bash
# The admin API end to end: a checkpoint uploaded over HTTP is compressed
# and served, with the same predictions as `bct compress` + `bct eval` on
# the same files, while another client keeps classifying without a single
# failure; then it is replaced under the same name (a new version) while
# traffic goes to it, again without a failure.  The upload goes through
# `bct admin upload` (the CLI wraps the multipart call and follows the
# job) and through curl.  In a bare clone the checkpoint and the
# sentences are random ones (lib.sh).
. "$(dirname "$0")/lib.sh"
need_tools

NAME=sst2-uploaded
N=200
new_store
start_admin

# ---- the reference: the same files compressed and evaluated locally ----
{ echo "sentence	label"; dev_sentences $N | sed 's/$/\t0/'; } > "$WORK/dev.tsv"
for preset in w8a8 w4a8; do
    "$BCT" compress --in "$CKPT" --out "$WORK/local-$preset.bct" --preset $preset > /dev/null ||
        fail "bct compress --preset $preset"
    "$BCT" eval --model "$WORK/local-$preset.bct" --task sst2 --data "$WORK/dev.tsv" \
        --dump-logits "$WORK/local-$preset.tsv" > /dev/null || fail "bct eval of local-$preset.bct"
done
dev_sentences $N > "$WORK/sentences"

# http_logits MODEL OUT: the logits the server gives for the N sentences
# (raw scores, 4 requests of 50 inputs).
http_logits() {
    : > "$2"
    local i
    for i in 0 1 2 3; do
        sed -n "$((i * 50 + 1)),$((i * 50 + 50))p" "$WORK/sentences" | jq -R . |
            jq -s --arg m "$1" '{inputs: ., raw_scores: true, model: $m}' > "$WORK/batch.json"
        post /classify "@$WORK/batch.json"
        check_eq "classify with $1 (batch $i)" 200 "$STATUS"
        logits_of "$WORK/body" "$1" >> "$2"
    done
}

# ---- 1: upload with the CLI while another client classifies ----
start_traffic default sst2-tiny
T1=$TRAFFIC
wait_until "traffic on the default model" traffic_at_least default 5
"$BCT" admin upload --server "$URL" --token "$TOKEN" --name "$NAME" --json "$CKPT" \
    > "$WORK/upload1.json" 2> "$WORK/upload1.err" || fail "bct admin upload: $(cat "$WORK/upload1.err")"
check_eq "CLI: the job succeeded" succeeded "$(jq -r .state "$WORK/upload1.json")"
check_eq "CLI: version 1" 1 "$(jq -r .version "$WORK/upload1.json")"
check_eq "CLI: progress 100" 100 "$(jq -r .progress "$WORK/upload1.json")"
check_eq "report: one row per tensor" 41 "$(jq '.report.tensors | length' "$WORK/upload1.json")"
check "report: whole-file ratio" jqe '.report.ratio > 3.5' "$WORK/upload1.json"
check "report: per-tensor errors" jqe '[.report.tensors[] | select(.format != "f32") | .rel_error] | length > 0 and all(. > 0 and . < 0.1)' "$WORK/upload1.json"
check "timings" jqe '.timings.compress_ms > 0 and .timings.total_ms >= .timings.compress_ms' "$WORK/upload1.json"
req GET /models
check_eq "/models lists it with its version" "1 w8a8" \
    "$(echo "$BODY" | jq -r --arg n "$NAME" '.models[] | select(.name == $n) | "\(.version) \(.format)"')"
check "store: $NAME/1.bct" test -f "$STORE/$NAME/1.bct"
http_logits "$NAME" "$WORK/http-w8a8.tsv"
argmax_agree "$WORK/http-w8a8.tsv" "$WORK/local-w8a8.tsv" "w8a8 upload vs bct compress + bct eval"
compare_rows "$WORK/http-w8a8.tsv" "$WORK/local-w8a8.tsv" "w8a8 upload vs bct compress + bct eval"

# ---- 2: replace it (curl, w4a8) while traffic goes to it and to the default ----
start_traffic uploaded "$NAME"
T2=$TRAFFIC
wait_until "traffic on the uploaded model" traffic_at_least uploaded 5
upload "$NAME" "$CKPT" -F preset=w4a8
check_eq "replace: 202" 202 "$STATUS"
id=$(echo "$BODY" | jq -r .job_id)
check_eq "replace: status_url" "/admin/jobs/$id" "$(echo "$BODY" | jq -r .status_url)"
check_eq "replace: Location" "/admin/jobs/$id" "$(header Location)"
wait_job "$id"
check_eq "replace: succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
check_eq "replace: version 2" 2 "$(jq -r .version "$WORK/job.json")"
check_eq "replace: options recorded" w4a8 "$(jq -r .options.preset "$WORK/job.json")"
# the replacement serves at once; let both clients run on it for a while
before=$(traffic_count uploaded)
wait_until "traffic on the replaced model" traffic_at_least uploaded $((before + 20))
stop_traffic uploaded "$T2"
stop_traffic default "$T1"
req GET /models
check_eq "/models: version 2, w4a8" "2 w4a8" \
    "$(echo "$BODY" | jq -r --arg n "$NAME" '.models[] | select(.name == $n) | "\(.version) \(.format)"')"
http_logits "$NAME" "$WORK/http-w4a8.tsv"
argmax_agree "$WORK/http-w4a8.tsv" "$WORK/local-w4a8.tsv" "w4a8 replacement vs bct compress + bct eval"
compare_rows "$WORK/http-w4a8.tsv" "$WORK/local-w4a8.tsv" "w4a8 replacement vs bct compress + bct eval"
check "store: version 1 kept" test -f "$STORE/$NAME/1.bct"
check "store: version 2" test -f "$STORE/$NAME/2.bct"

# ---- 3: jobs, CLI parity, tidiness ----
req GET /admin/jobs "${AUTH[@]}"
check_eq "GET /admin/jobs: 200" 200 "$STATUS"
check_eq "GET /admin/jobs: both jobs, newest first" "$id succeeded" \
    "$(echo "$BODY" | jq -r '.jobs[0] | "\(.job_id) \(.state)"')"
check_eq "GET /admin/jobs: 2 jobs" 2 "$(echo "$BODY" | jq '.jobs | length')"
"$BCT" admin jobs --server "$URL" --token "$TOKEN" > "$WORK/jobs.txt" || fail "bct admin jobs"
check_contains "bct admin jobs lists the job" "$id" "$(cat "$WORK/jobs.txt")"
check_eq "staging area empty after the jobs" "" "$(ls -A "$STORE/.staging")"
check_eq "no temp or pending files in the store" "" \
    "$(find "$STORE" -name '*.tmp.*' -o -name '.job-*' | head -1)"
# the access log names the upload's model
wait_until "access log of the upload" grep -q '"path":"/admin/compress","status":202' "$WORK/access.log"
check_contains "access log: model of the upload" "\"model\":\"$NAME\"" \
    "$(grep '"path":"/admin/compress","status":202' "$WORK/access.log" | head -1)"
check_eq "metrics: /admin uploads counted (CLI + curl)" 2 \
    "$(metric bct_http_requests_total '{route="/admin/compress",code="202"}')"

# ---- 4: delete it, while the default model keeps serving ----
"$BCT" admin delete --server "$URL" --token "$TOKEN" "$NAME" > "$WORK/delete.json" || fail "bct admin delete"
check_eq "delete: both versions removed" 2 "$(jq -r .versions_removed "$WORK/delete.json")"
post /classify "$(jq -cn --arg m "$NAME" '{inputs: "x", model: $m}')"
expect_error 404 ModelNotFound "classify a deleted model"
check_eq "store: the model is gone" "" "$(ls "$STORE" | grep -F "$NAME" || true)"
still_serving "after the delete"
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"
done_ok
