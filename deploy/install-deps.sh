#!/usr/bin/env bash
# Installs what building, running and testing bct needs on Debian 12 /
# Ubuntu 22.04+.  Shared by .ci/run, the quick start and the Dockerfile.
# curl and jq drive the server tests; wrk the load test (tests/load).
# nginx, python3 and python3-yaml: the deployment tests (tests/deploy).
# libcurl4-openssl-dev: `bct admin`, the HTTP client of the admin API.
# python3-sentencepiece: the SentencePiece check of the tokenizers (tests/cli/test_tokenizer_spm.sh).
# clang-14 + libclang-rt-14-dev: the libFuzzer harnesses (tests/fuzz).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config ca-certificates \
    libmicrohttpd-dev libcjson-dev libopenblas-dev libuv1-dev libutf8proc-dev zlib1g-dev check \
    libcurl4-openssl-dev \
    curl jq wrk nginx python3 python3-yaml python3-sentencepiece \
    clang-14 libclang-rt-14-dev > /dev/null
