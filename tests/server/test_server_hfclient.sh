#!/usr/bin/env bash
# The real Hugging Face JavaScript client (@huggingface/inference, npm)
# against POST / on the bundled model, with an API key.  Needs node and npm;
# the client is installed once into ${XDG_CACHE_HOME:-~/.cache}/bct-hfclient
# (outside the repository).  Skipped (77) without node/npm or when npm
# cannot reach its registry.
. "$(dirname "$0")/lib.sh"
need_tools
command -v node >/dev/null && command -v npm >/dev/null || { echo "skipped: node/npm not installed"; exit 77; }
HF_VERSION=4.13.30
cache=${XDG_CACHE_HOME:-$HOME/.cache}/bct-hfclient
if [ "$(node -e "try{console.log(require('$cache/node_modules/@huggingface/inference/package.json').version)}catch(e){}")" != "$HF_VERSION" ]; then
    mkdir -p "$cache"
    [ -f "$cache/package.json" ] || echo '{"name": "bct-hfclient", "private": true}' > "$cache/package.json"
    (cd "$cache" && timeout 300 npm install --no-audit --no-fund --silent "@huggingface/inference@$HF_VERSION") ||
        { echo "skipped: npm could not install @huggingface/inference@$HF_VERSION"; exit 77; }
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JS=$(dirname "$0")/hf_client.mjs
start_server --model "$ROOT/models/sst2-tiny.bct" --api-key hf-test-key --threads 1
out=$(node "$JS" "$cache" "$URL" hf-test-key) || fail "the client failed: $out"
check_eq "two labels" 2 "$(echo "$out" | wc -l)"
check_eq "the top label" positive "$(echo "$out" | head -1 | cut -d' ' -f1)"
ref=$(curl -s -H 'Authorization: Bearer hf-test-key' -H 'Content-Type: application/json' \
    -d '{"inputs": "a charming and often affecting journey"}' "$URL/classify" | jq -r '.[0].score')
check_eq "the score /classify gives" "$ref" "$(echo "$out" | head -1 | cut -d' ' -f2)"
if node "$JS" "$cache" "$URL" wrong-key > "$WORK/wrong.txt" 2>&1; then fail "a wrong key was accepted"; fi
check_contains "a wrong key: the client reports the 401" "API key" "$(cat "$WORK/wrong.txt")"
grep -q '"method":"POST","path":"/","status":200' "$WORK/access.log" || fail "POST / not in the access log"
pass=$((pass + 1))
stop_server TERM
done_ok
