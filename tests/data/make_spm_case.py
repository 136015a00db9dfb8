#!/usr/bin/python3
"""Checks the Unigram reference against SentencePiece itself, and makes the
fixture tokenizers/spm.json + spm.ids whose golden ids come from
SentencePiece (Debian's python3-sentencepiece), not from our reference.

    /usr/bin/python3 tests/data/make_spm_case.py [GLUE_DIR]

A Unigram model is trained by SentencePiece's own trainer on GLUE train
text with the identity normalization (bct has no charsmap interpreter, see
README), then converted to tokenizer.json the way tokenizers' converter
lays it out for a plain spm model: same ids, Metaspace (prepend always,
split), Unigram with unk_id 0.  Golden lines are SentencePiece's ids for
the single texts of cases.jsonl, cut to max_len; "SKIP" marks pairs,
invalid UTF-8, and texts where the two differ by design (a leading space
or a run of spaces: tokenizers' Metaspace yields different "▁" pieces
than spm's dummy prefix there, see tokenizers#1250).
Prints how often the reference agrees with SentencePiece on GLUE dev text.
"""
import json
import os
import sys
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_tokenizer_json_cases as mk  # noqa: E402
import ref_tokenizers as rt  # noqa: E402

OUT = os.path.join(HERE, "tokenizers")


def comparable(text):
    return not text.startswith(" ") and "  " not in text


def main():
    glue = mk.GLUE
    lines = mk.training_text()
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(d, "m"), vocab_size=800, model_type="unigram",
            normalization_rule_name="identity", character_coverage=0.9995, remove_extra_whitespaces=False,
            num_threads=1, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "m.model"))
    vocab = [[sp.id_to_piece(i), round(sp.get_score(i), 6)] for i in range(sp.get_piece_size())]
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": vocab[i][0], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}
                         for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": None,
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": sp.unk_id(), "vocab": vocab, "byte_fallback": False},
    }
    # sentencepiece rounds scores to float32; use those exact values.
    ref = rt.Tokenizer(json.loads(json.dumps(doc)))

    # Agreement on GLUE dev text (all of SST-2, MRPC and RTE sentences).
    texts = [s for (s,) in mk.read_tsv(os.path.join(glue, "SST-2", "dev.tsv"), ["sentence"], 10 ** 6)]
    for a, b in mk.read_tsv(os.path.join(glue, "MRPC", "dev.tsv"), ["#1 String", "#2 String"], 10 ** 6):
        texts += [a, b]
    for a, b in mk.read_tsv(os.path.join(glue, "RTE", "dev.tsv"), ["sentence1", "sentence2"], 10 ** 6):
        texts += [a, b]
    same = sum(ref.tokenize(t) == sp.encode(t) for t in texts if comparable(t))
    n = sum(comparable(t) for t in texts)
    print("reference == sentencepiece on %d of %d GLUE dev texts (%d skipped: leading or double spaces)"
          % (same, n, len(texts) - n))

    golden, kept = [], 0
    with open(os.path.join(OUT, "cases.jsonl")) as f:
        for line in f:
            c = json.loads(line)
            try:
                a = bytes.fromhex(c["a"]).decode("utf-8")
            except UnicodeDecodeError:
                golden.append("SKIP")
                continue
            if c["b"] is not None or not comparable(a):
                golden.append("SKIP")
                continue
            ids = sp.encode(a)[: c["max_len"]]
            if ref.encode(a, None, c["max_len"])[0] != ids:
                print("differs:", repr(a[:60]))
            golden.append(" ".join(map(str, ids)) + " | " + " ".join("0" * len(ids)))
            kept += 1
    with open(os.path.join(OUT, "spm.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(OUT, "spm.ids"), "w") as f:
        f.write("\n".join(golden) + "\n")
    print("spm.ids: %d cases with SentencePiece ids" % kept)


if __name__ == "__main__":
    main()
