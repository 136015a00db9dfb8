#!/usr/bin/env bash
# Issue 17 (1): served model files overwritten or truncated in place
# (`cp new.bct store/m.bct`, `rsync --inplace`, `truncate`) while requests
# run.  The server used to read tensors from a private mapping of the file
# and died of SIGBUS; it now serves from its own copy, keeps answering with
# the model it has, and swaps to the new file once the store watcher has
# loaded it.
. "$(dirname "$0")/lib.sh"
need_tools
need_ckpts # ../shared's tiny model, or a random one of its shape (no trained answer is checked)

STORE=$WORK/store
mkdir -p "$STORE/ck"
"$BCT" compress --in "$SST_CK" --out "$WORK/a.bct" > /dev/null || fail "compress w8a8"
"$BCT" compress --in "$SST_CK" --out "$WORK/b.bct" --preset w4a8 > /dev/null || fail "compress w4a8"
cp "$WORK/a.bct" "$STORE/m.bct"
cp "$SST_CK/config.json" "$SST_CK/vocab.txt" "$SST_CK/model.safetensors" "$STORE/ck/"
start_server --model-store "$STORE" --store-rescan-s 1 --threads 1

# traffic MODEL: POSTs until $WORK/stop exists; one status code per line.
traffic() {
    local body
    body=$(jq -cn --arg m "$1" '{inputs: ["a charming and often affecting journey", "dull"], model: $m}')
    while [ ! -e "$WORK/stop" ] && server_alive; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 -H 'Content-Type: application/json' \
            --data-binary "$body" "$URL/classify" >> "$WORK/traffic.$1" || echo 000 >> "$WORK/traffic.$1"
    done
}
traffic m & T1=$!
traffic ck & T2=$!
trap 'touch "$WORK/stop"; kill $T1 $T2 2>/dev/null; wait $T1 $T2 2>/dev/null; cleanup' EXIT
sent() { [ "$(cat "$WORK/traffic.m" "$WORK/traffic.ck" 2>/dev/null | wc -l)" -ge "$1" ]; }
wait_until "traffic" sent 10
format_of() { curl -s --max-time 10 "$URL/models" | jq -r --arg n "$1" '.models[] | select(.name == $n) | .format'; }
bump() { n=$(cat "$WORK/traffic.m" "$WORK/traffic.ck" | wc -l); wait_until "traffic after: $1" sent $((n + 10)); }

w8=$(format_of m)
truncate -s 1000 "$STORE/m.bct"
bump "m.bct truncated to 1000 bytes"
check "alive after truncating the .bct" server_alive
check_eq "the old m still served" "$w8" "$(format_of m)"
cp "$WORK/b.bct" "$STORE/m.bct" # in place: same inode, O_TRUNC then write
bump "m.bct overwritten in place"
check "alive after overwriting the .bct in place" server_alive
has_w4() { [ "$(format_of m)" != "$w8" ]; }
within 30 "the watcher loads the overwritten .bct" has_w4
bump "m.bct replaced"

truncate -s 1000 "$STORE/ck/model.safetensors"
bump "model.safetensors truncated"
check "alive after truncating the checkpoint" server_alive
dd if="$SST_CK/model.safetensors" of="$STORE/ck/model.safetensors" bs=64k conv=notrunc status=none
dd if=/dev/zero of="$STORE/ck/model.safetensors" bs=1 count=4096 seek=4096 conv=notrunc status=none
bump "model.safetensors rewritten in place (rsync --inplace)"
check "alive after rewriting the checkpoint in place" server_alive

touch "$WORK/stop"
wait "$T1" "$T2"
total=$(cat "$WORK/traffic.m" "$WORK/traffic.ck" | wc -l)
ok=$(cat "$WORK/traffic.m" "$WORK/traffic.ck" | grep -c '^200$')
echo "requests: $total, 200: $ok"
check_eq "every request answered 200" "$total" "$ok"
stop_server
check_eq "clean exit" 0 "$SERVER_RC"
done_ok
