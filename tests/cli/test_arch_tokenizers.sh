#!/usr/bin/env bash
# RoBERTa with a byte-level BPE tokenizer.json and XLM-R with a Unigram
# tokenizer.json (issue 14): the architectures' checkpoints (ref_arch.py)
# with the tokenizer fixtures of tests/data/tokenizers instead of a
# WordPiece vocab.txt, in safetensors and, where Debian's torch is there to
# write one, pytorch_model.bin.  Both compress with both presets; the .bin
# twin gives the same logits; w8a8 stays close to fp32; the tokenizer
# travels inside the .bct (same ids after compression).
. "$(dirname "$0")/lib.sh"
command -v jq > /dev/null || { echo "skipped: jq not installed"; exit 77; }
command -v python3 > /dev/null || { echo "skipped: python3 not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
DATA=$(cd "$(dirname "$0")/../data" && pwd)

python3 - "$DATA" "$tmp" <<'PY' || fail "make checkpoints"
import json, os, random, shutil, sys
data, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, data)
import ref_arch as R
for arch, tok in (("roberta", "bpe"), ("xlm-roberta", "unigram")):
    fx = R.FIXTURES[arch]
    doc = json.load(open(os.path.join(data, "tokenizers", tok + ".json")))
    cfg = R.config_for(fx, 1 + max(a["id"] for a in doc["added_tokens"]))
    d = os.path.join(out, arch)
    os.makedirs(d)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    shutil.copy(os.path.join(data, "tokenizers", tok + ".json"), os.path.join(d, "tokenizer.json"))
    R.st_write(os.path.join(d, "model.safetensors"), R.tensors_for(fx, cfg, random.Random(fx["seed"])), fx["dtype"])
PY

text="a charming and often affecting journey, isn't it?"
logits() { "$BCT" classify --json --model "$1" "$text" | jq -c .logits; }
for arch in roberta xlm-roberta; do
    d=$tmp/$arch
    ids=$(echo "$text" | "$BCT" tokenize --model "$d" | jq -c .ids) || fail "$arch: tokenize"
    check_eq "$arch: starts with <s>, ends with </s>" "0 2" "$(jq -r '"\(.[0]) \(.[-1])"' <<< "$ids")"
    want=$(logits "$d") || fail "$arch: classify fp32"
    for p in w8a8 w4a8; do
        "$BCT" compress --in "$d" --out "$tmp/$arch-$p.bct" --preset $p > /dev/null || fail "$arch: compress $p"
        check_eq "$arch $p: the tokenizer travels in the .bct" "$ids" \
            "$(echo "$text" | "$BCT" tokenize --model "$tmp/$arch-$p.bct" | jq -c .ids)"
    done
    got=$(logits "$tmp/$arch-w8a8.bct") || fail "$arch: classify w8a8"
    diff=$(jq -n --argjson a "$want" --argjson b "$got" '[range($a|length) | ($a[.] - $b[.]) | fabs] | max')
    check "$arch w8a8: max |logit - fp32| $diff < 0.05" awk -v d="$diff" 'BEGIN{exit !(d < 0.05)}'
    if /usr/bin/python3 -c "import torch" 2> /dev/null; then
        mkdir "$d-bin"
        cp "$d/config.json" "$d/tokenizer.json" "$d-bin/"
        /usr/bin/python3 - "$DATA" "$d" <<'PY' || fail "$arch: torch.save"
import sys, torch
sys.path.insert(0, sys.argv[1])
import ref_arch as R
w = R.st_read(sys.argv[2] + "/model.safetensors")
torch.save({k: v.contiguous() for k, v in w.items()}, sys.argv[2] + "-bin/pytorch_model.bin")
PY
        check_eq "$arch: pytorch_model.bin gives the safetensors logits" "$want" "$(logits "$d-bin")"
        "$BCT" compress --in "$d-bin" --out "$tmp/$arch-bin.bct" --preset w8a8 > /dev/null || fail "$arch: compress .bin"
        check_eq "$arch: .bin compresses to the same logits" "$got" "$(logits "$tmp/$arch-bin.bct")"
    else
        echo "note: no /usr/bin/python3 with torch: the pytorch_model.bin twins are not checked"
    fi
done
done_ok
