#!/usr/bin/env bash
# Accuracy-guarded publishing (issue 16): /admin/compress with an
# evaluation set (eval, task, max_drop).  Needs no shared data: the
# checkpoint is a random one from `bct bench --keep`, its classifier bias
# set so that its predictions split between the two labels, and the eval
# set is labelled with the fp32 model's own predictions (so fp32 scores
# 1.0 and every changed prediction of the compressed model is a lost
# point).  Checks:
#   - malformed eval / task / max_drop fields: 4xx naming the field;
#   - w8a8 within a generous max_drop: published, its evaluation equal to
#     `bct compress` + `bct eval` offline, in the job, in /models (also
#     after a restart: a sidecar in the store) and in `bct admin`;
#   - 2-bit weights with max_drop 0: the job fails with the report, nothing
#     is published, the previous version keeps serving the same answers;
#   - no max_drop: report and publish; no eval set but calibration text:
#     agreement on held-back calibration lines.
. "$(dirname "$0")/lib.sh"
need_tools
command -v python3 > /dev/null || { echo "SKIP: python3 not found"; exit 77; }

"$BCT" bench --layers 2 --hidden 128 --heads 2 --intermediate 512 --vocab 2000 --modes fp32 \
    --batch 1 --seq 8 --runs 1 --no-gemm --keep "$WORK/gen" > "$WORK/gen.log" 2>&1 ||
    fail "bct bench --keep: $(tail -3 "$WORK/gen.log")"
CK=$WORK/gen/hf

# 300 texts of random words, then 100 more for calibration.
awk 'BEGIN { srand(7); for (i = 0; i < 400; i++) { n = 3 + int(rand() * 12); s = "";
       for (k = 0; k < n; k++) s = s (k ? " " : "") "tok" (5 + int(rand() * 1990)); print s } }' \
    > "$WORK/texts"
head -n 300 "$WORK/texts" > "$WORK/eval-texts"
tail -n 100 "$WORK/texts" > "$WORK/calib.txt"

# fp32 logits of the eval texts (labels ignored: all 0).
fp32_logits() {
    sed 's/$/\t0/' "$WORK/eval-texts" > "$WORK/unlabelled.tsv"
    "$BCT" eval --model "$CK" --task generic --data "$WORK/unlabelled.tsv" --dump-logits "$WORK/fp32.logits" \
        > /dev/null || fail "bct eval of the fp32 checkpoint"
}
# A random model's pooled output barely varies, so its bias decides every
# prediction: move it by -median(l1 - l0).
fp32_logits
python3 - "$CK/model.safetensors" "$WORK/fp32.logits" <<'EOF' || fail "cannot set the classifier bias"
import json, struct, sys
path = sys.argv[1]
d = sorted(float(b) - float(a) for a, b in (l.split("\t") for l in open(sys.argv[2])))
median = d[len(d) // 2]
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))["classifier.bias"]
    assert t["dtype"] == "F32" and t["shape"] == [2]
    f.seek(8 + n + t["data_offsets"][0])
    b0, b1 = struct.unpack("<2f", f.read(8))
    f.seek(8 + n + t["data_offsets"][0])
    f.write(struct.pack("<2f", b0, b1 - median))
EOF
fp32_logits
# Labels: the fp32 argmax, as a label name on even lines and an id on odd ones.
awk -F'\t' '{ p = $2 > $1; print (NR % 2 ? (p ? "positive" : "negative") : p) }' "$WORK/fp32.logits" \
    > "$WORK/labels"
paste "$WORK/eval-texts" "$WORK/labels" > "$WORK/eval.tsv"
pos=$(awk -F'\t' '$2 > $1' "$WORK/fp32.logits" | wc -l)
echo "fp32 predicts label 1 for $pos of 300 eval texts"
[ "$pos" -ge 60 ] && [ "$pos" -le 240 ] || fail "the fp32 predictions do not split ($pos of 300 are label 1)"
"$BCT" eval --model "$CK" --task generic --data "$WORK/eval.tsv" --json > "$WORK/fp32-eval.json"
check_eq "bct eval: fp32 scores 1 on its own predictions" 1 "$(jq .accuracy "$WORK/fp32-eval.json")"

# Offline: the accuracy w8a8 gets on the same set.
"$BCT" compress --in "$CK" --out "$WORK/w8a8.bct" --preset w8a8 > /dev/null || fail "bct compress w8a8"
"$BCT" eval --model "$WORK/w8a8.bct" --task generic --data "$WORK/eval.tsv" --json > "$WORK/w8a8-eval.json"
acc8=$(jq .accuracy "$WORK/w8a8-eval.json")
echo "offline: w8a8 accuracy $acc8 against fp32's predictions"

