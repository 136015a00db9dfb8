# shellcheck shell=bash
# Helpers for the deployment tests: paths, a scratch directory, process
# bookkeeping (every process started is killed on exit), polling waits.
# Sources tests/cli/lib.sh for check/check_eq/check_contains/done_ok.
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
case "$BCT" in /*) ;; *) BCT=$PWD/$BCT ;; esac
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bct-deploy-test.XXXXXX")
SERVERS=()   # pids to kill on exit
NGINX=

# A process's children (nginx's workers, a loop's curl).
children() { cat /proc/"$1"/task/*/children 2>/dev/null; }

# (stderr off: bash would report each killed job.)
cleanup() {
    local pid
    for pid in "${SERVERS[@]}"; do
        kill -KILL $(children "$pid") "$pid" 2>/dev/null
    done
    for pid in "${SERVERS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
} 2>/dev/null
trap cleanup EXIT

# Logs worth seeing when a check fails: $WORK/*.log (last lines of each).
fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "$WORK"/*.log; do
        [ -s "$f" ] || continue
        echo "--- ${f##*/} (last 15 lines) ---" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

# need_tools TOOL...: skips the test (77) when one is missing.  nginx is
# looked for in /usr/sbin too (not on a normal user's PATH).
need_tools() {
    local t
    for t in "$@"; do
        if [ "$t" = nginx ]; then
            NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }) ||
                { echo "skipped: nginx not installed (Debian: nginx)"; exit 77; }
        else
            command -v "$t" >/dev/null || { echo "skipped: $t not installed"; exit 77; }
        fi
    done
}

# http_code URL [curl args...]: the status code ("000" when no answer).
http_code() {
    local url=$1; shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" || true
}
is_ready() { [ "$(http_code "$1/ready")" = 200 ]; }
