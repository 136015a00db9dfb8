#!/usr/bin/env bash
# Runs every libFuzzer harness of tests/fuzz (each fuzz_*.c; or the ones
# named) for SECONDS each, with ASan + UBSan, and prints a summary: runs,
# coverage (edges), corpus size, crashes.  Usage:
#   tests/fuzz/run.sh SECONDS [fuzz_name...]
# Builds into $BCT_FUZZ_BUILD (default build-fuzz) with clang.  Seeds:
# tests/fuzz/corpus/<name without fuzz_>/; new inputs go to
# $BCT_FUZZ_BUILD/corpus/<name>/ (the repository's seeds stay as they
# are); a dictionary tests/fuzz/<name without fuzz_>.dict is used when
# present.  Crash inputs land in $BCT_FUZZ_BUILD/crashes/.  Exit 0 when no
# harness crashed, 1 otherwise, 77 without clang.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:?usage: run.sh SECONDS [fuzz_name...]}
shift
build=${BCT_FUZZ_BUILD:-$root/build-fuzz}
cc=$(command -v clang || command -v clang-14 || true)
[ -n "$cc" ] || { echo "skipped: clang not installed (deploy/install-deps.sh)"; exit 77; }
CC=$cc cmake -S "$root" -B "$build" -DBCT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" --target fuzz_all -j"${BCT_FUZZ_JOBS:-2}" > "$build/fuzz-build.log" 2>&1 ||
    { tail -30 "$build/fuzz-build.log"; exit 1; }
if [ $# -eq 0 ]; then
    set -- $(cd "$here" && ls fuzz_*.c | sed 's/\.c$//')
fi
mkdir -p "$build/crashes"
failed=0
printf '%-22s %12s %8s %8s %8s %s\n' harness runs cov ft corpus result
for name in "$@"; do
    short=${name#fuzz_}
    seeds=$here/corpus/$short
    work=$build/corpus/$short
    mkdir -p "$work" "$seeds"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1
          -artifact_prefix="$build/crashes/$short-")
    [ -f "$here/$short.dict" ] && args+=(-dict="$here/$short.dict")
    log=$build/fuzz-$short.log
    # leak checks on: a leak is a finding like a crash.
    if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$build/tests/fuzz/$name" "${args[@]}" "$work" "$seeds" > "$log" 2>&1; then
        result=ok
    else
        result="CRASH (see $log)"
        failed=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    cov=$(grep -oE '(DONE|pulse|NEW|REDUCE|INITED) *cov: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    printf '%-22s %12s %8s %8s %8s %s\n' "$name" "${runs:-?}" "${cov:-?}" "${ft:-?}" \
        "$(ls "$work" | wc -l)" "$result"
done
exit $failed
