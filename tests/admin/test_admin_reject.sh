#!/usr/bin/env bash
# Bad uploads and bad admin requests are refused with a status, an error
# type and a reason, nothing is left behind (no staging files, no model in
# the store), and the server keeps serving:
#   422  truncated weights, header length beyond the file, shapes that
#        disagree with config.json, unsupported architecture, a missing
#        part, a name with ../ (and other bad names), bad options, unknown
#        or repeated parts
#   413  a part over its limit; the whole upload over admin_max_upload_mb
#        (announced, and chunked)
#   401  no token (WWW-Authenticate), 403 wrong token, 404 admin API off
#   405, 404 (unknown route, job, model), 409 (default model, checkpoint
#   folder), 415 (not multipart); and a client leaving mid-upload
. "$(dirname "$0")/lib.sh"
need_tools

BAD=$WORK/bad
mkdir -p "$BAD"
# variant NAME: a copy of the tiny checkpoint (links) to spoil one file of.
variant() {
    mkdir -p "$BAD/$1"
    ln -sf "$CKPT/config.json" "$CKPT/vocab.txt" "$CKPT/model.safetensors" "$BAD/$1/"
}
variant trunc
rm "$BAD/trunc/model.safetensors"
head -c 100000 "$CKPT/model.safetensors" > "$BAD/trunc/model.safetensors"
variant hdrlen   # header length 32 MiB in a 17 MB file
rm "$BAD/hdrlen/model.safetensors"
{ printf '\x00\x00\x00\x02\x00\x00\x00\x00'; tail -c +9 "$CKPT/model.safetensors"; } > "$BAD/hdrlen/model.safetensors"
variant shapes   # config.json says intermediate_size 256; the tensors are 512
rm "$BAD/shapes/config.json"
jq '.intermediate_size = 256' "$CKPT/config.json" > "$BAD/shapes/config.json"
variant arch
rm "$BAD/arch/config.json"
jq '.architectures = ["GPT2LMHeadModel"] | .model_type = "gpt2"' "$CKPT/config.json" > "$BAD/arch/config.json"
variant vocab    # a vocabulary without [CLS]
rm "$BAD/vocab/vocab.txt"
grep -v '^\[CLS\]$' "$CKPT/vocab.txt" > "$BAD/vocab/vocab.txt"
head -c 1500000 /dev/zero | tr '\0' ' ' > "$BAD/big-config.json"

new_store
mkdir -p "$STORE/ckpt"     # a checkpoint folder in the store
ln -s "$CKPT/config.json" "$CKPT/vocab.txt" "$CKPT/model.safetensors" "$STORE/ckpt/"
start_admin --default-model sst2-tiny

# nothing_left DESCRIPTION: no staging files, no model beyond the two.
nothing_left() {
    check_eq "$1: staging area empty" "" "$(ls -A "$STORE/.staging" 2>/dev/null)"
    check_eq "$1: the store is unchanged" "ckpt sst2-tiny.bct" "$(ls "$STORE" | tr '\n' ' ' | sed 's/ $//')"
}
# rejected STATUS TYPE MESSAGE DESCRIPTION: the last answer, then the
# server still serves and nothing was left behind.
# (ERR_BODY and $WORK/err_headers keep the refusal.)
rejected() {
    expect_error "$1" "$2" "$4"
    expect_message "$3" "$4"
    ERR_BODY=$BODY
    cp "$WORK/headers" "$WORK/err_headers"
    still_serving "$4"
    nothing_left "$4"
}
err_header() { grep -i "^$1:" "$WORK/err_headers" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }

# ---- the checkpoint is invalid (validated before the 202) ----
upload bad "$BAD/trunc"
hdr=$(od -An -tu8 -N8 "$CKPT/model.safetensors" | tr -d ' ')
rejected 422 Validation "extend past the $((100000 - 8 - hdr))-byte data region" "truncated weights"
check_contains "truncated weights: the file is named by its part" "model.safetensors" "$ERR_BODY"
check_eq "truncated weights: no server path in the message" "" "$(echo "$ERR_BODY" | grep -F "$WORK")"
upload bad "$BAD/hdrlen"
rejected 422 Validation "does not fit in the file" "header length beyond the file"
upload bad "$BAD/shapes"
rejected 422 Validation "config.json implies" "shapes that disagree with config.json"
upload bad "$BAD/arch"
rejected 422 Validation "is not supported" "unsupported architecture"
upload bad "$BAD/vocab"
rejected 422 Validation "[CLS]" "vocabulary without [CLS]"

# ---- the form is wrong ----
req POST /admin/compress "${AUTH[@]}" -F name=bad -F "config=@$CKPT/config.json" -F "weights=@$CKPT/model.safetensors"
rejected 422 Validation 'no "vocab" file part' "missing part"
req POST /admin/compress "${AUTH[@]}" -F "config=@$CKPT/config.json" -F "weights=@$CKPT/model.safetensors" -F "vocab=@$CKPT/vocab.txt"
rejected 422 Validation 'no "name" field' "missing name"
for name in ../evil ../../etc/passwd a/b . .. .hidden UPPER "sp ace" \
    0123456789012345678901234567890123456789012345678901234567890123456789; do
    upload "$name" "$CKPT"
    rejected 422 Validation "field name" "name \"$name\""