new_store
start_admin --default-model sst2-tiny

# ---- malformed fields: 4xx naming the field, nothing queued ----
EV=(-F "eval=@$WORK/eval.tsv")
upload bad "$CK" "${EV[@]}" -F task=cola
expect_error 422 Validation "unknown task"
expect_message "field task must be sst2, mrpc, rte or generic" "unknown task"
for v in abc -1 101 nan 1e999 ""; do
    upload bad "$CK" "${EV[@]}" -F task=generic -F "max_drop=$v"
    expect_error 422 Validation "max_drop \"$v\""
    expect_message "field max_drop must be a number" "max_drop \"$v\""
done
upload bad "$CK" "${EV[@]}"
expect_error 422 Validation "eval without task"
expect_message "needs a task field" "eval without task"
upload bad "$CK" -F task=sst2
expect_error 422 Validation "task without eval"
expect_message "field task needs an eval file part" "task without eval"
upload bad "$CK" -F max_drop=1
expect_error 422 Validation "max_drop without eval"
expect_message "field max_drop needs an eval file part" "max_drop without eval"
upload bad "$CK" -F "eval=bare text" -F task=generic
expect_error 422 Validation "eval sent as a field"
# rows: too many fields, an unknown label name, an id past num_labels, none
printf 'tok5 tok6\t1\ntok7\ttok8\ttok9\t0\n' > "$WORK/bad-fields.tsv"
printf 'tok5 tok6\tpositive\ntok7\tmaybe\n' > "$WORK/bad-label.tsv"
printf 'tok5 tok6\t2\n' > "$WORK/bad-id.tsv"
printf '\n  \n' > "$WORK/empty.tsv"
for f in bad-fields:2 bad-label:2; do
    upload bad "$CK" -F "eval=@$WORK/${f%:*}.tsv" -F task=generic
    expect_error 422 Validation "eval ${f%:*}"
    expect_message "field eval: eval.tsv:${f#*:}: not a generic example" "eval ${f%:*}"
done
upload bad "$CK" -F "eval=@$WORK/bad-id.tsv" -F task=generic
expect_error 422 Validation "eval label id 2"
expect_message "field eval: example 1 has label id 2; the model has 2 labels" "eval label id 2"
upload bad "$CK" -F "eval=@$WORK/empty.tsv" -F task=generic
expect_error 422 Validation "empty eval"
expect_message "field eval: no generic examples" "empty eval"
# a GLUE task's columns: an SST-2 file needs its header and 2 columns
printf 'sentence\tlabel\ntok5 tok6\n' > "$WORK/bad-sst2.tsv"
upload bad "$CK" -F "eval=@$WORK/bad-sst2.tsv" -F task=sst2
expect_error 422 Validation "sst2 row without a label"
expect_message "not a sst2 example" "sst2 row without a label"
# limits: rows (srv_limits.h SRV_EVAL_MAX_ROWS) and bytes (SRV_EVAL_MAX_BYTES)
awk 'BEGIN { for (i = 0; i < 2001; i++) print "tok5 tok6\t0" }' > "$WORK/rows.tsv"
upload bad "$CK" -F "eval=@$WORK/rows.tsv" -F task=generic
expect_error 413 PayloadTooLarge "2001 eval rows"
expect_message "more than 2000 examples" "2001 eval rows"
head -c $((16 * 1024 * 1024 + 1)) /dev/zero | tr '\0' 'a' > "$WORK/big.tsv"
upload bad "$CK" -F "eval=@$WORK/big.tsv" -F task=generic
expect_error 413 PayloadTooLarge "eval over 16 MiB"
expect_message 'part "eval" is larger than its limit' "eval over 16 MiB"
req GET /admin/jobs "${AUTH[@]}"
check_eq "no job was queued by the bad uploads" 0 "$(echo "$BODY" | jq '.jobs | length')"
req GET /models
check_eq "no model \"bad\"" 0 "$(echo "$BODY" | jq '[.models[] | select(.name == "bad")] | length')"

