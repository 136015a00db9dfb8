#!/usr/bin/env bash
# bct serve: every route, the /classify and /predict shapes, results
# against the reference logits and `bct classify`, pairs, truncation,
# top_k, raw_scores, model selection, metrics and the access log.  In a
# bare clone the two checkpoints are random ones (lib.sh: need_ckpts) and
# only the checks of trained answers are left out.
. "$(dirname "$0")/lib.sh"
need_tools
need_ckpts

# A model store holding two models (links to ../shared's, or random ones).
mkdir -p "$WORK/store"
ln -s "$SST_CK" "$WORK/store/sst2-bert-tiny-scratch"
ln -s "$PAIR_CK" "$WORK/store/mrpc-bert-mini-scratch"
echo "not a model" > "$WORK/store/README.txt"
# The bundled compressed model, when present, is served the same way.
BUNDLED=$(cd "$(dirname "$0")/../.." && pwd)/models/sst2-tiny.bct
[ -f "$BUNDLED" ] && ln -s "$BUNDLED" "$WORK/store/sst2-tiny.bct"
start_server --model-store "$WORK/store" --default-model sst2-bert-tiny-scratch --threads 2

# ---- GET routes ----
req GET /health
check_eq "/health status" 200 "$STATUS"
check_eq "/health body" ok "$(echo "$BODY" | jq -r .status)"
req HEAD /health
check_eq "HEAD /health" 200 "$STATUS"
# Keep-alive survives answers to GETs and errors (one connection, three requests).
reused=$(curl -sv -o /dev/null -o /dev/null -o /dev/null "$URL/health" "$URL/nope" "$URL/metrics" 2>&1 |
    grep -c 'Re-using existing connection')
check_eq "keep-alive across GET and 404 answers" 2 "$reused"
reused=$(curl -sv -o /dev/null -o /dev/null -H 'Content-Type: application/json' -d '{"inputs": ""}' \
    "$URL/classify" "$URL/classify" 2>&1 | grep -c 'Re-using existing connection')
check_eq "keep-alive across 422 answers" 1 "$reused"
req GET /ready
check_eq "/ready status" 200 "$STATUS"
check_eq "/ready body" ready "$(echo "$BODY" | jq -r .status)"

req GET /models
check_eq "/models status" 200 "$STATUS"
check_eq "/models count" $((2 + $([ -f "$BUNDLED" ] && echo 1 || echo 0))) "$(echo "$BODY" | jq '.models | length')"
check_eq "/models default" sst2-bert-tiny-scratch "$(echo "$BODY" | jq -r .default)"
m='.models[] | select(.name == "sst2-bert-tiny-scratch")'
check_eq "/models architecture" BertForSequenceClassification "$(echo "$BODY" | jq -r "$m.architecture")"
check_eq "/models labels" '["negative","positive"]' "$(echo "$BODY" | jq -c "$m.labels")"
check_eq "/models format" fp32 "$(echo "$BODY" | jq -r "$m.format")"
check_eq "/models max_len" 128 "$(echo "$BODY" | jq -r "$m.max_len")"
check_eq "/models default flag" true "$(echo "$BODY" | jq -r "$m.default")"
check_eq "/models compression ratio" 1 "$(echo "$BODY" | jq -r "$m.compression_ratio")"
size=$(( $(stat -L -c %s "$SST_CK/config.json") + $(stat -L -c %s "$SST_CK/vocab.txt") + $(stat -L -c %s "$SST_CK/model.safetensors") ))
check_eq "/models file_bytes" "$size" "$(echo "$BODY" | jq -r "$m.file_bytes")"
check_eq "/models other default flag" false \
    "$(echo "$BODY" | jq -r '.models[] | select(.name == "mrpc-bert-mini-scratch") | .default')"

if [ -f "$BUNDLED" ]; then
    b='.models[] | select(.name == "sst2-tiny")'
    [ "$(echo "$BODY" | jq -r "$b.format")" != fp32 ] || fail "/models: .bct model reported as fp32"
    check_eq "/models .bct file_bytes" "$(stat -L -c %s "$BUNDLED")" "$(echo "$BODY" | jq -r "$b.file_bytes")"
    check_eq "/models .bct compression ratio > 1" true "$(echo "$BODY" | jq "$b.compression_ratio > 1")"
    post /classify '{"inputs": "a charming and often affecting journey", "model": "sst2-tiny"}'
    check_eq "the .bct model classifies" positive "$(echo "$BODY" | jq -r '.[0].label')"
    req GET /models
fi

