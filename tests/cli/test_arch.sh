#!/usr/bin/env bash
# DistilBERT, RoBERTa, XLM-R and ELECTRA checkpoints (made by
# tests/data/ref_arch.py into $BCT_ARCH_MODELS) through the commands a user
# runs: compress with both presets, eval, compare, classify, and serve
# (/models names each architecture; /classify answers with its labels).
. "$(dirname "$0")/../server/lib.sh"
need_tools
: "${BCT_ARCH_MODELS:?BCT_ARCH_MODELS must point at the generated checkpoints}"
M=$BCT_ARCH_MODELS
json_num() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<< "$2" | head -1; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a >= b)}'; }

# A small SST-2-shaped set from the fixtures' vocabulary.
printf 'sentence\tlabel\n' > "$WORK/dev.tsv"
for s in "the film was good" "bad acting , dull plot" "a charming and moving story" \
    "the worst movie" "funny but too long" "i love this cast" "boring script" "a great director"; do
    printf '%s\t%d\n' "$s" $((${#s} % 2)) >> "$WORK/dev.tsv"
done

# name  architecture  a tensor the compress report lists  first label (classify)
specs=(
    "distilbert DistilBertForSequenceClassification distilbert.transformer.layer.1.ffn.lin1.weight toxic"
    "distilbert-relu DistilBertForSequenceClassification pre_classifier.weight LABEL_0"
    "roberta RobertaForSequenceClassification classifier.out_proj.weight negative"
    "xlm-roberta XLMRobertaForSequenceClassification roberta.encoder.layer.1.output.dense.weight score"
    "electra ElectraForSequenceClassification electra.embeddings_project.weight contradiction"
)
mkdir -p "$WORK/store"
for spec in "${specs[@]}"; do
    read -r name arch tensor label <<< "$spec"
    for preset in w8a8 w4a8; do
        out="$WORK/$name-$preset.bct"
        rep=$("$BCT" compress --in "$M/$name" --out "$out" --preset "$preset") || fail "compress $name $preset"
        check_contains "$name $preset report lists $tensor" "$tensor" "$rep"
        check_contains "$name $preset file records the architecture" "\"architecture\":\"$arch\"" \
            "$(tail -c 100000 "$out" | tr -d '\0')"
        ev=$("$BCT" eval --model "$out" --task sst2 --data "$WORK/dev.tsv" --json) || fail "eval $name $preset"
        check_eq "$name $preset eval n" 8 "$(json_num n "$ev")"
        cmp=$("$BCT" compare "$M/$name" "$out" --task sst2 --data "$WORK/dev.tsv" --json) ||
            fail "compare $name $preset"
        check_contains "$name $preset compare reports agreement" '"agreement":' "$cmp"
    done
    # w8a8 stays within 0.1 of these random models' logits (which reach ~1;
    # near-ties make agreement a poor measure on random weights).
    cmp=$("$BCT" compare "$M/$name" "$WORK/$name-w8a8.bct" --task sst2 --data "$WORK/dev.tsv" --json)
    check "$name w8a8 max logit diff < 0.1" at_least 0.1 "$(json_num max_logit_diff "$cmp")"
    out=$("$BCT" classify --model "$WORK/$name-w8a8.bct" "the movie is fun")
    check_contains "$name classify names its labels" "$label" "$out"
    ln -s "$M/$name" "$WORK/store/$name"
    cp "$WORK/$name-w4a8.bct" "$WORK/store/$name-w4a8.bct"
done

start_server --model-store "$WORK/store" --default-model roberta --threads 2
req GET /models
check_eq "/models status" 200 "$STATUS"
MODELS=$BODY
check_eq "/models count" 10 "$(echo "$MODELS" | jq '.models | length')"
m='.models[] | select(.name == "distilbert")'
check_eq "/models problem_type" multi_label_classification "$(echo "$MODELS" | jq -r "$m.problem_type")"
check_eq "/models roberta max_len" 64 "$(echo "$MODELS" | jq -r '.models[] | select(.name == "roberta") | .max_len')"
for spec in "${specs[@]}"; do
    read -r name arch tensor label <<< "$spec"
    for m in "$name" "$name-w4a8"; do
        check_eq "/models $m architecture" "$arch" \
            "$(echo "$MODELS" | jq -r ".models[] | select(.name == \"$m\") | .architecture")"
        post /classify "{\"inputs\": \"a good film\", \"model\": \"$m\"}"
        check_eq "/classify $m status" 200 "$STATUS"
        check_contains "/classify $m labels" "\"$label\"" "$BODY"
    done
done
stop_server
done_ok
