#!/usr/bin/env bash
# bct serve: every error answer.  Each must be JSON {"error", "error_type"}
# with the right status, and no client input may produce a 500, a crash or
# a hang.
. "$(dirname "$0")/lib.sh"
need_tools

start_server --model "$SERVE_MODEL" --threads 1 --max-body-bytes 65536 --max-inputs-per-request 8 \
    --queue-size 64 --connection-timeout-s 3

# raw_request FILE: sends FILE's bytes as they are and prints the answer
# (the request should say "Connection: close").
raw_request() {
    local port=${URL##*:}
    exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
    cat "$1" >&3
    timeout 30 cat <&3
    exec 3<&- 3>&-
}
raw_status() { head -1 | awk '{ print $2 }'; }

# ---- 400: malformed JSON ----
for body in '{"inputs": "x"' '{"inputs": "x"} trailing' '' "{'inputs': 'x'}" '{"inputs": "x",}' \
            '{"inputs": ["a" "b"]}' '[1, 2'; do
    post /classify "$body"
    expect_error 400 BadRequest "malformed [$body]"
done
printf '{"inputs": "a\0b"}' > "$WORK/nul.json"
post /classify "@$WORK/nul.json"
expect_error 400 BadRequest "raw NUL byte"

# ---- 413: body size (Content-Length, streamed bytes) and input count ----
head -c 100000 /dev/zero | tr '\0' 'a' | jq -R '{inputs: .}' > "$WORK/big.json"
post /classify "@$WORK/big.json"
expect_error 413 PayloadTooLarge "Content-Length over max_body_bytes"
post /classify "@$WORK/big.json" -H 'Transfer-Encoding: chunked'
expect_error 413 PayloadTooLarge "chunked body over max_body_bytes (counted as it streams)"
# A header that lies: 10 MB announced, a few bytes sent.  413 at once.
printf 'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n{"inputs": "x"}' > "$WORK/lie.txt"
check_eq "lying Content-Length: 413 before the body" 413 "$(raw_request "$WORK/lie.txt" | raw_status)"
# A header that lies the other way: 5 bytes announced, more sent.  Only 5
# bytes are the body (malformed JSON); the rest is never taken as JSON.
printf 'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{"inputs": "x"}' > "$WORK/short.txt"
check_eq "short Content-Length: the 5 bytes are malformed JSON" 400 \
    "$(raw_request "$WORK/short.txt" | raw_status)"
# A stalled upload (fewer bytes than announced) is closed after the
# connection timeout instead of holding the server.
printf 'POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inp' > "$WORK/stall.txt"
start=$SECONDS
raw_request "$WORK/stall.txt" > /dev/null
[ $((SECONDS - start)) -lt 25 ] || fail "stalled upload was not timed out"
pass=$((pass + 1))
post /classify '{"inputs": ["1", "2", "3", "4", "5", "6", "7", "8", "9"]}'
expect_error 413 PayloadTooLarge "too many inputs"
post /predict '{"inputs": [["1"], ["2"], ["3"], ["4"], ["5"], ["6"], ["7"], ["8"], ["9"]]}'
expect_error 413 PayloadTooLarge "too many inputs (/predict)"
post /classify '{"inputs": ["1", "2", "3", "4", "5", "6", "7", "8"]}'
check_eq "exactly max_inputs_per_request is fine" 200 "$STATUS"

# ---- 415: content type ----
req POST /classify -H 'Content-Type:' --data-binary '{"inputs": "x"}'
expect_error 415 UnsupportedMediaType "no Content-Type"
req POST /classify -H 'Content-Type: text/plain' --data-binary '{"inputs": "x"}'
expect_error 415 UnsupportedMediaType "text/plain"
req POST /classify -H 'Content-Type: application/x-www-form-urlencoded' --data-binary '{"inputs": "x"}'
expect_error 415 UnsupportedMediaType "form encoding"
req POST /classify -H 'Content-Type: application/json; charset=latin1' --data-binary '{"inputs": "x"}'
expect_error 415 UnsupportedMediaType "charset other than UTF-8"
req POST /classify -H 'Content-Type: application/jsonx' --data-binary '{"inputs": "x"}'
expect_error 415 UnsupportedMediaType "application/jsonx"
req POST /classify -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary '{"inputs": "x"}'
expect_error 415 UnsupportedMediaType "compressed body"
for ct in 'application/json; charset=utf-8' 'Application/JSON;charset="UTF-8"' 'application/json ; charset=utf8'; do
    req POST /classify -H "Content-Type: $ct" --data-binary '{"inputs": "x"}'
    check_eq "accepted Content-Type [$ct]" 200 "$STATUS"
done

# ---- 422: validation ----
while IFS= read -r body; do
    post /classify "$body"
    expect_error 422 Validation "[$body]"
done <<'EOF'
{"inputs": ""}
{"inputs": ["fine", ""]}
{"inputs": {"text": ""}}
{"inputs": {"text": "a", "text_pair": ""}}
{"inputs": []}
{"inputs": 42}
{"inputs": null}
{"inputs": true}
{"inputs": [1, 2]}
{"inputs": [["nested"]]}
{"inputs": {"txt": "a"}}
{"inputs": {"text": 5}}
{"inputs": {"text": "a", "text_pair": 5}}
{"inputs": {"text": "a", "extra": "b"}}
{}
{"input": "typo"}
{"inputs": "x", "top_k": 0}
{"inputs": "x", "top_k": -1}
{"inputs": "x", "top_k": 1.5}
{"inputs": "x", "top_k": "2"}
{"inputs": "x", "truncate": "yes"}
{"inputs": "x", "raw_scores": 1}
{"inputs": "x", "model": 7}
{"inputs": "x", "model": ""}
["not", "an", "object"]
"just a string"
{"inputs": "\ud800"}
{"inputs": "a\udc00b"}
{"inputs": "\ud800\u0041"}
{"inputs": ["ok", "\udbff"]}
{"inputs": "a\u0000b"}
EOF
printf '{"inputs": "bad \xff\xfe bytes"}' > "$WORK/bad_utf8.json"
post /classify "@$WORK/bad_utf8.json"
expect_error 422 Validation "invalid UTF-8 bytes"
check_contains "invalid UTF-8: message says so" "UTF-8" "$BODY"
printf '{"inputs": {"text": "ok", "text_pair": "\xc3\x28"}}' > "$WORK/bad_utf8.json"
post /classify "@$WORK/bad_utf8.json"
expect_error 422 Validation "invalid UTF-8 in text_pair"
post /classify '{"inputs": "\ud800"}'
check_contains "lone surrogate: message says so" "surrogate" "$BODY"
post /classify '{"inputs": "smile \ud83d\ude00 please"}'
check_eq "a valid surrogate pair is fine" 200 "$STATUS"
post /classify '{"inputs": "a \\u0000 b"}'
check_eq "an escaped backslash before u0000 is plain text" 200 "$STATUS"
long=$(printf 'word %.0s' $(seq 300))
post /classify "{\"inputs\": \"$long\", \"truncate\": false}"
expect_error 422 Validation "too long with truncate=false"
post /predict "{\"inputs\": \"$long\", \"truncate\": false}"
expect_error 422 Validation "too long with truncate=false (/predict)"
while IFS= read -r body; do
    post /predict "$body"
    expect_error 422 Validation "/predict [$body]"
done <<'EOF'
{"inputs": ["a", "b", "c"]}
{"inputs": []}
{"inputs": [[]]}
{"inputs": [["a", "b", "c"]]}
{"inputs": [["a"], "b"]}
{"inputs": ["a", ["b"]]}
{"inputs": [[1]]}
{"inputs": {"text": "a"}}
{"inputs": ""}
{"inputs": "x", "truncation_direction": "up"}
{"inputs": "x", "truncation_direction": 1}
{"inputs": "x", "raw_scores": "no"}
EOF

# ---- 404 and 405 ----
req GET /nope
expect_error 404 NotFound "unknown route"
req POST /classify/ -H 'Content-Type: application/json' --data-binary '{"inputs": "x"}'
expect_error 404 NotFound "trailing slash"
post /classify '{"inputs": "x", "model": "no-such-model"}'
expect_error 404 ModelNotFound "unknown model"
req GET /classify
expect_error 405 MethodNotAllowed "GET /classify"
check_eq "405 Allow for /classify" POST "$(header Allow)"
req PUT /predict -H 'Content-Type: application/json' --data-binary '{"inputs": "x"}'
expect_error 405 MethodNotAllowed "PUT /predict"
req POST /health --data-binary 'x'
expect_error 405 MethodNotAllowed "POST /health"
check_eq "405 Allow for /health" "GET, HEAD" "$(header Allow)"
req DELETE /metrics
expect_error 405 MethodNotAllowed "DELETE /metrics"

# ---- and the server is unharmed ----
req GET /health
check_eq "still healthy" 200 "$STATUS"
post /classify '{"inputs": "a charming and often affecting journey"}'
check_eq "still classifying" 200 "$STATUS"
check_eq "no 500 for any client input" 0 "$(curl -s "$URL/metrics" | grep -c 'code="500"')"
check_eq "400s counted (7 malformed, NUL, short Content-Length)" 9 "$(metric bct_http_requests_total '{route="/classify",code="400"}')"
grep -q '"error_type":"Validation"' "$WORK/access.log" || fail "access log: no error_type"
pass=$((pass + 1))
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"
done_ok
