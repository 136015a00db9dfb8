#!/usr/bin/python3
"""Regenerates tokenizer_cases.tsv: golden WordPiece encodings of hard inputs,
produced by the reference tokenizer (Tokenizer in ../shared/tools/ref_bert.py,
relative to the repository root) with the bert-base-uncased vocab of
../shared/models/sst2-bert-tiny-scratch.

Usage (needs Debian's python3 with numpy + torch, which ref_bert.py imports):
    /usr/bin/python3 tests/data/make_tokenizer_cases.py

Output: one case per line, tab-separated:
    lower  max_len  text_a  text_b  ids  type_ids
text_a / text_b are JSON strings (ASCII only, so \\u escapes; text_b is null
for a single text); ids are space-separated; type_ids is a string of digits.
Lines starting with '#' are comments.

Characters assigned only in Unicode 15 are deliberately absent: the
reference's Python 3.11 knows Unicode 14 and treats them as unassigned,
while utf8proc 2.8 classifies them.
"""
import hashlib
import json
import os
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, os.path.join(SHARED, "tools"))
from ref_bert import Tokenizer  # noqa: E402

VOCAB_REL = "models/sst2-bert-tiny-scratch/vocab.txt"

# (text_a, text_b or None, max_len, lower)
SINGLE = [
    # basics, case
    "Hello, World!",
    "HELLO WORLD",
    "The Quick Brown FOX jumps over the lazy dog.",
    "Don't won't it's y'all",
    # accents
    "café naïve Ångström résumé",
    "CAFÉ NAÏVE RÉSUMÉ",
    "A\u030angstro\u0308m cafe\u0301",  # already decomposed input
    "Tiếng Việt có dấu",
    "Ærøskøbing façade Œuvre",
    # CJK and other East Asian scripts
    "中文字符 mixed with latin中文text",
    "我爱北京天安门。",
    "\uf900\uf901 compat ideographs",
    "\U00020000\U00020001 ext-B",
    "日本語のテキスト、カタカナ。",
    "ひらがなカタカナ",
    "ｶﾀｶﾅ halfwidth",
    "한국어 텍스트입니다",
    "안녕하세요",
    # other scripts
    "שלום עולם",
    "مَرْحَبًا بالعالم",
    "ภาษาไทย",
    "नमस्ते दुनिया",
    "Привет, МИР!",
    # punctuation of all kinds
    "Punctuation: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "\u201csmart quotes\u201d \u2018single\u2019 \u2014 em-dash \u2013 en-dash \u2026 ellipsis",
    "¿Qué? ¡Sí! «guillemets» ‹single›",
    "wait...what?!?",
    "a\u037eb\u0387c",  # Greek question mark (NFD -> ';') and ano teleia
    "§1 ¶2 †3 ‡4 •5 ※6",
    # symbols, math, currency
    "∑ x² ≤ ∞ ± √2 ½",
    "$100 €50 £30 ¥1000 ₹5",
    "\u212a\u212b\u2126 signs",  # Kelvin, Angstrom, Ohm
    # emoji
    "emoji 😀 👍🏽 ok",
    "family 👨\u200d👩\u200d👧\u200d👦 heart ❤️ flag 🇺🇸",
    "😀😀😀",
    # control and format characters
    "ctrl\x00chars\x07here\x1bthere",
    "zero\u200bwidth\ufeffBOM",
    "\ufeffleading BOM",
    "replacement\ufffdchar",
    "soft\u00adhyphen",
    "a\u200cb\u200dc",
    "mongolian\u180evowel",
    "x\x1cy\x1dz\x1e\x1fw\x85v\x0bu\x0ct",
    "\x7f\x80\x9f delete and C1",
    # whitespace
    "tabs\tand\nnewlines\r\nand\rcr",
    "non\u00a0breaking\u00a0space",
    "line\u2028sep\u2029para",
    "ideographic\u3000space",
    "thin\u2009space\u202fnarrow\u205fmath\u1680ogham",
    "  padded  ",
    # Greek final sigma
    "ΟΔΟΣ",
    "ΣΑΣ.",
    "Σ",
    "ΣΑΣ.Α",
    "ΑΣ'Σ",
    "ΌΣΟΣ'",
    "Σ.Σ",
    "ΑΣΑ",
    "Η ΟΔΟΣ ΕΙΝΑΙ ΜΑΚΡΙΑ ΚΑΙ ΣΚΟΤΕΙΝΗ",
    "ΑΣ\u0301",
    "ΑΣ.Ⅰ",  # Roman numeral one is cased: not final
    "ΑΣ.\U0001f130",  # squared A is cased (Other_Uppercase) without a case mapping
    "ª.Σ",  # feminine ordinal is cased (Other_Lowercase): final
    "1Σ",  # digits are not cased: not final
    # Turkish dotted I and other special casing
    "İstanbul",
    "İ",
    "DİYARBAKIR ıi",
    "ẞ straße",
    # compatibility characters (not changed by NFD)
    "ﬁnance ﬂow",
    "Ｆｕｌｌ ｗｉｄｔｈ １２３",
    "①②③ ⅷ",
    # combining marks
    "e\u0301\u0301 combining a\u0300\u0316 stacked",
    "\u0301leading mark",
    "x\u20dd enclosed",
    "variation\ufe0fselector",
    # numbers, URLs, WordPiece continuations
    "3.14159 1,000,000 42nd 2023-10-05 0x1F",
    "12345678901234567890",
    "https://www.example.com/path?query=1&x=y#frag",
    "user@example.com",
    "unaffable playing tokenization supercalifragilisticexpialidocious",
    "C++ and C# are languages",
    # private use and misc
    "\ue000private",
    "\U0010fffd",
    # empty and degenerate
    "",
    "   ",
    "\t\n\r ",
    "\x00\x07",
    # word length limit (100 code points after normalisation)
    "x" * 100,
    "x" * 101,
    "ab" * 50 + " ok",
    "a" * 10000,
    "é" * 100,
    "é" * 101,
    "e\u0301" * 100,
    "İ" * 100,
    "x" * 99 + "." + "x" * 99,
    ("word " * 200).strip(),
]

