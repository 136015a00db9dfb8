#!/usr/bin/env bash
# The Precompiled normalizer (SentencePiece charsmap) against SentencePiece
# itself: tests/data/make_spm_nfkc_case.py trains an nmt_nfkc Unigram model
# with python3-sentencepiece (skipped without it) and writes golden ids;
# test_tokenizer_json ($1) compares bct's ids with them.
set -u
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 "$(dirname "$0")/../data/make_spm_nfkc_case.py" "$dir"
rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "FAIL: fixture generation (or the reference differs from SentencePiece)"; exit 1; }
TOK_GOLDEN_DIR=$dir TOK_GOLDEN_NAME=spm_nfkc "$1"
