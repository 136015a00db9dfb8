#!/usr/bin/env bash
# Structured pruning (issue 15, item 4): `bct compress --prune-heads F
# --prune-ffn F` on a random checkpoint from `bct bench --keep` (no shared
# data) whose head width (156 / 6 = 26) and FFN width (1000) fit no block:
# - with f32 weights, the engine's fp32 logits equal tests/data/ref_pruned.py
#   (an independent torch forward over the file's tensors), whose checks
#   also show that kept Q/K/V/FFN rows are the original's (really removed);
# - the same with every head and every neuron pruned (sub-blocks of bias only);
# - w8a8 pruned: the same logits with every ISA (bit for bit), fewer weights;
# - pruning then GPTQ (w4a8);
# - a .bct with a bad "pruning" meta is refused naming the field; bad
#   options are refused.
. "$(dirname "$0")/lib.sh"
command -v jq > /dev/null || { echo "skipped: jq not installed"; exit 77; }
PY=/usr/bin/python3
REF=$(dirname "$0")/../data/ref_pruned.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

CK=$tmp/ck
random_ckpt "$CK" --layers 2 --hidden 156 --heads 6 --intermediate 1000 --vocab 500
# Calibration and test texts: random words of the model's vocabulary.
awk 'BEGIN { srand(7); for (i = 0; i < 96; i++) { n = 4 + int(rand() * 20); s = "";
     for (j = 0; j < n; j++) s = s (j ? " " : "") "tok" int(rand() * 480); print s } }' > "$tmp/calib.txt"
texts=("tok5 tok9 tok300 tok12 tok77 tok401 tok8 tok19 tok250 tok33 tok64 tok128 tok7" "tok1"
       "tok44 tok45 tok46 tok47 tok48 tok49 tok50 tok51 tok52 tok53 tok54 tok55 tok56 tok57 tok58 tok59 tok60 tok61 tok62 tok63 tok64 tok65 tok66 tok67 tok68 tok69 tok70 tok71 tok72 tok73 tok74 tok75 tok76 tok77 tok78 tok79")

# cases MODEL OUT: one {"ids", "type_ids", "logits"} line per text.
cases() {
    : > "$2"
    for t in "${texts[@]}"; do
        ids=$(printf '%s\n' "$t" | "$BCT" tokenize --model "$1") || fail "tokenize $1"
        lg=$("$BCT" classify --model "$1" --json "$t" | jq -c .logits) || fail "classify $1"
        echo "$ids" | jq -c --argjson lg "$lg" '. + {logits: $lg}' >> "$2"
    done
}

F32=(--weights f32 --embeddings f32 --tables f32 --activations fp32 --nonlinear fp32)
for p in "0.34 0.5" "1 1" "0 0.9" "0.5 0"; do
    set -- $p
    out=$tmp/f32-$1-$2.bct
    "$BCT" compress --in "$CK" --out "$out" "${F32[@]}" --calib "$tmp/calib.txt" --prune-heads "$1" \
        --prune-ffn "$2" --json > "$tmp/rep.json" 2> "$tmp/err.log" || fail "compress $p: $(tail -3 "$tmp/err.log")"
    heads=$(jq -c .pruning.heads "$tmp/rep.json")
    inter=$(jq -c .pruning.intermediate "$tmp/rep.json")
    want_h=$(awk -v f="$1" 'BEGIN { k = int((1 - f) * 6 + 0.5); printf "[%d,%d]", k, k }')
    want_i=$(awk -v f="$2" 'BEGIN { k = int((1 - f) * 1000 + 0.5); printf "[%d,%d]", k, k }')
    check_eq "$p: heads kept per layer" "$want_h" "$heads"
    check_eq "$p: neurons kept per layer" "$want_i" "$inter"
    # The refit never does worse on the calibration inputs than plain removal.
    check_eq "$p: refit <= removal" true \
        "$(jq '[.pruning.error[] | (.attention_refit <= .attention_removed + 1e-9) and (.ffn_refit <= .ffn_removed + 1e-9)] | all' "$tmp/rep.json")"
    cases "$out" "$tmp/cases.jsonl"
    if [ -x "$PY" ]; then
        $PY "$REF" check "$out" "$CK" "$tmp/cases.jsonl" > "$tmp/ref.log" 2>&1
        rc=$?
        [ $rc = 77 ] && echo "note: no torch for $PY: the reference is not run" && continue
        [ $rc = 0 ] || fail "$p: reference: $(tail -5 "$tmp/ref.log")"
        pass=$((pass + 1))
        echo "$p: $(cat "$tmp/ref.log")"
    fi
