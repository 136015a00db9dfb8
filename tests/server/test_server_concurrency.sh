#!/usr/bin/env bash
# bct serve under concurrent clients: 64 parallel single-sentence requests,
# requests large enough to be split across batches, and two models at
# once.  Every answer must match the reference logits for its own input,
# in input order.  In a bare clone: random checkpoints and sentences,
# against `bct eval`'s logits (lib.sh: need_ckpts, ref_logits).
. "$(dirname "$0")/lib.sh"
need_tools
need_ckpts
MRPC_DEV=$SHARED/data/glue/MRPC/dev.tsv

mkdir -p "$WORK/store"
ln -s "$SST_CK" "$WORK/store/sst2-bert-tiny-scratch"
ln -s "$PAIR_CK" "$WORK/store/mrpc-bert-mini-scratch"
start_server --model-store "$WORK/store" --default-model sst2-bert-tiny-scratch --threads 2 \
    --max-batch-size 8 --max-wait-us 2000 --access-log off

# ---- 64 clients, one sentence each ----
N=64
dev_sentences $N > "$WORK/sentences"
i=0
while IFS= read -r s; do
    i=$((i + 1))
    jq -n --arg t "$s" '{inputs: $t, raw_scores: true}' > "$WORK/par/b$i.json"
done < "$WORK/sentences"
batches0=$(metric bct_batch_size_count)
parallel_post /classify
all_200 $N "64 concurrent singles"
for i in $(seq $N); do logits_of "$WORK/par/o$i.json"; done > "$WORK/got.tsv"
ref_logits $N > "$WORK/ref.tsv"
compare_rows "$WORK/got.tsv" "$WORK/ref.tsv" "64 concurrent singles"
batches=$(( $(metric bct_batch_size_count) - batches0 ))
[ "$batches" -lt $N ] || fail "64 concurrent singles ran in $batches batches: no batching"
pass=$((pass + 1))
check_eq "batches never exceed max_batch_size" 0 \
    "$(curl -s "$URL/metrics" | awk '/^bct_batch_size_bucket\{le="8"\}/ { a = $2 } /^bct_batch_size_count/ { b = $2 } END { print b - a }')"

