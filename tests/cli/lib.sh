# Shared helpers for the shell integration tests.  Each test sources this,
# runs commands, and calls `check` / `check_eq`; the script exits non-zero
# at the first failure.  $BCT is the bct binary, $BCT_SHARED_DIR ../shared.
set -u
: "${BCT:?BCT must point at the bct binary}"
SHARED=${BCT_SHARED_DIR:-}
TINY=$SHARED/models/sst2-bert-tiny-scratch
pass=0

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...: the command must succeed
    local what=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail "$what"; fi
}
check_eq() { # check_eq DESCRIPTION EXPECTED ACTUAL
    [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
    pass=$((pass + 1))
}
check_contains() { # check_contains DESCRIPTION NEEDLE HAYSTACK
    case "$3" in *"$2"*) pass=$((pass + 1)) ;; *) fail "$1: [$2] not in [$3]" ;; esac
}
need_shared() {
    [ -d "$TINY" ] || { echo "skipped: ../shared not present"; exit 77; }
}
done_ok() { echo "$pass checks passed"; exit 0; }

# Polling deadline of wait_until (a loaded 2-core machine, or an ASan
# build, can be slow).
DEADLINE_S=${BCT_TEST_DEADLINE_S:-120}
# wait_until DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_until() {
    local what=$1; shift
    local end=$((SECONDS + DEADLINE_S))
    until "$@"; do
        [ $SECONDS -lt $end ] || fail "timed out waiting for: $what"
        sleep 0.05
    done
}
# within S DESCRIPTION COMMAND...: COMMAND succeeds within S seconds (a
# check: counts as one passed).
within() {
    local s=$1 what=$2 end
    shift 2
    end=$(($(date +%s%N) + s * 1000000000))
    until "$@"; do
        [ "$(date +%s%N)" -lt "$end" ] || fail "not within $s s: $what"
        sleep 0.05
    done
    pass=$((pass + 1))
}

# random_ckpt DIR [bct bench shape flags]: a random BERT classifier in DIR
# (a Hugging Face checkpoint from `bct bench --keep`; labels
# negative/positive; default the tiny model's shape, later flags win).
random_ckpt() {
    local dir=$1
    shift
    "$BCT" bench --layers 2 --hidden 128 --heads 2 --intermediate 512 --vocab 30522 --modes fp32 \
        --batch 1 --seq 8 --runs 1 --no-gemm "$@" --keep "$dir.tmp" > "$dir.log" 2>&1 ||
        fail "bct bench --keep: $(tail -3 "$dir.log")"
    mv "$dir.tmp/hf" "$dir"
    rm -rf "$dir.tmp" "$dir.log"
}