req GET /metrics
check_eq "/metrics status" 200 "$STATUS"
check_contains "/metrics content type" "text/plain; version=0.0.4" "$(header Content-Type)"
check_contains "/metrics model info" 'bct_model_info{model="mrpc-bert-mini-scratch",format="fp32",default="false"} 1' "$BODY"
# The int8 kernel level: one known name, the one the startup log gives.
isa=$(echo "$BODY" | sed -n 's/^bct_kernel_info{isa="\([a-z0-9]*\)"} 1$/\1/p')
case "$isa" in scalar | avx2 | avxvnni | avx512vnni | amx) pass=$((pass + 1)) ;; *) fail "/metrics kernel level: [$isa]" ;; esac
check_contains "startup log names the kernel level" "int8 kernels $isa)" "$(cat "$WORK/server.log")"
inputs0=$(metric bct_inputs_total)
tokens0=$(metric bct_tokens_total)
classify0=$(metric bct_http_requests_total '{route="/classify",code="200"}')

# ---- /classify: one text ----
post /classify '{"inputs": "a charming and often affecting journey"}'
check_eq "single: status" 200 "$STATUS"
check_eq "single: two labels" 2 "$(echo "$BODY" | jq length)"
trained && check_eq "single: top label" positive "$(echo "$BODY" | jq -r '.[0].label')"
check_eq "single: sorted" true "$(echo "$BODY" | jq '.[0].score >= .[1].score')"
check "single: probabilities sum to 1" close_to "$(echo "$BODY" | jq '.[0].score + .[1].score')" 1 1e-5
check_eq "single: x-model" sst2-bert-tiny-scratch "$(header x-model)"
check_eq "single: x-compute-tokens" 8 "$(header x-compute-tokens)"
for h in x-total-time x-queue-time x-inference-time x-tokenization-time; do
    [ -n "$(header "$h")" ] || fail "single: header $h missing"
done
# The same scores as the command line.
cli=$("$BCT" classify --model "$SST_CK" --json "a charming and often affecting journey")
check "single: same score as bct classify" close_to "$(echo "$BODY" | jq '.[0].score')" \
    "$(echo "$cli" | jq '.labels[0].score')" 1e-5

# ---- /classify: a list, in input order, against the reference logits ----
N=40
dev_sentences $N | jq -R . | jq -s '{inputs: ., raw_scores: true}' > "$WORK/batch.json"
post /classify "@$WORK/batch.json"
check_eq "batch: status" 200 "$STATUS"
check_eq "batch: one answer per input" $N "$(echo "$BODY" | jq length)"
echo "$BODY" | jq -r '.[] | map({(.label): .score}) | add | "\(.negative)\t\(.positive)"' > "$WORK/got.tsv"
ref_logits $N > "$WORK/ref.tsv"
paste "$WORK/got.tsv" "$WORK/ref.tsv" | awk -F'\t' '
    { d0 = $1 - $3; d1 = $2 - $4; if (d0 < 0) d0 = -d0; if (d1 < 0) d1 = -d1;
      if (d0 > 1e-4 || d1 > 1e-4) { print "row " NR ": " $0; bad = 1 } }
    END { exit bad }' || fail "batch: raw scores differ from the reference logits"
pass=$((pass + 1))
check_eq "metrics: inputs_total moved by the batch" $((inputs0 + 1 + N)) "$(metric bct_inputs_total)"
[ "$(metric bct_tokens_total)" -gt "$tokens0" ] || fail "metrics: tokens_total did not move"
check_eq "metrics: classify 200 count" $((classify0 + 2)) \
    "$(metric bct_http_requests_total '{route="/classify",code="200"}')"

# ---- options ----
post /classify '{"inputs": ["good", "bad"], "top_k": 1}'
check_eq "top_k: shape" '[1,1]' "$(echo "$BODY" | jq -c 'map(length)')"
post /classify '{"inputs": "good", "top_k": 10}'
check_eq "top_k above labels: all labels" 2 "$(echo "$BODY" | jq length)"
post /classify '{"inputs": "good", "truncate": null, "top_k": null, "raw_scores": null, "model": null}'
check_eq "null options mean defaults" 200 "$STATUS"
post /classify '{"inputs": "unflinchingly bleak and desperate", "raw_scores": true}'
if trained; then
    check_eq "raw_scores: logits (not probabilities)" true "$(echo "$BODY" | jq '.[0].score > 1')"
else # a random model's logits are near 0: they do not sum to 1 as probabilities would
    check_eq "raw_scores: logits (not probabilities)" true "$(echo "$BODY" | jq '(.[0].score + .[1].score - 1) | (if . < 0 then -. else . end) > 0.5')"
fi
post /classify '{"inputs": ["only one"]}'
check_eq "list of one: list of lists" 1 "$(echo "$BODY" | jq 'map(length) | length')"

# ---- pairs, and a model chosen per request ----
s1="He said the foodservice pie business doesn't fit the company's long-term growth strategy."
s2="The foodservice pie business does not fit our long-term growth strategy."
jq -n --arg a "$s1" --arg b "$s2" \
    '{model: "mrpc-bert-mini-scratch", inputs: {text: $a, text_pair: $b}}' > "$WORK/pair.json"