# ---- 16 clients, 20 sentences each: split over batches of 8, in order ----
rm -f "$WORK"/par/*
dev_sentences 200 > "$WORK/sentences"
ref_logits 200 > "$WORK/ref200.tsv"
for c in $(seq 16); do
    off=$(( (c * 7) % 180 ))
    sed -n "$((off + 1)),$((off + 20))p" "$WORK/sentences" | jq -R . |
        jq -s '{inputs: ., raw_scores: true}' > "$WORK/par/b$c.json"
done
parallel_post /classify
all_200 16 "16 concurrent lists of 20"
for c in $(seq 16); do
    off=$(( (c * 7) % 180 ))
    logits_of "$WORK/par/o$c.json" > "$WORK/got.tsv"
    sed -n "$((off + 1)),$((off + 20))p" "$WORK/ref200.tsv" > "$WORK/ref.tsv"
    compare_rows "$WORK/got.tsv" "$WORK/ref.tsv" "list $c (inputs $((off + 1))..$((off + 20)))"
done

# ---- two models at once: batches never mix them ----
rm -f "$WORK"/par/*
if [ -d "$MRPC" ]; then
    tail -n +2 "$MRPC_DEV" | head -n 24 | cut -f4,5 > "$WORK/pairs"
    head -n 24 "$MRPC/ref_dev_logits.tsv" > "$WORK/mrpc_ref.tsv"
else
    paste <(random_sentences 24 11) <(random_sentences 24 12) > "$WORK/pairs"
    { printf 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
      awk -F'\t' '{ print "0\t1\t2\t" $1 "\t" $2 }' "$WORK/pairs"; } > "$WORK/mrpc.tsv"
    "$BCT" eval --model "$PAIR_CK" --task mrpc --data "$WORK/mrpc.tsv" --threads 1 \
        --dump-logits "$WORK/mrpc_ref.tsv" > /dev/null || fail "bct eval for the pair references"
fi
i=0
while IFS=$'\t' read -r a b; do
    i=$((i + 1))
    jq -n --arg a "$a" --arg b "$b" \
        '{model: "mrpc-bert-mini-scratch", inputs: {text: $a, text_pair: $b}, raw_scores: true}' \
        > "$WORK/par/b$i.json"
    s=$(sed -n "${i}p" "$WORK/sentences")
    jq -n --arg t "$s" '{inputs: [$t], raw_scores: true}' > "$WORK/par/b$((i + 100)).json"
done < "$WORK/pairs"
parallel_post /classify
all_200 48 "two models, 48 concurrent requests"
for i in $(seq 24); do logits_of "$WORK/par/o$i.json" mrpc-bert-mini-scratch; done > "$WORK/got.tsv"
compare_rows "$WORK/got.tsv" "$WORK/mrpc_ref.tsv" "mrpc pairs under concurrency"
for i in $(seq 24); do logits_of "$WORK/par/o$((i + 100)).json"; done > "$WORK/got.tsv"
head -n 24 "$WORK/ref200.tsv" > "$WORK/ref.tsv"
compare_rows "$WORK/got.tsv" "$WORK/ref.tsv" "sst2 singles beside mrpc"

# ---- /predict, concurrently, TEI batch shape ----
rm -f "$WORK"/par/*
for c in $(seq 32); do
    sed -n "$c,$((c + 2))p" "$WORK/sentences" | jq -R '[.]' | jq -s '{inputs: ., raw_scores: true}' \
        > "$WORK/par/b$c.json"
done
parallel_post /predict
all_200 32 "32 concurrent /predict batches"
for c in 1 17 32; do
    logits_of "$WORK/par/o$c.json" > "$WORK/got.tsv"
    sed -n "$c,$((c + 2))p" "$WORK/ref200.tsv" > "$WORK/ref.tsv"
    compare_rows "$WORK/got.tsv" "$WORK/ref.tsv" "/predict batch $c"
done

check_eq "queue empty at the end" 0 "$(metric bct_queue_depth)"
check_eq "nothing in flight at the end" 0 "$(metric bct_requests_in_flight)"
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"

# ---- one worker splitting its batches over an engine pool of 2 ----
# The bundled int8 model, 64 concurrent singles: the same logits as
# `bct eval --dump-logits` on that file (the engine's results do not
# depend on its thread count).
BUNDLED=$(cd "$(dirname "$0")/../.." && pwd)/models/sst2-tiny.bct
dev_sentences 64 | awk 'BEGIN { print "sentence\tlabel" } { print $0 "\t0" }' > "$WORK/dev64.tsv"
"$BCT" eval --model "$BUNDLED" --task sst2 --data "$WORK/dev64.tsv" --dump-logits "$WORK/bundled_ref.tsv" \
    >/dev/null || fail "bct eval --dump-logits on the bundled model"
start_server --model "$BUNDLED" --threads 1 --intra-op-threads 2 --max-batch-size 16 --max-wait-us 2000 \
    --access-log off
grep -q '1 workers x 2 engine threads' "$WORK/server.log" || fail "the server did not report 1 worker x 2 engine threads"
pass=$((pass + 1))
rm -f "$WORK"/par/*
i=0
while IFS= read -r s; do
    i=$((i + 1))
    jq -n --arg t "$s" '{inputs: $t, raw_scores: true}' > "$WORK/par/b$i.json"
done < <(dev_sentences 64)
parallel_post /classify
all_200 64 "64 concurrent singles, intra-op pool"
for i in $(seq 64); do logits_of "$WORK/par/o$i.json" sst2-tiny; done > "$WORK/got.tsv"
compare_rows "$WORK/got.tsv" "$WORK/bundled_ref.tsv" "intra-op pool vs bct eval"
stop_server TERM
check_eq "exit code (intra-op pool)" 0 "$SERVER_RC"
done_ok
