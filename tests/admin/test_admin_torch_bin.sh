#!/usr/bin/env bash
# /admin/compress with PyTorch .bin weights (issue 14): a valid
# pytorch_model.bin is compressed and served; malicious pickles are refused
# with 422 naming the refused global or opcode, nothing they ask for is
# executed (a payload that would create a file leaves none), nothing is
# left behind, and the server keeps serving.  Needs no ../shared: the
# fixtures are tests/data/torch_bin (make_torch_bin.py).
. "$(dirname "$0")/lib.sh"
need_tools
command -v python3 > /dev/null || { echo "skipped: python3 not installed"; exit 77; }

FIX=$ROOT/tests/data/torch_bin
PWNED=$WORK/pwned

# A torch.save-shaped zip whose pickle calls posix.system("touch $PWNED"):
# what an unpickler that executes would run.  python3's zipfile only
# writes the archive; nothing is unpickled.
python3 - "$WORK/payload.bin" "$PWNED" <<'EOF'
import struct, sys, zipfile
cmd = ("touch " + sys.argv[2]).encode()
pkl = b"\x80\x02cposix\nsystem\n(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pkl)
    z.writestr("archive/version", "3\n")
EOF

new_store
start_admin --default-model sst2-tiny

# upload_bin NAME WEIGHTS [curl args...]: the tiny fixture's config and
# vocab with WEIGHTS as the weights part.
upload_bin() {
    local name=$1 weights=$2
    shift 2
    req POST /admin/compress "${AUTH[@]}" -F "name=$name" -F "config=@$FIX/f32/config.json" \
        -F "weights=@$weights" -F "vocab=@$FIX/f32/vocab.txt" -F block=32 "$@"
}
nothing_left() {
    check_eq "$1: staging area empty" "" "$(ls -A "$STORE/.staging" 2>/dev/null)"
    check_eq "$1: the store is unchanged" "sst2-tiny.bct" "$(ls "$STORE" | tr '\n' ' ' | sed 's/ $//')"
}

# ---- malicious or broken pickles: 422, the reason, still serving ----
upload_bin evil "$WORK/payload.bin"
expect_error 422 Validation "posix.system payload"
expect_message "pytorch_model.bin: data.pkl: global posix.system is not allowed" "posix.system payload"
check_eq "posix.system payload: nothing was executed" "no" "$([ -e "$PWNED" ] && echo yes || echo no)"
still_serving "posix.system payload"
nothing_left "posix.system payload"

while IFS='|' read -r file message; do
    upload_bin evil "$FIX/bad/$file.bin"
    expect_error 422 Validation "$file"
    expect_message "$message" "$file"
    still_serving "$file"
    nothing_left "$file"
done <<'EOF'
reduce_os_system|global posix.system is not allowed
global_eval|global builtins.eval is not allowed
stack_global_subprocess|global subprocess.Popen is not allowed
inst|opcode INST (0x69) is not allowed
reduce_storage|REDUCE of torch.FloatStorage is not allowed
huge_memo|memo index 2147483647 is over the limit
stack_bomb|stack grows past
storage_too_small|ends past the 6 elements of storage
lying_size|run past the entries' area
deflated|is compressed (method 8)
legacy|pytorch_model.bin: this is a legacy (PyTorch < 1.6) checkpoint
EOF

# ---- a valid pytorch_model.bin: compressed and served ----
upload_bin tiny-bin "$FIX/f32/pytorch_model.bin"
check_eq "valid .bin: accepted" 202 "$STATUS"
id=$(echo "$BODY" | jq -r .job_id)
wait_job "$id"
check_eq "valid .bin: job succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
post /classify '{"inputs": "the movie was good fun", "model": "tiny-bin", "raw_scores": true}'
check_eq "valid .bin: served" 200 "$STATUS"
# The same weights from safetensors compress to the same logits.
"$BCT" compress --block 32 --in "$FIX/st" --out "$WORK/st.bct" > /dev/null || fail "bct compress st"
want=$("$BCT" classify --json --model "$WORK/st.bct" "the movie was good fun" | jq -c .logits)
"$BCT" compress --block 32 --in "$FIX/f32" --out "$WORK/bin.bct" > /dev/null || fail "bct compress bin"
got=$("$BCT" classify --json --model "$WORK/bin.bct" "the movie was good fun" | jq -c .logits)
check_eq "bct compress: .bin and safetensors give the same logits" "$want" "$got"
still_serving "after the valid .bin"

# ---- the tokenizer as tokenizer.json (no vocab.txt): the same model ----
python3 "$ROOT/tests/data/vocab_to_tokenizer_json.py" "$FIX/f32/vocab.txt" "$WORK/tokenizer.json" ||
    fail "make tokenizer.json"
req POST /admin/compress "${AUTH[@]}" -F name=tiny-json -F "config=@$FIX/f32/config.json" \
    -F "weights=@$FIX/f32/pytorch_model.bin" -F "tokenizer=@$WORK/tokenizer.json" -F block=32
check_eq "tokenizer.json upload: accepted" 202 "$STATUS"
wait_job "$(echo "$BODY" | jq -r .job_id)"
check_eq "tokenizer.json upload: job succeeded" succeeded "$(jq -r .state "$WORK/job.json")"
post /classify '{"inputs": "the movie was good fun", "model": "tiny-bin", "raw_scores": true}'
want=$(echo "$BODY" | jq -c .)
post /classify '{"inputs": "the movie was good fun", "model": "tiny-json", "raw_scores": true}'
check_eq "tokenizer.json upload: same answer as with vocab.txt" "$want" "$(echo "$BODY" | jq -c .)"
req POST /admin/compress "${AUTH[@]}" -F name=no-tok -F "config=@$FIX/f32/config.json" \
    -F "weights=@$FIX/f32/pytorch_model.bin"
expect_error 422 Validation "no tokenizer part"
expect_message "vocab = vocab.txt or tokenizer = tokenizer.json" "no tokenizer part"

done_ok
