#!/usr/bin/env bash
# Issue 17 (2): one bad model store entry (a truncated .bct, a folder whose
# config.json is {}, a symlink to /etc/passwd named x.bct) used to stop
# `bct serve` from starting, so every replica crash-looped on restart.  The
# server now starts with what loads and reports the rest in the log,
# /models ("unavailable", status "failed") and /metrics; --strict-store 1
# restores the old behaviour.
. "$(dirname "$0")/lib.sh"
need_tools
need_ckpts # ../shared's tiny model, or a random one of its shape (no trained answer is checked)

STORE=$WORK/store
mkdir -p "$STORE/empty-config"
"$BCT" compress --in "$SST_CK" --out "$WORK/good.bct" > /dev/null || fail "compress"
cp "$WORK/good.bct" "$STORE/good.bct"
head -c 1000 "$WORK/good.bct" > "$STORE/truncated.bct"
echo '{}' > "$STORE/empty-config/config.json"
ln -s /etc/passwd "$STORE/x.bct"

# ---- strict: the old behaviour, exit 1 ----
"$BCT" serve --host 127.0.0.1 --port 0 --model-store "$STORE" --strict-store 1 --threads 1 \
    2> "$WORK/strict.log"
check_eq "--strict-store 1: exit 1" 1 "$?"
check_contains "--strict-store 1: names the entry" 'cannot load model' "$(cat "$WORK/strict.log")"

# ---- default: starts with what loads ----
start_server --model-store "$STORE" --store-rescan-s 1 --threads 1
post /classify '{"inputs": "a charming and often affecting journey", "model": "good"}'
check_eq "the good model serves" 200 "$STATUS"
req GET /models
check_eq "/models: the loaded one" "good loaded" "$(echo "$BODY" | jq -r '.models[] | "\(.name) \(.status)"')"
check_eq "/models: the failed ones" "empty-config failed,truncated failed,x failed" \
    "$(echo "$BODY" | jq -r '[.unavailable | sort_by(.name)[] | "\(.name) \(.status)"] | join(",")')"
check_contains "/models: why x failed" "not" "$(echo "$BODY" | jq -r '.unavailable[] | select(.name == "x") | .error')"
check_eq "/metrics: 3 failed entries" 3 "$(metric bct_store_entries_failed)"
for n in truncated empty-config x; do
    check_contains "log names $n" "cannot load model \\\"$n\\\"" "$(cat "$WORK/server.log")"
done

# ---- repaired or removed entries leave the list ----
cp "$WORK/good.bct" "$STORE/.fix.tmp" && mv "$STORE/.fix.tmp" "$STORE/truncated.bct"
rm -rf "$STORE/empty-config"
failed_is() { [ "$(metric bct_store_entries_failed)" = "$1" ]; }
within 30 "the repaired and removed entries leave the list" failed_is 1
post /classify '{"inputs": "a charming and often affecting journey", "model": "truncated"}'
check_eq "the repaired entry serves" 200 "$STATUS"
stop_server
check_eq "clean exit" 0 "$SERVER_RC"

# ---- nothing loadable at all: still an error ----
rm -f "$STORE/good.bct" "$STORE/truncated.bct"
"$BCT" serve --host 127.0.0.1 --port 0 --model-store "$STORE" --threads 1 2> "$WORK/none.log"
check_eq "no model loads: exit 1" 1 "$?"
done_ok
