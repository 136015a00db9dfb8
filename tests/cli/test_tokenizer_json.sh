#!/usr/bin/env bash
# A BERT checkpoint whose tokenizer is a tokenizer.json (made from the same
# vocab.txt) gives the same ids and logits as the vocab.txt one, also after
# compression (the .bct stores the document); a vocab.json + merges.txt
# checkpoint tokenizes as the Python reference does.
. "$(dirname "$0")/lib.sh"
need_shared
PY=/usr/bin/python3
DATA=$(cd "$(dirname "$0")/../data" && pwd)
SST=$SHARED/data/glue/SST-2/dev.tsv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/json" "$tmp/bpe"
ln -s "$TINY/config.json" "$tmp/json/config.json"
ln -s "$TINY/model.safetensors" "$tmp/json/model.safetensors"
"$PY" "$DATA/vocab_to_tokenizer_json.py" "$TINY/vocab.txt" "$tmp/json/tokenizer.json" || fail "make tokenizer.json"

# Ids: every SST-2 dev sentence, some pairs (TAB), odd inputs.
tail -n +2 "$SST" | cut -f1 > "$tmp/texts"
printf 'Caf\xc3\xa9 na\xc3\xafve\tsecond\n\xe9\x87\x8e\xe5\x8f\xa3 Noguchi!!\n\n' >> "$tmp/texts"
"$BCT" tokenize --model "$TINY" < "$tmp/texts" > "$tmp/ids_vocab" || fail "tokenize vocab.txt"
"$BCT" tokenize --model "$tmp/json" < "$tmp/texts" > "$tmp/ids_json" || fail "tokenize tokenizer.json"
check_eq "lines" "$(wc -l < "$tmp/ids_vocab")" "$(wc -l < "$tmp/ids_json")"
check "same ids as vocab.txt" cmp -s "$tmp/ids_vocab" "$tmp/ids_json"

# Unlike the vocab.txt tokenizer (Google's BERT, which reads "[CLS]" in a
# text as punctuation and letters), a tokenizer.json matches its special
# tokens in the raw text, case-sensitively, before normalization.
check_eq "specials in text" '{"ids":[101,101,1031,18856,2015,1033,103,102],"type_ids":[0,0,0,0,0,0,0,0]}' \
    "$(echo '[CLS] [cls] [MASK]' | "$BCT" tokenize --model "$tmp/json")"

# Logits: bct eval on SST-2 dev, both ways.
"$BCT" eval --model "$TINY" --task sst2 --data "$SST" --dump-logits "$tmp/l_vocab" --json > "$tmp/e_vocab" ||
    fail "eval vocab.txt"
"$BCT" eval --model "$tmp/json" --task sst2 --data "$SST" --dump-logits "$tmp/l_json" --json > "$tmp/e_json" ||
    fail "eval tokenizer.json"
check "same logits" cmp -s "$tmp/l_vocab" "$tmp/l_json"
check_contains "accuracy (693/872)" '"correct":693' "$(cat "$tmp/e_json")"

# Compressed: the .bct keeps the tokenizer.json.
"$BCT" compress --in "$tmp/json" --out "$tmp/json.bct" --preset w8a8 > /dev/null || fail "compress"
"$BCT" tokenize --model "$tmp/json.bct" < "$tmp/texts" > "$tmp/ids_bct" || fail "tokenize .bct"
check "same ids from the .bct" cmp -s "$tmp/ids_vocab" "$tmp/ids_bct"
"$BCT" compress --in "$TINY" --out "$tmp/vocab.bct" --preset w8a8 > /dev/null || fail "compress vocab.txt"
"$BCT" eval --model "$tmp/vocab.bct" --task sst2 --data "$SST" --dump-logits "$tmp/lb_vocab" > /dev/null || fail "eval"
"$BCT" eval --model "$tmp/json.bct" --task sst2 --data "$SST" --dump-logits "$tmp/lb_json" > /dev/null || fail "eval"
check "same compressed logits" cmp -s "$tmp/lb_vocab" "$tmp/lb_json"

# vocab.json + merges.txt (the fixture BPE, its ids inside the config's 30522).
ln -s "$TINY/config.json" "$tmp/bpe/config.json"
ln -s "$TINY/model.safetensors" "$tmp/bpe/model.safetensors"
cp "$DATA/tokenizers/bpe_vocab.json" "$tmp/bpe/vocab.json"
cp "$DATA/tokenizers/bpe_merges.txt" "$tmp/bpe/merges.txt"
head -50 "$tmp/texts" > "$tmp/texts50"
"$BCT" tokenize --model "$tmp/bpe" < "$tmp/texts50" > "$tmp/ids_bpe" || fail "tokenize vocab.json"
"$PY" - "$DATA" "$tmp/texts50" "$tmp/ids_bpe" <<'PYEOF' || fail "vocab.json + merges.txt ids differ from the reference"
import json, sys
sys.path.insert(0, sys.argv[1])
import ref_tokenizers as rt
tok = rt.load(sys.argv[1] + "/tokenizers/bpe.json")
texts = open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]
got = [json.loads(l) for l in open(sys.argv[3])]
assert len(got) == len(texts), (len(got), len(texts))
for t, g in zip(texts, got):
    a, _, b = t.partition("\t")
    ids, _ = tok.encode(a, b if "\t" in t else None, 128)
    assert g["ids"] == ids, (t, g["ids"], ids)
PYEOF
pass=$((pass + 1))

# A broken tokenizer.json is named in the error.
mkdir "$tmp/bad"
ln -s "$TINY/config.json" "$tmp/bad/config.json"
ln -s "$TINY/model.safetensors" "$tmp/bad/model.safetensors"
echo '{"model":{"type":"WordPiece","vocab":{"a":0}}}' > "$tmp/bad/tokenizer.json"
msg=$("$BCT" tokenize --model "$tmp/bad" < /dev/null 2>&1) && fail "bad tokenizer.json accepted"
check_contains "error names the field" "model.unk_token" "$msg"
done_ok