# ---- w8a8 within a generous budget: published with its evaluation ----
E='.evaluation'
upload guarded "$CK" "${EV[@]}" -F task=generic -F max_drop=60 -F preset=w8a8
check_eq "guarded w8a8: accepted" 202 "$STATUS"
id1=$(echo "$BODY" | jq -r .job_id)
wait_job "$id1"
cp "$WORK/job.json" "$WORK/job1.json"
echo "published: $(jq -c "$E" "$WORK/job1.json")"
check_eq "guarded w8a8: succeeded" succeeded "$(jq -r .state "$WORK/job1.json")"
check_eq "guarded w8a8: options name the task" generic "$(jq -r .options.eval_task "$WORK/job1.json")"
check_eq "guarded w8a8: options name max_drop" 60 "$(jq -r .options.max_drop "$WORK/job1.json")"
check_eq "evaluation: source" eval "$(jq -r "$E.source" "$WORK/job1.json")"
check_eq "evaluation: rows" 300 "$(jq -r "$E.rows" "$WORK/job1.json")"
check_eq "evaluation: fp32 accuracy on its own predictions" 1 "$(jq -r "$E.fp32_accuracy" "$WORK/job1.json")"
check_eq "evaluation: w8a8 accuracy equals bct compress + bct eval" "$acc8" "$(jq -r "$E.accuracy" "$WORK/job1.json")"
check "evaluation: drop = 100 x (1 - accuracy)" close_to "$(jq -r "$E.drop" "$WORK/job1.json")" \
    "$(jq -rn --argjson a "$acc8" '100 * (1 - $a)')" 1e-9
check "evaluation: agreement = accuracy (labels are fp32's)" close_to \
    "$(jq -r "$E.agreement" "$WORK/job1.json")" "$acc8" 1e-12
check "evaluation: passed, with logit errors" jqe \
    "$E.passed == true and $E.max_drop == 60 and $E.max_abs_logit_diff > 0 and
     $E.mean_abs_logit_diff > 0 and $E.mean_abs_logit_diff <= $E.max_abs_logit_diff and $E.job_id == \"$id1\"" \
    "$WORK/job1.json"
check "timings: evaluate_ms" jqe '.timings.evaluate_ms > 0' "$WORK/job1.json"
req GET /models
echo "$BODY" | jq '.models[] | select(.name == "guarded")' > "$WORK/model1.json"
check_eq "/models: guarded is version 1" 1 "$(jq -r .version "$WORK/model1.json")"
check_eq "/models: the evaluation it was published with" "$(jq -c "$E" "$WORK/job1.json")" \
    "$(jq -c .evaluation "$WORK/model1.json")"
check "store: sidecar beside the version" test -f "$STORE/guarded/1.report.json"
req GET /models/guarded
check_eq "/models/guarded: evaluation" "$id1" "$(echo "$BODY" | jq -r .evaluation.job_id)"
# `bct admin job`: the JSON with its evaluation, and a summary line
"$BCT" admin job --server "$URL" --token "$TOKEN" "$id1" > "$WORK/cli-job.json" 2> "$WORK/cli-job.err" ||
    fail "bct admin job: $(cat "$WORK/cli-job.err")"
check_eq "bct admin job: evaluation" "$acc8" "$(jq -r .evaluation.accuracy "$WORK/cli-job.json")"
check_contains "bct admin job: summary" "evaluation (eval, generic, 300 rows): accuracy" "$(cat "$WORK/cli-job.err")"
# the answers of version 1, to compare after the refused upload
cut -f1 "$WORK/eval.tsv" | head -n 20 | jq -Rsc '{inputs: split("\n")[:-1], model: "guarded", raw_scores: true}' \
    > "$WORK/probe.json"
post /classify "$(cat "$WORK/probe.json")"
check_eq "guarded v1 classifies" 200 "$STATUS"
echo "$BODY" > "$WORK/answers1.json"

# ---- 2-bit weights with max_drop 0: refused, v1 keeps serving ----
start_traffic guard guarded
upload guarded "$CK" "${EV[@]}" -F task=generic -F max_drop=0 -F preset=w4a8 -F weights=q2 \
    -F embeddings=q2 -F block=256
check_eq "guarded q2: accepted" 202 "$STATUS"
id2=$(echo "$BODY" | jq -r .job_id)
wait_job "$id2"
cp "$WORK/job.json" "$WORK/job2.json"
wait_until "some traffic during the refused job" traffic_at_least guard 5
stop_traffic guard "$TRAFFIC"
check_eq "guarded q2: failed" failed "$(jq -r .state "$WORK/job2.json")"
check "guarded q2: report present, not passed" jqe \
    "$E.passed == false and $E.max_drop == 0 and $E.drop > 0 and $E.fp32_accuracy == 1 and .report.ratio > 0" \
    "$WORK/job2.json"
