#!/usr/bin/python3
"""Builds the tokenizer.json fixtures of tests/data/tokenizers/ and their
golden ids, with the reference of ref_tokenizers.py.

    /usr/bin/python3 tests/data/make_tokenizer_json_cases.py [GLUE_DIR]

GLUE_DIR defaults to ../shared/data/glue next to the repository.  The
vocabularies are trained here from GLUE train text (SST-2, MRPC, RTE):
  bpe      byte-level BPE (RoBERTa layout; also as vocab.json + merges.txt)
  unigram  Unigram over NFKC + Metaspace (XLM-R layout, TemplateProcessing)
  unigram_bf  the same vocab with <0xXX> pieces and byte_fallback
  wp_uncased / wp_cased  WordPiece with BertNormalizer + BertPreTokenizer
  wp_seq   the WordPiece vocab behind normalizer / pre-tokenizer Sequences,
           a two-id special, Left truncation at 24
Outputs, all small: tokenizers/<name>.json, tokenizers/bpe_vocab.json,
tokenizers/bpe_merges.txt, tokenizers/cases.jsonl (the texts: GLUE dev
sentences and pairs plus hostile inputs, as hex UTF-8), and
tokenizers/<name>.ids (one line per case: ids, "|", type ids; or "ERROR").
"""
import collections
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_tokenizers as rt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
GLUE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared", "data", "glue")
OUT = os.path.join(HERE, "tokenizers")
MAX_LEN = 64


def read_tsv(path, cols, limit):
    out = []
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\n").split("\t")
        idx = [header.index(c) for c in cols]
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < len(header):
                continue
            out.append(tuple(parts[i] for i in idx))
            if len(out) >= limit:
                break
    return out


def training_text():
    lines = [s for (s,) in read_tsv(os.path.join(GLUE, "SST-2", "train.tsv"), ["sentence"], 6000)]
    for a, b in read_tsv(os.path.join(GLUE, "MRPC", "train.tsv"), ["#1 String", "#2 String"], 1500):
        lines += [a, b]
    for a, b in read_tsv(os.path.join(GLUE, "RTE", "train.tsv"), ["sentence1", "sentence2"], 500):
        lines += [a, b]
    return lines


# ---------------------------------------------------------------- trainers

