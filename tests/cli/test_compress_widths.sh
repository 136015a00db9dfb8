#!/usr/bin/env bash
# `bct compress` on widths that fit no preset block (issue 14): a random
# TinyBERT-shaped checkpoint (hidden 312, 12 heads, FFN 1200) compresses
# with both presets; the text and JSON reports say which block each kind
# of tensor got and how many codes its rows are stored with; the file
# classifies.  Needs no shared data (`random_ckpt` writes the model).
. "$(dirname "$0")/lib.sh"
command -v jq > /dev/null || { echo "skipped: jq not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

CK=$tmp/ck
random_ckpt "$CK" --layers 1 --hidden 312 --heads 12 --intermediate 1200 --vocab 500

for preset in w8a8 w4a8; do
    "$BCT" compress --in "$CK" --out "$tmp/$preset.bct" --preset $preset --json > "$tmp/$preset.json" ||
        fail "compress --preset $preset"
    used() { # used KIND COLS: block/padded_cols of KIND's rows of COLS
        jq -r --arg k "$1" --argjson c "$2" \
            '[.block_sizes[] | select(.kind == $k and .cols == $c) | "\(.asked)->\(.block)/\(.padded_cols)"] | join(",")' \
            "$tmp/$preset.json"
    }
    # 312 rows are stored as 320 codes: 64 divides 320, 128 does not.
    check_eq "$preset: embeddings" "128->64/320" "$(used embeddings 312)"
    check_eq "$preset: tables" "128->64/320" "$(used tables 312)"
    check_eq "$preset: weights of rows 312" "64->64/320" "$(used weights 312)"
    check_eq "$preset: weights of rows 1200" "64->64/1216" "$(used weights 1200)"
    check_eq "$preset: every quantized tensor counted once" \
        "$(jq '[.tensors[] | select(.format != "f32")] | length' "$tmp/$preset.json")" \
        "$(jq '[.block_sizes[].tensors] | add' "$tmp/$preset.json")"
    out=$("$BCT" classify --model "$tmp/$preset.bct" "tok17 tok42 tok99") || fail "classify $preset"
    check_contains "$preset: classifies" "positive" "$out"
    # The same logits (JSON prints them to 17 significant digits) with every
    # kernel this CPU runs (BCT_ISA falls back, with a warning, otherwise).
    text="tok5 tok9 tok300 tok12 tok77 tok401 tok8 tok19 tok250 tok33 tok64 tok128 tok7"
    BCT_ISA=scalar "$BCT" classify --model "$tmp/$preset.bct" --json "$text" > "$tmp/scalar.json" ||
        fail "classify scalar"
    for isa in avx2 avxvnni avx512vnni amx; do
        BCT_ISA=$isa "$BCT" classify --model "$tmp/$preset.bct" --json "$text" > "$tmp/$isa.json" 2> /dev/null ||
            fail "classify $isa"
        check_eq "$preset: $isa logits = scalar logits" "$(jq -c .logits "$tmp/scalar.json")" "$(jq -c .logits "$tmp/$isa.json")"
    done
done

# Smoothing and GPTQ see the padded rows too (both once overflowed on 312).
printf 'tok%d tok%d tok%d tok%d\n' $(seq 1 256) > "$tmp/calib.txt"
"$BCT" compress --in "$CK" --out "$tmp/sg.bct" --preset w4a8 --calib "$tmp/calib.txt" --smooth auto --gptq \
    > "$tmp/sg.log" 2>&1 || fail "compress --smooth auto --gptq on 312: $(tail -3 "$tmp/sg.log")"
BCT_ISA=scalar "$BCT" classify --model "$tmp/sg.bct" --json "$text" > "$tmp/sg_scalar.json" || fail "classify sg"
"$BCT" classify --model "$tmp/sg.bct" --json "$text" > "$tmp/sg_best.json" || fail "classify sg"
check_eq "smooth+gptq on 312: best ISA = scalar" "$(jq -c .logits "$tmp/sg_scalar.json")" "$(jq -c .logits "$tmp/sg_best.json")"

out=$("$BCT" compress --in "$CK" --out "$tmp/text.bct" --preset w4a8) || fail "text report"
check_contains "text report: block sizes" "block sizes used" "$out"
check_contains "text report: padded FFN rows" "weights    rows of  1200: asked   64, block   64, stored as  1216 codes" "$out"
# A block larger than any row is fitted; one that is no multiple of 32 is not.
"$BCT" compress --in "$CK" --out "$tmp/big.bct" --block 4096 --json > "$tmp/big.json" || fail "--block 4096"
check_eq "--block 4096 on 312" "320" "$(jq '[.block_sizes[] | select(.cols == 312) | .block] | unique | .[0]' "$tmp/big.json")"
"$BCT" compress --in "$CK" --out "$tmp/x.bct" --block 48 2> /dev/null
check_eq "--block 48 refused" 1 $?
done_ok
