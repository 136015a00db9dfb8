#!/usr/bin/env bash
# /admin/compress with prune_heads / prune_ffn (issue 15, item 4): a random
# BERT from `bct bench --keep` with a calibration part is pruned, compressed
# and served; the job's options and report say what was kept; pruning
# without calibration and a fraction out of range are 422.
. "$(dirname "$0")/lib.sh"
need_tools

"$BCT" bench --layers 2 --hidden 192 --heads 3 --intermediate 1000 --vocab 500 --modes fp32 \
    --batch 1 --seq 8 --runs 1 --no-gemm --keep "$WORK/gen" > "$WORK/gen.log" 2>&1 ||
    fail "bct bench --keep: $(tail -3 "$WORK/gen.log")"
CK=$WORK/gen/hf
printf 'tok%d tok%d tok%d tok%d tok%d\n' $(seq 1 320) > "$WORK/calib.txt"

new_store
start_admin --default-model sst2-tiny

upload pruned "$CK" -F "calibration=@$WORK/calib.txt" -F prune_heads=0.34 -F prune_ffn=0.5
check_eq "pruning accepted" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "job succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
check_eq "options echo the fractions" "0.34 0.5" "$(jq -r '"\(.options.prune_heads) \(.options.prune_ffn)"' "$WORK/job.json")"
check_eq "report: heads kept" "[2,2]" "$(jq -c .report.pruning.heads "$WORK/job.json")"
check_eq "report: neurons kept" "[500,500]" "$(jq -c .report.pruning.intermediate "$WORK/job.json")"
post /classify '{"inputs": "tok17 tok42 tok99", "model": "pruned"}'
check_eq "the pruned model classifies" 200 "$STATUS"

upload nocal "$CK" -F prune_ffn=0.5
check_eq "pruning without calibration" 422 "$STATUS"
expect_message "need a \"calibration\" file part" "pruning without calibration"
upload badfrac "$CK" -F "calibration=@$WORK/calib.txt" -F prune_heads=1.5
check_eq "fraction 1.5" 422 "$STATUS"
expect_message "prune_heads must be a fraction in [0, 1]" "fraction 1.5"
still_serving "after the uploads"
done_ok