def train_bpe(lines, n_merges):
    """Byte-level BPE: counts GPT-2 pre-tokens, merges the most frequent
    pair (ties: the smaller pair of strings) n_merges times."""
    words = collections.Counter()
    for line in lines:
        for w in rt.gpt2_split(line):
            words[tuple(rt.BYTE_CHAR[b] for b in w.encode("utf-8"))] += 1
    words = {w: c for w, c in words.items()}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for b in range(256):
        vocab.setdefault(rt.BYTE_CHAR[b], len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    return vocab, merges


def viterbi_counts(pieces, words):
    model = rt.Unigram({"vocab": [[p, s] for p, s in pieces], "unk_id": 0})
    counts = collections.Counter()
    for w, c in words.items():
        for pid in model(w):
            counts[pid] += c
    return counts


def train_unigram(lines, size):
    """Unigram: frequent substrings of Metaspace pieces as candidates, then
    three rounds of Viterbi re-estimation (log relative frequency),
    dropping unused multi-character pieces."""
    norm = rt.make_normalizer({"type": "NFKC"})
    pre = rt.make_pre({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True})
    words = collections.Counter()
    for line in lines:
        for p, _ in pre([(norm(line), True)]):
            words[p] += 1
    chars, subs = collections.Counter(), collections.Counter()
    for w, c in words.items():
        for i in range(len(w)):
            chars[w[i]] += c
            for j in range(i + 2, min(len(w), i + 8) + 1):
                subs[w[i:j]] += c
    keep_chars = [ch for ch, c in chars.items() if c >= 3]
    cands = sorted(subs, key=lambda s: (-subs[s] * len(s), s))[: size * 2]
    total = sum(chars.values())
    pieces = [(p, math.log(max(chars.get(p, 0), subs.get(p, 0), 1) / total)) for p in keep_chars + cands]
    for _ in range(3):
        counts = viterbi_counts([("<unk>", 0.0)] + pieces, words)
        tot = sum(counts.values())
        new = []
        for i, (p, _) in enumerate(pieces):
            c = counts.get(i + 1, 0)
            if c or len(p) == 1:
                new.append((p, math.log((c + 0.5) / tot)))
        new.sort(key=lambda x: (-x[1], x[0]))
        pieces = new[:size]
    pieces.sort(key=lambda x: (-x[1], x[0]))
    return [(p, round(s, 6)) for p, s in pieces]


def train_wordpiece(lines, n_words, n_suffixes):
    norm = rt.make_normalizer({"type": "BertNormalizer", "lowercase": True})
    pre = rt.make_pre({"type": "BertPreTokenizer"})
    words = collections.Counter()
    for line in lines:
        for p, _ in pre([(norm(line), True)]):
            words[p] += 1
    chars = collections.Counter(ch for w, c in words.items() for ch in w for _ in range(c))
    suffixes = collections.Counter()
    for w, c in words.items():
        for k in (2, 3, 4):
            if len(w) > k + 1:
                suffixes[w[-k:]] += c
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alpha = sorted(ch for ch, c in chars.items() if c >= 3)
    vocab += alpha + ["##" + ch for ch in alpha]
    vocab += sorted(w for w, _ in words.most_common(n_words) if len(w) > 1)
    vocab += sorted("##" + s for s, _ in suffixes.most_common(n_suffixes))
    seen, out = set(), []
    for v in vocab:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return {t: i for i, t in enumerate(out)}


# ------------------------------------------------------------- fixtures

def added(content, i, lstrip=False, normalized=False, special=True, single_word=False, rstrip=False):
    return {"id": i, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def roberta_json(vocab, merges):
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added("<s>", 0), added("<pad>", 1), added("</s>", 2), added("<unk>", 3),
                         added("<mask>", vocab["<mask>"], lstrip=True)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                           "trim_offsets": True, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }


def template(cls_name, cls_ids, sep_name, sep_ids, pair_type=1):
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": cls_name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": sep_name, "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": cls_name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": sep_name, "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": pair_type}},
                 {"SpecialToken": {"id": sep_name, "type_id": pair_type}}],
        "special_tokens": {cls_name: {"id": cls_name, "ids": cls_ids, "tokens": [cls_name] * len(cls_ids)},
                           sep_name: {"id": sep_name, "ids": sep_ids, "tokens": [sep_name] * len(sep_ids)}},
    }


def xlmr_json(pieces, byte_fallback):
    vocab = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]
    vocab += [[p, s] for p, s in pieces]
    if byte_fallback:
        vocab += [["<0x%02X>" % b, -20.0] for b in range(256)]
    vocab.append(["<mask>", 0.0])
    mask = len(vocab) - 1
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added("<s>", 0), added("<pad>", 1), added("</s>", 2), added("<unk>", 3),
                         added("<mask>", mask, lstrip=True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": template("<s>", [0], "</s>", [2], pair_type=0),
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": byte_fallback},
    }


def bert_json(vocab, lowercase):
    return {
        "version": "1.0", "truncation": None,
        "padding": None,
        "added_tokens": [added(t, vocab[t]) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", vocab["[SEP]"]], "cls": ["[CLS]", vocab["[CLS]"]]}
        if lowercase else template("[CLS]", [vocab["[CLS]"]], "[SEP]", [vocab["[SEP]"]]),
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def seq_json(vocab):
    j = bert_json(vocab, True)
    j["truncation"] = {"direction": "Left", "max_length": 24, "strategy": "LongestFirst", "stride": 0}
    j["added_tokens"].append(added("<special>", vocab["[MASK]"], normalized=True, special=False, single_word=True))
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
        {"type": "Replace", "pattern": {"String": "``"}, "content": "\""},
        {"type": "Strip", "strip_left": True, "strip_right": True}]}
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Whitespace"}, {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Digits", "individual_digits": True},
        {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False}]}
    j["post_processor"] = template("[CLS]", [vocab["[CLS]"], vocab["[MASK]"]], "[SEP]", [vocab["[SEP]"]])
    return j


# ---------------------------------------------------------------- cases

