#!/usr/bin/python3
"""Test-time fixture: a SentencePiece Unigram model with the nmt_nfkc
normalization (its precompiled_charsmap is ~200 KB, too big to commit),
trained by python3-sentencepiece on text of tests/data/tokenizers/
cases.jsonl, converted to tokenizer.json (Precompiled normalizer,
Metaspace, Unigram, same ids) and golden ids from SentencePiece itself.

    /usr/bin/python3 tests/data/make_spm_nfkc_case.py OUT_DIR

Writes OUT_DIR/spm_nfkc.json and OUT_DIR/spm_nfkc.ids (lines as in
make_spm_case.py; "SKIP" for pairs, invalid UTF-8, and texts whose spaces
SentencePiece and tokenizers' Metaspace treat differently by design: a
leading space, a run of spaces, or whitespace the charsmap turns into
spaces; and exact score ties, which SentencePiece breaks in float32 and
tokenizers in float64).  Exits 77 when sentencepiece is not installed.  Also checks that
ref_tokenizers.py agrees with SentencePiece on every compared case.
"""
import base64
import json
import math
import os
import sys
import tempfile

try:
    import sentencepiece as spm
except ImportError:
    print("skipped: python3-sentencepiece is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_tokenizers as rt  # noqa: E402


def proto_field(buf, want):
    """First length-delimited field `want` of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            if field == want:
                return buf[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wire)
    return None


def varint(buf, i):
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def main():
    out = sys.argv[1]
    cases = [json.loads(l) for l in open(os.path.join(HERE, "tokenizers", "cases.jsonl"))]
    texts = []
    for c in cases:
        for k in ("a", "b"):
            if c[k] is not None:
                try:
                    texts.append(bytes.fromhex(c[k]).decode("utf-8"))
                except UnicodeDecodeError:
                    pass
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(t.replace("\n", " ") for t in texts if t.strip()) + "\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(d, "m"), vocab_size=600, model_type="unigram",
            normalization_rule_name="nmt_nfkc", remove_extra_whitespaces=False, character_coverage=0.995,
            num_threads=1, minloglevel=2, hard_vocab_limit=False)
        model = open(os.path.join(d, "m.model"), "rb").read()
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "m.model"))
    charsmap = proto_field(proto_field(model, 3), 2)
    vocab = [[sp.id_to_piece(i), sp.get_score(i)] for i in range(sp.get_piece_size())]
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": vocab[i][0], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}
                         for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)],
        "normalizer": {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": None,
        "model": {"type": "Unigram", "unk_id": sp.unk_id(), "vocab": vocab, "byte_fallback": False},
    }
    ref = rt.Tokenizer(json.loads(json.dumps(doc)))
    golden, kept, bad, ties = [], 0, 0, 0
    for c in cases:
        try:
            a = bytes.fromhex(c["a"]).decode("utf-8")
        except UnicodeDecodeError:
            golden.append("SKIP")
            continue
        norm = ref.normalize(a)
        if c["b"] is not None or norm.startswith(" ") or "  " in norm or not a or a[0].isspace():
            golden.append("SKIP")
            continue
        full = sp.encode(a)
        ids = full[: c["max_len"]]
        mine = ref.tokenize(a)
        if mine != full and abs(math.fsum(vocab[i][1] for i in mine) - math.fsum(vocab[i][1] for i in full)) < 1e-4:
            # Equal scores: sentencepiece sums in float32, tokenizers (and
            # bct) in float64, so either may win the tie.
            golden.append("SKIP")
            ties += 1
            continue
        if ref.encode(a, None, c["max_len"])[0] != ids:
            print("reference differs from sentencepiece:", repr(a[:60]))
            bad += 1
        golden.append(" ".join(map(str, ids)) + " | " + " ".join("0" * len(ids)))
        kept += 1
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "spm_nfkc.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    with open(os.path.join(out, "spm_nfkc.ids"), "w") as f:
        f.write("\n".join(golden) + "\n")
    print("spm_nfkc: %d cases with SentencePiece ids, charsmap %d bytes, reference differs on %d, %d ties skipped"
          % (kept, len(charsmap), bad, ties))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