done
check "no file escaped the store" test ! -e "$WORK/evil"
upload bad "$CKPT" -F preset=w2a2
rejected 422 Validation "unknown preset" "unknown preset"
upload bad "$CKPT" -F block=48
rejected 422 Validation "multiple of 32" "block not a multiple of 32"
# A block larger than the rows is fitted to them (test_admin_widths.sh);
# one beyond the quantizer's limit is not.
upload bad "$CKPT" -F block=8192
rejected 422 Validation "multiple of 32" "block beyond 4096"
upload bad "$CKPT" -F weights=q5
rejected 422 Validation "q8, q4, q3 or q2" "unknown weight format"
upload bad "$CKPT" -F "extra=@$CKPT/vocab.txt"
rejected 422 Validation 'unknown part "extra"' "unknown part"
upload bad "$CKPT" -F "vocab=@$CKPT/vocab.txt"
rejected 422 Validation "sent twice" "repeated part"
req POST /admin/compress "${AUTH[@]}" -F name=bad -F "config=<$CKPT/config.json" \
    -F "weights=@$CKPT/model.safetensors" -F "vocab=@$CKPT/vocab.txt"
rejected 422 Validation "must be a file" "a file sent as a field"
req POST /admin/compress "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary '{"name": "x"}'
rejected 415 UnsupportedMediaType "multipart/form-data" "not multipart"
upload ckpt "$CKPT"
rejected 409 Conflict "checkpoint folder" "a checkpoint folder's name"

# ---- sizes ----
req POST /admin/compress "${AUTH[@]}" -F name=bad -F "config=@$BAD/big-config.json" \
    -F "weights=@$CKPT/model.safetensors" -F "vocab=@$CKPT/vocab.txt"
rejected 413 PayloadTooLarge 'part "config" is larger than its limit' "oversize part"

# ---- a client that goes away mid-upload ----
curl -s -o /dev/null --limit-rate 2M --max-time 60 "${AUTH[@]}" -F name=gone \
    -F "config=@$CKPT/config.json" -F "weights=@$CKPT/model.safetensors" -F "vocab=@$CKPT/vocab.txt" \
    "$URL/admin/compress" &
up=$!
EXTRA_PIDS+=($up)
staged() { [ -n "$(ls -A "$STORE/.staging" 2>/dev/null)" ]; }
wait_until "the upload to start" staged
kill -KILL "$up"
wait "$up" 2> /dev/null
unstaged() { ! staged; }
wait_until "the abandoned upload's staging folder to go" unstaged
still_serving "after an abandoned upload"
nothing_left "after an abandoned upload"

# ---- authentication ----
req POST /admin/compress -F name=bad -F "config=@$CKPT/config.json"
rejected 401 Unauthorized "Authorization: Bearer" "no token"
check_contains "no token: WWW-Authenticate" Bearer "$(err_header WWW-Authenticate)"
req POST /admin/compress -H 'Authorization: Bearer wrong-token' -F name=bad -F "config=@$CKPT/config.json"
rejected 403 Forbidden "not valid" "wrong token"
upload_wrong() {
    req POST /admin/compress -H "Authorization: Bearer ${TOKEN}x" -F name=bad -F "config=@$CKPT/config.json" \
        -F "weights=@$CKPT/model.safetensors" -F "vocab=@$CKPT/vocab.txt"
}
upload_wrong
rejected 403 Forbidden "not valid" "wrong token, large upload (refused before the body)"
req GET /admin/jobs -H 'Authorization: Basic dXNlcjpwYXNz'
rejected 401 Unauthorized "Authorization: Bearer" "Basic instead of Bearer"
req GET /admin/jobs -H "Authorization: Bearer ${TOKEN:0:10}"
rejected 403 Forbidden "not valid" "a prefix of the token"

# ---- routes ----
req GET /admin/compress "${AUTH[@]}"
rejected 405 MethodNotAllowed "use POST" "GET /admin/compress"
check_eq "405: Allow" POST "$(err_header Allow)"
req GET /admin/nothing "${AUTH[@]}"
rejected 404 NotFound "openapi.json" "unknown admin route"
req GET /admin/jobs/no-such-job "${AUTH[@]}"
rejected 404 NotFound "no job" "unknown job"
req DELETE /admin/models/sst2-tiny "${AUTH[@]}"
rejected 409 Conflict "default model" "delete the default model"
req DELETE /admin/models/no-such-model "${AUTH[@]}"
rejected 404 ModelNotFound "no model" "delete an unknown model"
req DELETE /admin/models/sst2-tiny
rejected 401 Unauthorized "Authorization" "delete without a token"
req GET /admin/jobs "${AUTH[@]}"
check_eq "no job was created by any of this" 0 "$(echo "$BODY" | jq '.jobs | length')"
grep -q '"level":"error"' "$WORK/server.log" && fail "the server logged an error"
pass=$((pass + 1))
stop_server TERM
check_eq "exit code" 0 "$SERVER_RC"

# ---- the whole upload over admin_max_upload_mb (16 MiB; the upload is 17.8 MB) ----
start_admin --admin-max-upload-mb 16
upload bad "$CKPT"
rejected 413 PayloadTooLarge "admin_max_upload_mb" "upload over the limit (Content-Length)"
upload bad "$CKPT" -H 'Transfer-Encoding: chunked'
rejected 413 PayloadTooLarge "admin_max_upload_mb" "upload over the limit (chunked)"
stop_server TERM

# ---- no token configured: the admin routes do not exist ----
start_server --model-store "$STORE"
upload bad "$CKPT"
rejected 404 NotFound "admin API is off" "admin API off: upload"
req GET /admin/jobs "${AUTH[@]}"
rejected 404 NotFound "admin API is off" "admin API off: jobs"
stop_server TERM
done_ok
