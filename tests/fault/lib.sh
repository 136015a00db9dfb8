# Helpers for the fault-injection tests (issue 17): the real `bct serve`
# with tests/fault/fault_shim.c preloaded ($BCT_FAULT_SHIM), replacing the
# bundled model sst2-tiny (a flat sst2-tiny.bct, version 1) by an upload of
# a random BERT (from `bct bench --keep`) while a chosen call of the
# upload -> compress -> publish path fails or kills the server.
#
# One "site" is a call on one kind of path ("write .job-*.bct.tmp.*"); a
# counting run logs every call of the path once, and the tests act on
# chosen occurrences of each site (the shim counts the site's calls only,
# so "the 3rd write of the temp file" means the same call in every run).
. "$(dirname "${BASH_SOURCE[0]}")/../server/lib.sh"
need_tools
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STORE=$WORK/store
TOKEN=test-admin-token-fault
AUTH=(-H "Authorization: Bearer $TOKEN")

SHIM=${BCT_FAULT_SHIM:-}
[ -n "$SHIM" ] && [ -f "$SHIM" ] || { echo "skipped: BCT_FAULT_SHIM (the shim library) not built"; exit 77; }
# The ASan build: the shim is preloaded ahead of the sanitizer runtime.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
# BCT_FAULT_FULL=1: every occurrence of every site (the long form).
# BCT_FAULT_QUICK=1: only the first of each site (deploy/test.sh's
# sanitizer pass, where each case costs 3-4 times as much).
FULL=${BCT_FAULT_FULL:-0}
QUICK=${BCT_FAULT_QUICK:-0}
NAME=sst2-tiny
TEXTS='{"inputs": ["a charming and often affecting journey", "dull"], "raw_scores": true}'
CASES=0

# A random checkpoint small enough for a case to take about a second.
"$BCT" bench --layers 1 --hidden 64 --heads 2 --intermediate 128 --vocab 500 --modes fp32 \
    --batch 1 --seq 8 --runs 1 --no-gemm --keep "$WORK/gen" > "$WORK/gen.log" 2>&1 ||
    fail "bct bench --keep: $(tail -3 "$WORK/gen.log")"
CK=$WORK/gen/hf

# with_shim VAR=VALUE... -- COMMAND...: COMMAND with the shim preloaded.
with_shim() {
    local env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    env LD_PRELOAD="$SHIM" "${env[@]}" "$@"
}

# answers: the raw scores of sst2-tiny for $TEXTS (one line).
answers() {
    post /classify "$TEXTS"
    [ "$STATUS" = 200 ] || { echo "status $STATUS: $BODY"; return; }
    echo "$BODY"
}
served_version() { curl -s --max-time 30 "$URL/models" | jq -r --arg n "$NAME" '.models[] | select(.name == $n) | .version'; }

new_store() { rm -rf "$STORE" && mkdir -p "$STORE" && cp "$ROOT/models/sst2-tiny.bct" "$STORE/"; }
start_admin() { start_server --model-store "$STORE" --admin-token "$TOKEN" --threads 1 "$@"; }
# upload NAME DIR: POST /admin/compress of DIR's checkpoint; STATUS, BODY.
upload() {
    req POST /admin/compress "${AUTH[@]}" -F "name=$1" -F "config=@$2/config.json" \
        -F "weights=@$2/model.safetensors" -F "vocab=@$2/vocab.txt"
}
# job ID: its state; the answer in $WORK/job.json.
job() {
    curl -s --max-time 30 "${AUTH[@]}" -o "$WORK/job.json" "$URL/admin/jobs/$1" || true
    jq -r '.state // "?"' "$WORK/job.json" 2>/dev/null || echo "?"
}
job_ended() { case "$(job "$1")" in succeeded | failed) return 0 ;; *) return 1 ;; esac }
wait_job() { wait_until "job $1 to end" job_ended "$1"; }

# start_faulty ENV...: start_admin with the shim and ENV (BCT_FAULT_*).
# The server's stderr goes to $WORK/server.log as usual.
start_faulty() {
    local env=("$@")
    rm -f "$WORK/port"
    : > "$WORK/access.log"
    env LD_PRELOAD="$SHIM" "${env[@]}" "$BCT" serve --host 127.0.0.1 --port 0 --port-file "$WORK/port" \
        --access-log "$WORK/access.log" --model-store "$STORE" --admin-token "$TOKEN" --threads 1 \
        2>>"$WORK/server.log" &
    SERVER_PID=$!
    wait_until "port file" port_known
    URL="http://127.0.0.1:$(cat "$WORK/port")"
    wait_until "/ready" is_ready
}

# reset_store: the store before every case (sst2-tiny.bct only).
reset_store() { new_store; : > "$WORK/server.log"; }

# upload_new: POST the random checkpoint as a new version of $NAME; sets
# STATUS/BODY, then waits for the job when it was accepted: JOB_STATE,
# JOB_ERROR.
upload_new() {
    upload "$NAME" "$CK"
    JOB_STATE= JOB_ERROR=
    if [ "$STATUS" = 202 ]; then
        wait_job "$(echo "$BODY" | jq -r .job_id)"
        JOB_STATE=$(jq -r .state "$WORK/job.json")
        JOB_ERROR=$(jq -r '.error // ""' "$WORK/job.json")
    fi
}