done

# w8a8, pruned: every kernel gives the scalar kernel's logits; the file is smaller.
"$BCT" compress --in "$CK" --out "$tmp/q.bct" --preset w8a8 > /dev/null || fail "compress w8a8"
"$BCT" compress --in "$CK" --out "$tmp/qp.bct" --preset w8a8 --calib "$tmp/calib.txt" --prune-heads 0.34 \
    --prune-ffn 0.5 > "$tmp/qp.log" || fail "compress w8a8 pruned"
check_contains "text report: pruned layers" "layer  1:   4 heads" "$(cat "$tmp/qp.log")"
check "pruned file is smaller" [ "$(stat -c %s "$tmp/qp.bct")" -lt "$(stat -c %s "$tmp/q.bct")" ]
"$BCT" compress --in "$CK" --out "$tmp/qz.bct" --preset w8a8 --calib "$tmp/calib.txt" --prune-heads 1 \
    --prune-ffn 1 > /dev/null || fail "compress w8a8 all pruned"
for m in qp qz; do
    for t in "${texts[@]}"; do
        BCT_ISA=scalar "$BCT" classify --model "$tmp/$m.bct" --json "$t" > "$tmp/scalar.json" || fail "classify scalar"
        for isa in avx2 avxvnni avx512vnni amx; do
            BCT_ISA=$isa "$BCT" classify --model "$tmp/$m.bct" --json "$t" > "$tmp/$isa.json" 2> /dev/null ||
                fail "classify $isa"
            check_eq "$m: $isa logits = scalar logits" "$(jq -c .logits "$tmp/scalar.json")" "$(jq -c .logits "$tmp/$isa.json")"
        done
    done
done

# Pruning, then GPTQ on the pruned layers' calibration Hessians (w4a8).
"$BCT" compress --in "$CK" --out "$tmp/g.bct" --preset w4a8 --calib "$tmp/calib.txt" --gptq --prune-heads 0.5 \
    --prune-ffn 0.5 --json > "$tmp/g.json" 2> "$tmp/g.log" || fail "pruned + gptq: $(tail -3 "$tmp/g.log")"
check_eq "pruned + gptq: FFN output weights of 500 columns" 2 \
    "$(jq '[.tensors[] | select(.shape == [156, 500])] | length' "$tmp/g.json")"
"$BCT" classify --model "$tmp/g.bct" "tok1 tok2" > /dev/null || fail "classify pruned + gptq"

# Refused: a bad "pruning" meta (the loader names the field), bad options.
if [ -x "$PY" ] && $PY -c "import torch" 2> /dev/null; then
    $PY "$REF" corrupt "$tmp/qp.bct" "$tmp/bad.bct" heads 1 7 || fail "corrupt"
    out=$("$BCT" classify --model "$tmp/bad.bct" "tok1" 2>&1)
    check_eq "more heads than the config: refused" 1 $?
    check_contains "names the field" "pruning.heads[1]: not an integer in 0..6" "$out"
    $PY "$REF" corrupt "$tmp/qp.bct" "$tmp/bad2.bct" intermediate 0 499 || fail "corrupt"
    out=$("$BCT" classify --model "$tmp/bad2.bct" "tok1" 2>&1)
    check_eq "width disagreeing with the tensors: refused" 1 $?
    check_contains "names the tensor" "shape disagrees" "$out"
fi
out=$("$BCT" compress --in "$CK" --out "$tmp/x.bct" --prune-heads 0.5 2>&1)
check_eq "--prune-heads without --calib" 2 $?
check_contains "says why" "need --calib" "$out"
out=$("$BCT" compress --in "$CK" --out "$tmp/x.bct" --calib "$tmp/calib.txt" --prune-ffn 1.5 2>&1)
check_eq "--prune-ffn 1.5" 2 $?
out=$("$BCT" compress --in "$CK" --out "$tmp/x.bct" --calib "$tmp/calib.txt" --prune-ffn 0.5 --smooth auto 2>&1)
check_eq "pruning with smoothing" 1 $?
check_contains "says why" "does not combine with smoothing" "$out"
done_ok
