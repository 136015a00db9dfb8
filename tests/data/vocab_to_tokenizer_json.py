#!/usr/bin/python3
"""Writes the tokenizer.json of a BERT vocab.txt, as Hugging Face's
BertTokenizerFast would save it: BertNormalizer (lowercase and accent
stripping per --lowercase), BertPreTokenizer, WordPiece with "##",
[CLS] A [SEP] / [CLS] A [SEP] B [SEP] (BertProcessing), the five special
tokens as added tokens matched before normalization.

    /usr/bin/python3 vocab_to_tokenizer_json.py VOCAB_TXT OUT_JSON [--cased]
"""
import json
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    lowercase = "--cased" not in sys.argv[3:]
    vocab = {}
    with open(src, encoding="utf-8") as f:
        for i, line in enumerate(f.read().splitlines()):
            vocab[line] = i  # a repeated token keeps its last line, as vocab.txt readers do
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocab]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", vocab["[SEP]"]],
                           "cls": ["[CLS]", vocab["[CLS]"]]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