HOSTILE = [
    "", " ", "   ", "\n\t", "\t\r\n  \u00a0", "Hello", " Hello", "a  b", "a   ", "\n\nHello", "\n\n\nHi",
    "\r\n", "\tx", "I'm I'M don\u2019t we'll they've", "123456 7.5", "!!\U0001F642", "\U0001F469\u200D\U0001F469\u200D\U0001F467",
    "\U0001F1EB\U0001F1F7 flags", "soft\u00adhyphen", "Caf\u00e9 na\u00efve", "Cafe\u0301 NFD",
    "\u0130stanbul Stra\u00dfe \u03a3\u039f\u03a3", "hello!!! $5.00 a-b ^_^ `x`",
    "\u91ce\u53e3\u91cc\u4f73 Noguchi \ud55c\uad6d\uc5b4 \u3072\u3089\u304c\u306a",
    "\uff7d\uff85\uff6f\uff8c\uff9f\uff98\uff9d\uff78\uff9e\u3000SC-40", "\u2026 \u00bd \uff11\uff12\uff13 \u00af\u00af",
    "\ufdfa", "\ue000 private \ue001", "zero\u200bwidth", "NUL\u0000in\ufffdtext\u0007",
    "\u05e9\u05dc\u05d5\u05dd RTL", "x" * 101, "y" * 100, "supercalifragilisticexpialidocious" * 3,
    "<s>inside</s> and <mask> and  <mask>end", "[CLS] [cls] [MASK] [SEP]x", "a <special> b x<special>y",
    "``quoted'' -- dash-separated 2024-01-02", "ab" * 600,
    "the quick brown fox " * 40,
]
INVALID = [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"caf\xe9"]


def cases(glue):
    out = []
    for (s,) in read_tsv(os.path.join(glue, "SST-2", "dev.tsv"), ["sentence"], 60):
        out.append((s.encode(), None, MAX_LEN))
    for a, b in read_tsv(os.path.join(glue, "MRPC", "dev.tsv"), ["#1 String", "#2 String"], 25):
        out.append((a.encode(), b.encode(), MAX_LEN))
    for a, b in read_tsv(os.path.join(glue, "RTE", "dev.tsv"), ["sentence1", "sentence2"], 15):
        out.append((a.encode(), b.encode(), 48))
    for h in HOSTILE:
        out.append((h.encode(), None, MAX_LEN))
    # pairs: odd and even budgets, one side empty, exact fit
    out += [(b"short one", b"a much longer second text that has to be cut " * 3, 17),
            (b"a much longer first text that has to be cut " * 3, b"short", 18),
            (b"both sides are long here and must be cut " * 2, b"this one too is long and must be cut " * 2, 21),
            (b"", b"second only", MAX_LEN), (b"first only", b"", MAX_LEN),
            (b"exact fit", b"x", 7), (b"tiny budget", b"pair", 6)]
    for bad in INVALID:
        out.append((bad, None, MAX_LEN))
    out.append((b"valid first", b"bad \xfe second", MAX_LEN))
    return out


def golden(tok, cs):
    lines = []
    for a, b, ml in cs:
        try:
            sa = a.decode("utf-8")
            sb = b.decode("utf-8") if b is not None else None
            ids, types = tok.encode(sa, sb, ml)
            lines.append(" ".join(map(str, ids)) + " | " + " ".join(map(str, types)))
        except (UnicodeDecodeError, ValueError):
            lines.append("ERROR")
    return lines


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = training_text()
    vocab, merges = train_bpe(lines, 700)
    pieces = train_unigram(lines, 1400)
    wp = train_wordpiece(lines, 900, 200)
    fixtures = {
        "bpe": roberta_json(vocab, merges),
        "unigram": xlmr_json(pieces, False),
        "unigram_bf": xlmr_json(pieces[:600], True),
        "wp_uncased": bert_json(wp, True),
        "wp_cased": bert_json(wp, False),
        "wp_seq": seq_json(wp),
    }
    with open(os.path.join(OUT, "bpe_vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(OUT, "bpe_merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    cs = cases(GLUE)
    with open(os.path.join(OUT, "cases.jsonl"), "w") as f:
        for a, b, ml in cs:
            f.write(json.dumps({"a": a.hex(), "b": None if b is None else b.hex(), "max_len": ml}) + "\n")
    for name, spec in fixtures.items():
        write_json(name + ".json", spec)
        tok = rt.Tokenizer(json.loads(json.dumps(spec)))
        with open(os.path.join(OUT, name + ".ids"), "w") as f:
            f.write("\n".join(golden(tok, cs)) + "\n")
    print("cases:", len(cs), "bpe vocab", len(vocab), "unigram pieces", len(pieces), "wordpiece", len(wp))


if __name__ == "__main__":
    main()
