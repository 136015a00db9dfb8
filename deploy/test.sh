#!/usr/bin/env bash
# Builds and runs every test twice: optimised (build/) and under
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/), both with
# -Werror (a warning fails CI).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build.sh build -DBCT_WERROR=ON
ctest --test-dir build --output-on-failure -j2
deploy/build.sh build-asan -DBCT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBCT_WERROR=ON
# OpenBLAS's threads keep allocations alive until exit; they are not ours.
# The fault-injection tests fail only the first call of each site here
# (every site still fails once under the sanitizers; the Release pass
# above takes the first, middle and last): CI's 20 minutes.
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp BCT_FAULT_QUICK=1 \
    ctest --test-dir build-asan --output-on-failure -j2
