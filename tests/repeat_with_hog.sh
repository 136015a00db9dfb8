#!/usr/bin/env bash
# Flakiness check (issue 17): runs the ctest tests matching REGEX N times
# in a row while `yes > /dev/null` keeps one core busy, and stops at the
# first failure.  The hog is bounded by `timeout` and killed on exit.
#   tests/repeat_with_hog.sh BUILD_DIR N REGEX [HOG_SECONDS]
set -u
build=${1:?usage: repeat_with_hog.sh BUILD_DIR N REGEX [HOG_SECONDS]}
n=${2:?}
regex=${3:?}
timeout "${4:-7200}" yes > /dev/null &
hog=$!
trap 'kill $hog 2>/dev/null; wait $hog 2>/dev/null' EXIT
for i in $(seq 1 "$n"); do
    start=$SECONDS
    if ! ctest --test-dir "$build" -R "$regex" --output-on-failure > "$build/repeat-$i.log" 2>&1; then
        echo "run $i: FAILED (log: $build/repeat-$i.log)"
        grep -E '^FAIL|Failed' "$build/repeat-$i.log" | head -5
        exit 1
    fi
    echo "run $i: $(grep -c 'Passed' "$build/repeat-$i.log") passed in $((SECONDS - start)) s"
done
echo "all $n runs passed"
