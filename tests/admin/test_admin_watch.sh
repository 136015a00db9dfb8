#!/usr/bin/env bash
# Store watching (issue 8): two servers share one model store, as the
# deployment's admin replica and an inference replica do.  What the admin
# replica publishes, replaces or deletes, the other one loads, swaps or
# unloads within seconds, without failing a request; files dropped into
# the store by hand are picked up when complete (hidden name + rename);
# a bad file is reported once and retried only when it changes; temp
# files are ignored.
. "$(dirname "$0")/lib.sh"
need_tools

NAME=shared-model
new_store
start_admin --store-rescan-s 2

# ---- replica B: no admin API, same store ----
rm -f "$WORK/b.port"
"$BCT" serve --host 127.0.0.1 --port 0 --port-file "$WORK/b.port" --model-store "$STORE" \
    --threads 1 --access-log off --store-rescan-s 2 2> "$WORK/b.log" &
B_PID=$!
EXTRA_PIDS+=($B_PID)
b_port() { kill -0 "$B_PID" 2>/dev/null || fail "replica B exited"; [ -s "$WORK/b.port" ]; }
wait_until "replica B listening" b_port
B=http://127.0.0.1:$(cat "$WORK/b.port")
is_ready_b() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$B/ready")" = 200 ]; }
wait_until "replica B ready" is_ready_b

# b_version NAME: the version B serves ("-" when it has no such model).
b_version() {
    curl -s --max-time 10 "$B/models" | jq -r --arg n "$1" \
        '[.models[] | select(.name == $n) | .version | tostring] | first // "-"'
}
b_has() { [ "$(b_version "$1")" = "$2" ]; }

# ---- a model published on the admin replica is served by B ----
upload "$NAME" "$CKPT"
check_eq "upload: 202" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "upload: succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
within 5 "B serves version 1" b_has "$NAME" 1
body=$(jq -cn --arg m "$NAME" '{inputs: ["a charming and often affecting journey", "dull"], model: $m, raw_scores: true}')
a_answer=$(curl -s --max-time 30 -H 'Content-Type: application/json' --data-binary "$body" "$URL/classify")
b_answer=$(curl -s --max-time 30 -H 'Content-Type: application/json' --data-binary "$body" "$B/classify")
check_eq "B answers like the admin replica, byte for byte" "$a_answer" "$b_answer"

# ---- replaced under traffic on B: B swaps to version 2, no failure ----
URL_A=$URL
URL=$B
start_traffic b "$NAME"
URL=$URL_A
T=$TRAFFIC
wait_until "traffic on B" traffic_at_least b 5
upload "$NAME" "$CKPT" -F preset=w4a8
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "replace: version 2" "succeeded 2" "$(jq -r '"\(.state) \(.version)"' "$WORK/job.json")"
within 5 "B serves version 2" b_has "$NAME" 2
n=$(traffic_count b)
wait_until "traffic on B's version 2" traffic_at_least b $((n + 20))
stop_traffic b "$T"
check_eq "B: format of version 2" w4a8 \
    "$(curl -s "$B/models" | jq -r --arg n "$NAME" '.models[] | select(.name == $n) | .format')"
grep -q "replaced \\\\\"$NAME\\\\\" version 2" "$WORK/b.log" || fail "B did not log the swap"
pass=$((pass + 1))

# ---- files dropped into the store by hand ----
cp "$ROOT/models/sst2-tiny.bct" "$STORE/.copy.bct.partial"
mv "$STORE/.copy.bct.partial" "$STORE/by-hand.bct"
within 5 "B loads a file renamed into the store" b_has by-hand 1
# Written in two steps on purpose, as a shell redirect or cp does: created
# empty, filled a moment later.  The watcher must not report the empty
# file and then the full one (issue 17: this test failed under load when a
# scan fell between the two steps); it waits until the file is quiet.
{ sleep 0.3; head -c 4096 /dev/urandom; } > "$STORE/junk.bct"
head -c 1000 "$ROOT/models/sst2-tiny.bct" > "$STORE/half.bct.tmp.Ab12Cd"
junk_warnings() { grep -c 'cannot load \\"junk\\"' "$WORK/b.log" || true; }
junk_reported() { [ "$(junk_warnings)" -ge "$1" ]; }
within 5 "B reports the bad file" junk_reported 1
sleep 4.5 # two periodic rescans: not reported again while unchanged
check_eq "the bad file is reported once while it does not change" 1 "$(junk_warnings)"
head -c 4096 /dev/urandom > "$STORE/junk.bct.new"
mv "$STORE/junk.bct.new" "$STORE/junk.bct"
within 5 "the changed bad file is tried again" junk_reported 2
check_eq "temp files are ignored" "" "$(grep -F 'half' "$WORK/b.log")"
check_eq "B does not serve the bad file" - "$(b_version junk)"
post /classify '{"inputs": "still fine"}'
check_eq "the admin replica still serves" 200 "$STATUS"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
    --data-binary '{"inputs": "still fine"}' "$B/classify")
check_eq "B still serves" 200 "$code"
rm -f "$STORE/junk.bct" "$STORE/half.bct.tmp.Ab12Cd"

# ---- deleted on the admin replica: B unloads it ----
req DELETE "/admin/models/$NAME" "${AUTH[@]}"
check_eq "delete: 200" 200 "$STATUS"
within 5 "B unloads the deleted model" b_has "$NAME" -
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
    --data-binary "$body" "$B/classify")
check_eq "B: the deleted model is gone (404)" 404 "$code"
rm "$STORE/by-hand.bct"
within 5 "B unloads a file removed by hand" b_has by-hand -
check_eq "B kept its default model" 1 "$(b_version sst2-tiny)"

kill -TERM "$B_PID"
wait "$B_PID"
check_eq "B exit code" 0 $?
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"
grep -q '"level":"error"' "$WORK/b.log" && fail "replica B logged an error"
pass=$((pass + 1))
done_ok
