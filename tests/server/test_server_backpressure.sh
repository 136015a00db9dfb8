#!/usr/bin/env bash
# bct serve: a full queue answers 429 with Retry-After; a client that
# disconnects while its request is queued has the request dropped (never
# computed); a burst against a tiny queue gets only 200s and 429s.
. "$(dirname "$0")/lib.sh"
need_tools

# max_wait_us = 10 s and batches of up to 64: a request sits in the queue
# for 10 s unless a batch fills, which makes queue states deterministic.
start_server --model "$SERVE_MODEL" --threads 1 --queue-size 4 --max-inputs-per-request 4 \
    --max-batch-size 64 --max-wait-us 10000000

queue_is() { [ "$(metric bct_queue_depth)" = "$1" ]; }
dropped_is() { [ "$(metric bct_requests_dropped_total)" = "$1" ]; }

# ---- a client that gives up while queued ----
curl -s --max-time 1 -o /dev/null -H 'Content-Type: application/json' \
    --data-binary '{"inputs": ["first", "second"]}' "$URL/classify" &
gone=$!
wait_until "request queued" queue_is 2
wait "$gone"
wait_until "disconnected request dropped" dropped_is 1
wait_until "queue emptied" queue_is 0
check_eq "dropped inputs were never computed" 0 "$(metric bct_inputs_total)"
check_eq "nothing in flight" 0 "$(metric bct_requests_in_flight)"
has_499() { grep -q '"status":499' "$WORK/access.log"; }
wait_until "access log records the abandoned request (499)" has_499
pass=$((pass + 1))

# ---- queue full: 429 + Retry-After ----
curl -s --max-time 60 -o "$WORK/r1.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary '{"inputs": ["good", "bad", "great", "awful"]}' "$URL/classify" > "$WORK/r1.status" &
r1=$!
wait_until "4 inputs queued" queue_is 4
post /classify '{"inputs": "one more"}'
expect_error 429 Overloaded "queue full"
check_eq "429 Retry-After" 1 "$(header Retry-After)"
post /predict '{"inputs": "one more"}'
expect_error 429 Overloaded "queue full (/predict)"
for i in $(seq 16); do echo '{"inputs": "burst"}' > "$WORK/par/b$i.json"; done
parallel_post /classify
check_eq "burst against a full queue: 16 answers" 16 "$(wc -l < "$WORK/status")"
check_eq "burst against a full queue: only 200 or 429" 0 "$(grep -cv '^\(200\|429\) ' "$WORK/status")"
grep -q '^429 ' "$WORK/status" || fail "burst against a full queue: no 429"
pass=$((pass + 1))
wait "$r1"
check_eq "the queued request still completes" 200 "$(cat "$WORK/r1.status")"
check_eq "and has its 4 answers" 4 "$(jq length "$WORK/r1.json")"
check_eq "in input order" '["positive","negative","positive","negative"]' \
    "$(jq -c 'map(.[0].label)' "$WORK/r1.json")"
[ "$(metric bct_http_requests_total '{route="/classify",code="429"}')" -ge 2 ] || fail "429s not counted"
pass=$((pass + 1))
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"

# ---- a realistic burst against a tiny queue (no waiting for batches) ----
start_server --model "$SERVE_MODEL" --threads 1 --queue-size 2 --max-inputs-per-request 2 \
    --max-batch-size 1 --max-wait-us 0 --access-log off
long="it 's a charming and often affecting journey through the lives of people we come to know"
rm -f "$WORK"/par/*
for i in $(seq 48); do jq -n --arg t "$long" '{inputs: [$t, $t]}' > "$WORK/par/b$i.json"; done
parallel_post /classify
check_eq "tiny queue burst: 48 answers" 48 "$(wc -l < "$WORK/status")"
check_eq "tiny queue burst: only 200 or 429" 0 "$(grep -cv '^\(200\|429\) ' "$WORK/status")"
grep -q '^200 ' "$WORK/status" || fail "tiny queue burst: nothing got through"
pass=$((pass + 1))
for f in $(grep '^200 ' "$WORK/status" | awk '{ print $2 }'); do
    check_eq "tiny queue burst: answer $f" '["positive","positive"]' \
        "$(jq -c 'map(.[0].label)' "$WORK/par/o$f.json")"
done
req GET /health
check_eq "healthy after the burst" 200 "$STATUS"
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"
done_ok