SINGLE_TRUNC = [
    ("one two three four", 2),
    ("one two three four", 3),
    ("one two three four", 5),
    ("unaffable playing", 4),
    ("", 2),
]

PAIRS = [
    ("The cat sat.", "On the mat.", 128),
    ("one two three four five six", "seven eight", 8),
    ("a b", "c d e f g h i j", 8),
    ("a b c d", "e f g h", 8),
    ("a b c d e", "f g h i", 8),
    ("hello", "world", 3),
    ("hello there", "", 4),
    ("", "", 128),
    ("", "something else", 8),
    ("Is this a question? Yes, it is.", "Was that an answer; maybe it was not!", 16),
    ("unaffable tokenization playing", "supercalifragilistic", 16),
    ("café 中文 ΟΔΟΣ", "naïve 😀 İstanbul", 16),
    ("x" * 101 + " y", "z", 128),
    (" ".join(["alpha"] * 30), " ".join(["beta"] * 20), 16),
]

LOWER_OFF = [
    "Hello WORLD café",
    "ΟΔΟΣ",
    "İstanbul naïve",
    "the quick brown fox",
]


def main():
    vocab = os.path.join(SHARED, VOCAB_REL)
    tok = {True: Tokenizer(vocab, lower=True), False: Tokenizer(vocab, lower=False)}
    cases = [(a, None, 128, True) for a in SINGLE]
    cases += [(a, None, m, True) for a, m in SINGLE_TRUNC]
    cases += [(a, b, m, True) for a, b, m in PAIRS]
    cases += [(a, None, 128, False) for a in LOWER_OFF]
    for a, b, _, _ in cases:  # see the note on Unicode 15 above
        bad = [c for c in a + (b or "") if unicodedata.category(c) == "Cn"]
        assert not bad, f"unassigned code point in case {a!r}: {bad!r}"
    md5 = hashlib.md5(open(vocab, "rb").read()).hexdigest()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_cases.tsv")
    with open(out, "w", encoding="ascii", newline="\n") as f:
        f.write("# Generated by tests/data/make_tokenizer_cases.py from ../shared/tools/ref_bert.py\n")
        f.write(f"# vocab: ../shared/{VOCAB_REL} (md5 {md5})\n")
        f.write("# lower\tmax_len\ttext_a\ttext_b\tids\ttype_ids\n")
        for a, b, m, lower in cases:
            ids, tt = tok[lower].encode(a, b, m)
            f.write("\t".join([str(int(lower)), str(m), json.dumps(a), json.dumps(b),
                               " ".join(map(str, ids)), "".join(map(str, tt))]) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