# count_sites: a run with the shim counting (no fault): $WORK/sites holds
# "call<TAB>pattern<TAB>occurrences" per site, in order of first call
# (the pattern starts with S for the store's path: site_path gives it);
# A1 and A2 the answers of version 1 and of the uploaded version.
count_sites() {
    reset_store
    start_admin
    A1=$(answers)
    stop_server TERM
    rm -f "$WORK/count.log"
    start_faulty BCT_FAULT_PATH="$STORE*" BCT_FAULT_LOG="$WORK/count.log"
    upload_new
    check_eq "counting run: the upload succeeds" succeeded "$JOB_STATE"
    check_eq "counting run: version 2 serves" 2 "$(served_version)"
    A2=$(answers)
    [ "$A1" != "$A2" ] || fail "the uploaded model answers as version 1 does: cannot tell them apart"
    stop_server TERM
    sed -e "s#$STORE#S#" -e 's#up-[A-Za-z0-9]\{6\}#up-*#g' -e 's#\.tmp\.[A-Za-z0-9]\{6\}#.tmp.*#g' \
        -e 's#\.job-[0-9a-f]*-[0-9]*#.job-*#g' "$WORK/count.log" |
        awk '{ k = $2 "\t" $3; if (!(k in n)) order[++m] = k; n[k]++ }
             END { for (i = 1; i <= m; i++) print order[i] "\t" n[order[i]] }' > "$WORK/sites"
    echo "counting run: $(wc -l < "$WORK/count.log") calls on the store in $(wc -l < "$WORK/sites") sites"
}

# occurrences N STABLE: which occurrences of a site of N calls to act on:
# all with BCT_FAULT_FULL=1, else the first, the middle and the last (the
# first only with BCT_FAULT_QUICK=1).  A
# site whose count depends on how the body arrived (writes of an uploaded
# part: TCP decides the pieces) only gets the first (STABLE=0).
occurrences() {
    local n=$1 stable=$2
    if [ "$stable" = 0 ] || [ "$QUICK" = 1 ]; then echo 1; return; fi
    if [ "$FULL" = 1 ]; then seq 1 "$n"; return; fi
    printf '%s\n' 1 $(((n + 1) / 2)) "$n" | sort -nu
}
site_path() { echo "$STORE${1#S}"; }
stable_site() { case "$1" in S/.staging/*) [ "$2" != write ] ;; *) true ;; esac; }

# store_ok WHAT VERSION: nothing but the expected final names, each
# complete: sst2-tiny.bct or sst2-tiny/{1,2}.bct, 1 identical to the
# bundled file, 2 a complete .bct that loads.
store_ok() {
    local what=$1 f base
    for f in "$STORE"/* "$STORE/$NAME"/*; do
        [ -e "$f" ] || continue
        base=${f#"$STORE"/}
        case "$base" in
        "$NAME.bct" | "$NAME/1.bct") cmp -s "$f" "$ROOT/models/sst2-tiny.bct" || fail "$what: $base differs from version 1" ;;
        "$NAME/2.bct") "$BCT" classify --model "$f" "text" > /dev/null 2>&1 || fail "$what: $base is not a complete model" ;;
        "$NAME") ;;
        *) fail "$what: unexpected entry under a final name: $base" ;;
        esac
    done
    pass=$((pass + 1))
}

# no_debris WHAT: no writer temp file, no pending compression, an empty
# staging area.
no_debris() {
    local d
    d=$(find "$STORE" \( -name '*.tmp.*' -o -name '.job-*' -o -path "$STORE/.staging/*" \) -printf '%P ')
    [ -z "$d" ] || fail "$1: debris left: $d"
    pass=$((pass + 1))
}

# serving WHAT VERSION: /models says VERSION for $NAME and it answers as
# that version does.
serving() {
    check_eq "$1: version served" "$2" "$(served_version)"
    local want=$A1
    [ "$2" = 1 ] || want=$A2
    check_eq "$1: answers of version $2" "$want" "$(answers)"
}

# restart_check WHAT VERSION: a start without the shim (every store entry
# must load: --strict-store 1) serves VERSION and leaves no debris.
restart_check() {
    start_admin --strict-store 1
    serving "$1, after a restart" "$2"
    no_debris "$1, after a restart"
    store_ok "$1, after a restart"
    stop_server TERM
    check_eq "$1: clean exit after the restart" 0 "$SERVER_RC"
}

# acted: the shim's log of the case says it acted (the fault happened).
acted() { grep -q ' ACT$' "$WORK/case.log"; }
# published_before_act: the pending file had been renamed to its final
# name before the fault (then the new version is served: the steps after
# it only tidy up).
published_before_act() {
    awk -v s="$STORE" '$2 == "rename" && index($3, s "/.job-") == 1 && $3 !~ /\.tmp\./ && !/ ACT$/ { p = 1 }
                       / ACT$/ { exit !p }' "$WORK/case.log"
}
