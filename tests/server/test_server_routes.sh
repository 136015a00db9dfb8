#!/usr/bin/env bash
# bct serve on the bundled model only (runs in a bare clone): POST / in the
# Inference API's shape, API keys, /tokenize, /rerank, /openapi.json
# against the routes answered, X-Request-Id, GET /models/{name}, versions,
# truncation_direction left, blank texts, duplicate Content-Length, %00.
. "$(dirname "$0")/lib.sh"
need_tools
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$WORK/store"
cp "$ROOT/models/sst2-tiny.bct" "$WORK/store/"
printf '# keys\nkey-from-file\n' > "$WORK/keys"
BCT_API_KEY="k1, k2" start_server --model-store "$WORK/store" --api-key-file "$WORK/keys" --threads 1
J=(-H 'Content-Type: application/json')

# ---- versions ----
version=$("$BCT" --version)
case "$version" in "bct "[0-9]*.[0-9]*.[0-9]*) ;; *) fail "bct --version: [$version]" ;; esac
v=${version#bct }
req GET /models
check_eq "/models: bct_version" "$v" "$(echo "$BODY" | jq -r .bct_version)"
check_eq "metrics: build_info" 1 "$(metric bct_build_info "{version=\"$v\"}")"

# ---- API keys ----
post / '{"inputs": "a fine film"}'
expect_error 401 Unauthorized "no key"
check_eq "401: WWW-Authenticate" 'Bearer realm="bct"' "$(header WWW-Authenticate)"
post /classify '{"inputs": "a fine film"}' -H 'Authorization: Bearer k3'
expect_error 401 Unauthorized "a wrong key"
for k in k1 k2 key-from-file; do
    post /classify '{"inputs": "a fine film"}' -H "Authorization: Bearer $k"
    check_eq "key $k accepted" 200 "$STATUS"
done
for p in /health /ready /models /models/sst2-tiny /metrics /openapi.json; do
    req GET $p
    check_eq "$p stays open" 200 "$STATUS"
done
K=(-H 'Authorization: Bearer k2')

# ---- POST /: the Inference API's shape (one list per input) ----
post / '{"inputs": "a charming and often affecting journey"}' "${K[@]}"
check_eq "POST / status" 200 "$STATUS"
check_eq "POST /: one list for one input" 1 "$(echo "$BODY" | jq length)"
check_eq "POST /: labels in response[0]" "negative,positive" "$(echo "$BODY" | jq -r '.[0] | map(.label) | sort | join(",")')"
check "POST /: scores sum to 1" close_to "$(echo "$BODY" | jq '.[0] | map(.score) | add')" 1 1e-4
cls=$(curl -s "${J[@]}" "${K[@]}" -d '{"inputs": "a charming and often affecting journey"}' "$URL/classify")
check_eq "POST / = /classify" "$(echo "$cls" | jq -S -c 'sort_by(.label)')" "$(echo "$BODY" | jq -S -c '.[0] | sort_by(.label)')"
post / '{"inputs": [["good"], ["bad"]], "parameters": {"top_k": 1, "function_to_apply": "none"}}' "${K[@]}"
check_eq "POST / batch: two lists" 2 "$(echo "$BODY" | jq length)"
check_eq "POST / top_k" 1 "$(echo "$BODY" | jq '.[0] | length')"

# ---- X-Request-Id ----
post /classify '{"inputs": "x"}' "${K[@]}" -H 'X-Request-Id: abc-123'
check_eq "X-Request-Id echoed" abc-123 "$(header X-Request-Id)"
wait_until "access log has the request id" grep -q '"request_id":"abc-123"' "$WORK/access.log"
pass=$((pass + 1))
req GET /health
gen=$(header X-Request-Id)
[ ${#gen} -eq 32 ] || fail "generated X-Request-Id [$gen]"
pass=$((pass + 1))
req GET /health -H "X-Request-Id: $(printf 'x%.0s' $(seq 100))"
[ "$(header X-Request-Id | wc -c)" -eq 33 ] || fail "an overlong X-Request-Id is replaced"
pass=$((pass + 1))

# ---- GET /models/{name} ----
req GET /models/sst2-tiny
check_eq "/models/{name}: ready" true "$(echo "$BODY" | jq .ready)"
check_eq "/models/{name}: labels" 2 "$(echo "$BODY" | jq '.labels | length')"
req GET /models/nope
expect_error 404 ModelNotFound "/models/{name} unknown"
req POST /models/sst2-tiny
expect_error 405 MethodNotAllowed "POST /models/{name}"
check_eq "405 Allow from the table" "GET, HEAD" "$(header Allow)"

# ---- /tokenize ----
post /tokenize '{"inputs": "hello world"}' "${K[@]}"
check_eq "/tokenize status" 200 "$STATUS"
check_eq "/tokenize: [CLS] first, special" '"[CLS]" true' "$(echo "$BODY" | jq -r '.[0][0] | "\(.text|tojson) \(.special)"')"
check_eq "/tokenize: pieces" "hello world" "$(echo "$BODY" | jq -r '[.[0][] | select(.special | not) | .text] | join(" ")')"
post /tokenize '{"inputs": ["a", "b c"], "add_special_tokens": false}' "${K[@]}"
check_eq "/tokenize batch, no specials" "1 2" "$(echo "$BODY" | jq -r 'map(length) | join(" ")')"
post /tokenize '{"inputs": "x"}'
expect_error 401 Unauthorized "/tokenize needs a key"

# ---- truncation_direction ----
long=$(for i in $(seq 200); do printf 'word%d ' "$i"; done)
post /tokenize "{\"inputs\": \"$long the end\", \"truncation_direction\": \"left\"}" "${K[@]}"
check_eq "left: keeps the end" "end" "$(echo "$BODY" | jq -r '[.[0][] | select(.special | not) | .text] | last')"
post /tokenize "{\"inputs\": \"$long the end\"}" "${K[@]}"
check_eq "right: keeps the start" "word" "$(echo "$BODY" | jq -r '[.[0][] | select(.special | not) | .text] | first')"
post /predict "{\"inputs\": \"$long\", \"truncation_direction\": \"left\"}" "${K[@]}"
check_eq "/predict left truncation" 200 "$STATUS"
left=$(echo "$BODY" | jq -c .)
post /predict "{\"inputs\": \"$long\", \"truncation_direction\": \"right\"}" "${K[@]}"
[ "$left" != "$(echo "$BODY" | jq -c .)" ] || fail "left and right truncation give the same scores"
pass=$((pass + 1))

# ---- /rerank ----
post /rerank '{"query": "the film", "texts": ["a great film", "a dull film", "fine"], "return_text": true}' "${K[@]}"
check_eq "/rerank status" 200 "$STATUS"
check_eq "/rerank: every index once" "0,1,2" "$(echo "$BODY" | jq -r 'map(.index) | sort | join(",")')"
check_eq "/rerank: sorted by score" true "$(echo "$BODY" | jq '[.[].score] == ([.[].score] | sort | reverse)')"
check_eq "/rerank: return_text" "a great film" "$(echo "$BODY" | jq -r '.[] | select(.index == 0) | .text')"
post /rerank '{"query": "q", "texts": []}' "${K[@]}"
expect_error 422 Validation "/rerank without texts"

# ---- blank texts are empty (issue 17, item 10) ----
for t in '   ' '\t\n ' '\u0001\u0002'; do
    post /classify "{\"inputs\": \"$t\"}" "${K[@]}"
    expect_error 422 Validation "blank text [$t]"
    check_contains "blank text [$t]: says empty" "empty" "$BODY"
done
post /classify '{"inputs": {"text": "fine", "text_pair": "  "}}' "${K[@]}"
expect_error 422 Validation "blank text_pair"

# ---- /openapi.json lists exactly the routes the server answers ----
req GET /openapi.json
check_eq "openapi version" 3.0.3 "$(echo "$BODY" | jq -r .openapi)"
echo "$BODY" > "$WORK/openapi.json"
n=0
while IFS=$'\t' read -r path method; do
    p=${path//\{name\}/sst2-tiny}
    p=${p//\{id\}/no-such-job}
    m=$(echo "$method" | tr a-z A-Z)
    if [ "$m" = GET ]; then req GET "$p" "${K[@]}"; else req "$m" "$p" "${J[@]}" "${K[@]}" -d '{}'; fi
    et=$(echo "$BODY" | jq -r '.error_type? // empty' 2>/dev/null)
    case "$p" in
    /admin/*) check_contains "$m $p: the admin API is off" "admin API is off" "$BODY" ;;
    *) [ "$et" != NotFound ] && [ "$et" != MethodNotAllowed ] || fail "$m $p is documented but answers $STATUS: $BODY" ;;
    esac
    n=$((n + 1))
done < <(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | [$p, .] | @tsv' "$WORK/openapi.json")
[ "$n" -ge 15 ] || fail "openapi.json lists $n operations"
pass=$((pass + 1))

# ---- duplicate Content-Length, %00 (issue 17, item 10) ----
port=${URL##*:}
answer=$(printf 'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\nContent-Length: 13\r\n\r\n{"inputs":""}' |
    timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat >&3; cat <&3")
check_contains "two Content-Length headers: 400" "HTTP/1.1 400" "$answer"
req GET '/models/sst2-tiny%00x'
expect_error 400 BadRequest "a %00 in the path"
server_alive || fail "the server died"
pass=$((pass + 1))
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"
done_ok