post /classify "@$WORK/pair.json"
check_eq "pair: status" 200 "$STATUS"
check_eq "pair: x-model" mrpc-bert-mini-scratch "$(header x-model)"
cli=$("$BCT" classify --model "$PAIR_CK" --json "$s1" "$s2")
pair_score=$(echo "$cli" | jq '.labels[0].score')
check_eq "pair: same top label as bct classify" "$(echo "$cli" | jq -r '.labels[0].label')" \
    "$(echo "$BODY" | jq -r '.[0].label')"
check "pair: same score as bct classify" close_to "$(echo "$BODY" | jq '.[0].score')" \
    "$(echo "$cli" | jq '.labels[0].score')" 1e-5
# Mixed singles and pairs in one list, in order.
jq -n --arg a "$s1" --arg b "$s2" \
    '{model: "mrpc-bert-mini-scratch", inputs: [$a, {text: $a, text_pair: $b}, {text: $b}]}' \
    > "$WORK/mixed.json"
post /classify "@$WORK/mixed.json"
check_eq "mixed: three answers" 3 "$(echo "$BODY" | jq length)"
check_eq "mixed: pair answer in place" "$(echo "$cli" | jq -c '[.labels[].label]')" \
    "$(echo "$BODY" | jq -c '[.[1][].label]')"
post /classify '{"inputs": "x", "model": "sst2-bert-tiny-scratch"}'
check_eq "model by name" sst2-bert-tiny-scratch "$(header x-model)"

# ---- truncation ----
long=$(printf 'a charming and often affecting journey %.0s' $(seq 40))
jq -n --arg t "$long" '{inputs: $t}' > "$WORK/long.json"
post /classify "@$WORK/long.json"
check_eq "long input: truncated by default" 200 "$STATUS"
check_eq "long input: 128 tokens" 128 "$(header x-compute-tokens)"
cli=$("$BCT" classify --model "$SST_CK" --json "$long")
check "long input: same score as bct classify" close_to "$(echo "$BODY" | jq '.[0].score')" \
    "$(echo "$cli" | jq '.labels[0].score')" 1e-5
jq -n --arg t "$long" '{inputs: $t, truncate: false}' > "$WORK/long.json"
post /classify "@$WORK/long.json"
expect_error 422 Validation "long input, truncate=false"
check_contains "long input: message" "128" "$BODY"
jq -n --arg t "$long" '{inputs: [$t, $t], truncate: true}' > "$WORK/long.json"
post /classify "@$WORK/long.json"
check_eq "truncate=true on a list" 200 "$STATUS"

# ---- /predict: text-embeddings-inference shapes ----
post /predict '{"inputs": "a charming and often affecting journey"}'
check_eq "predict single: status" 200 "$STATUS"
check_eq "predict single: TEI shape" '["score","label"]' "$(echo "$BODY" | jq -c '.[0] | keys_unsorted')"
check_eq "predict single: every label" 2 "$(echo "$BODY" | jq length)"
trained && check_eq "predict single: top label" positive "$(echo "$BODY" | jq -r '.[0].label')"
post /predict '{"inputs": ["a charming and often affecting journey"]}'
check_eq "predict [a]: one single" 2 "$(echo "$BODY" | jq length)"
check_eq "predict [a]: not nested" object "$(echo "$BODY" | jq -r '.[0] | type')"
jq -n --arg a "$s1" --arg b "$s2" '{inputs: [$a, $b], model: "mrpc-bert-mini-scratch"}' > "$WORK/p.json"
post /predict "@$WORK/p.json"
check_eq "predict [a, b] is ONE pair" 2 "$(echo "$BODY" | jq length)"
check "predict pair: same score as bct classify" close_to "$(echo "$BODY" | jq '.[0].score')" \
    "$pair_score" 1e-5
post /predict '{"inputs": [["good"], ["bad"], ["good", "bad"]], "raw_scores": true, "truncate": true, "truncation_direction": "right"}'
check_eq "predict batch: status" 200 "$STATUS"
check_eq "predict batch: three lists" '[2,2,2]' "$(echo "$BODY" | jq -c 'map(length)')"
post /predict '{"inputs": "good", "unknown_tei_field": 1, "truncation_direction": "Right"}'
check_eq "predict ignores unknown fields" 200 "$STATUS"

# ---- access log ----
wait_until "access log lines" test -s "$WORK/access.log"
line=$(grep '"path":"/classify"' "$WORK/access.log" | grep '"status":200' | head -1)
[ -n "$line" ] || fail "access log: no /classify line"
for k in ts method path status inputs tokens queue_ms inference_ms total_ms; do
    [ "$(echo "$line" | jq "has(\"$k\")")" = true ] || fail "access log: no $k in $line"
done
pass=$((pass + 1))
check_eq "access log: every line is JSON" 0 "$(jq -e . "$WORK/access.log" >/dev/null; echo $?)"

stop_server TERM
check_eq "exit code after SIGTERM" 0 "$SERVER_RC"
done_ok