err=$(jq -r .error "$WORK/job2.json")
echo "refused: $err"
check_contains "guarded q2: error says the drop" "accuracy drop of $(jq -r "$E.drop * 100 | round / 100" "$WORK/job2.json")" "$err"
check_contains "guarded q2: error says the budget" "is over max_drop 0.00: not published" "$err"
check "guarded q2: no version field" jqe '.version == null' "$WORK/job2.json"
req GET /models
echo "$BODY" | jq '.models[] | select(.name == "guarded")' > "$WORK/model2.json"
check_eq "/models: still version 1" 1 "$(jq -r .version "$WORK/model2.json")"
check_eq "/models: still v1's evaluation" "$id1" "$(jq -r .evaluation.job_id "$WORK/model2.json")"
check "store: no version 2" test ! -e "$STORE/guarded/2.bct"
check "store: no pending file left" test -z "$(find "$STORE" -name '.job-*')"
post /classify "$(cat "$WORK/probe.json")"
check_eq "guarded after the refusal: classifies" 200 "$STATUS"
check_eq "guarded after the refusal: the same answers" "$(jq -c . "$WORK/answers1.json")" "$(echo "$BODY" | jq -c .)"
check_eq "x-model unchanged" guarded "$(header x-model)"

# ---- no max_drop: report, publish (even 2-bit) ----
upload loose "$CK" "${EV[@]}" -F task=generic -F preset=w4a8 -F weights=q2 -F embeddings=q2 -F block=256
check_eq "loose: accepted" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "loose: succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
check "loose: drop reported, no budget" jqe "$E.drop > 0 and $E.max_drop == null and ($E | has(\"passed\") | not)" \
    "$WORK/job.json"

# ---- no eval set, calibration text: agreement on held-back lines ----
upload held "$CK" -F "calibration=@$WORK/calib.txt" -F preset=w8a8
check_eq "held: accepted" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
cp "$WORK/job.json" "$WORK/job-held.json"
echo "held-back calibration: $(jq -c "$E" "$WORK/job-held.json")"
check_eq "held: succeeded" succeeded "$(jq -r .state "$WORK/job-held.json")"
check_eq "held: source" calibration_holdout "$(jq -r "$E.source" "$WORK/job-held.json")"
check_eq "held: the last 1/8 of 100 lines" 12 "$(jq -r "$E.rows" "$WORK/job-held.json")"
check "held: agreement and logit error, no accuracy" jqe \
    "$E.agreement >= 0 and $E.agreement <= 1 and $E.max_abs_logit_diff > 0 and ($E | has(\"accuracy\") | not)" \
    "$WORK/job-held.json"
check_eq "held: calibrated on the other 88 lines" 88 "$(jq -r "$E.calibration_lines" "$WORK/job-held.json")"
# too little text to spare: no evaluation
head -n 10 "$WORK/calib.txt" > "$WORK/calib10.txt"
upload short "$CK" -F "calibration=@$WORK/calib10.txt" -F preset=w8a8
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "short calibration: succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
check "short calibration: no evaluation" jqe '.evaluation == null' "$WORK/job.json"

# ---- /openapi.json documents the form fields and every key of the reports ----
req GET /openapi.json
echo "$BODY" > "$WORK/openapi.json"
check "openapi: the compress form has eval, task, max_drop" jqe \
    '.paths["/admin/compress"].post.requestBody.content["multipart/form-data"].schema["$ref"] == "#/components/schemas/CompressForm"
     and (.components.schemas.CompressForm.properties | has("eval") and has("task") and has("max_drop"))' \
    "$WORK/openapi.json"
for f in job1 job2 job-held; do
    undocumented=$(jq -r --slurpfile api "$WORK/openapi.json" \
        '.evaluation | keys - ($api[0].components.schemas.Evaluation.properties | keys) | join(",")' "$WORK/$f.json")
    check_eq "openapi: every evaluation key of $f documented" "" "$undocumented"
done
check "openapi: Job and Model carry the evaluation" jqe \
    '.components.schemas.Job.properties.evaluation["$ref"] == "#/components/schemas/Evaluation" and
     .components.schemas.Model.properties.evaluation["$ref"] == "#/components/schemas/Evaluation" and
     .paths["/admin/jobs/{id}"].get.responses["200"].content["application/json"].schema["$ref"] == "#/components/schemas/Job"' \
    "$WORK/openapi.json"

# ---- a restart (or another replica) sees the evaluations in the store ----
stop_server
start_admin --default-model sst2-tiny
req GET /models
check_eq "after a restart: guarded's evaluation" "$id1" \
    "$(echo "$BODY" | jq -r '.models[] | select(.name == "guarded") | .evaluation.job_id')"
check_eq "after a restart: held's evaluation" calibration_holdout \
    "$(echo "$BODY" | jq -r '.models[] | select(.name == "held") | .evaluation.source')"
check_eq "after a restart: sst2-tiny has none" null \
    "$(echo "$BODY" | jq -r '.models[] | select(.name == "sst2-tiny") | .evaluation')"
still_serving "after the guarded uploads"
done_ok
