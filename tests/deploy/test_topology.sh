#!/usr/bin/env bash
# The topology of docker-compose.yml, without Docker, on loopback: Debian's
# nginx, run as this user with deploy/nginx/nginx.conf (rendered by
# deploy/nginx/render-static.sh for fixed addresses), in front of two
# `bct serve` replicas and one admin replica sharing one model store (a
# copy of models/sst2-tiny.bct), configured through BCT_* variables as in
# the container.
#
#  A  nginx answers its own health check; /health, /ready, /models reach a replica
#  B  200 /classify requests in 4 parallel keepalive loops: all 200, right answers
#  C  both replicas served (access logs, cross-checked with /metrics)
#  D  the replicas' errors pass through unchanged (422, 400, 404, 405, 413);
#     nginx's own 413 has the server's error shape
#  E  /admin/* reaches the admin replica only, with the large body limit
#  F  429 (queue full) reaches the client with Retry-After, not retried
#  G  deploy/healthcheck.sh (the images' HEALTHCHECK) against both
#  H  SIGTERM one replica under traffic: no request fails (nginx retries
#     the other one), the replica exits 0
#  I  a checkpoint uploaded through nginx's /admin route (token, job
#     polled through nginx) is served by both replicas within seconds (they
#     watch the shared store), and so is its replacement
#  J  no replica left: nginx's own 502 in the server's error shape
#  K  nginx stops gracefully (SIGQUIT)
#
# Every loop is bounded in count and time; every wait polls with a
# deadline; every process is killed on exit.
. "$(dirname "$0")/lib.sh"
need_tools nginx curl jq python3

STORE=$WORK/store
mkdir -p "$STORE" "$WORK/out" "$WORK/fo" "$WORK/burst"
cp "$ROOT/models/sst2-tiny.bct" "$STORE/"
chmod 711 "$WORK"   # nginx's workers (nobody, when run as root) reach their temp dirs

declare -A PID PORT
# start_bct NAME [flags...]: a replica as the container runs it (settings
# from BCT_* variables), but on a free loopback port.
start_bct() {
    local name=$1; shift
    rm -f "$WORK/$name.port"
    : > "$WORK/$name.access"
    BCT_MODEL_STORE=$STORE BCT_DEFAULT_MODEL=sst2-tiny BCT_THREADS=1 BCT_QUEUE_SIZE=64 \
    BCT_DRAIN_TIMEOUT_S=30 BCT_ACCESS_LOG=$WORK/$name.access \
        "$BCT" serve --host 127.0.0.1 --port 0 --port-file "$WORK/$name.port" "$@" \
        2>> "$WORK/$name.log" &
    PID[$name]=$!
    SERVERS+=($!)
}
bct_listening() {
    kill -0 "${PID[$1]}" 2>/dev/null || fail "bct serve ($1) exited during start-up"
    [ -s "$WORK/$1.port" ]
}
wait_bct() {
    wait_until "$1 listening" bct_listening "$1"
    PORT[$1]=$(cat "$WORK/$1.port")
    wait_until "$1 ready" is_ready "http://127.0.0.1:${PORT[$1]}"
}
# served NAME [STATUS]: /classify requests NAME's access log shows.
served() { grep -c "\"path\":\"/classify\",\"status\":${2:-200}" "$WORK/$1.access" || true; }

ADMIN_TOKEN=topology-admin-token
start_bct r1
start_bct r2
BCT_ADMIN_TOKEN=$ADMIN_TOKEN start_bct admin   # only the admin replica has the admin API
for n in r1 r2 admin; do wait_bct $n; done
R1=http://127.0.0.1:${PORT[r1]}

# ---- nginx, with the repository's configuration ----
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
NGX=$WORK/nginx
mkdir -p "$NGX/prefix/logs"
NGINX_PID=
nginx_up() {
    kill -0 "$NGINX_PID" 2>/dev/null || return 2
    [ "$(http_code "$LB/nginx-health")" = 200 ]
}
for _ in 1 2 3 4 5; do
    LB_PORT=$(free_port)
    LB=http://127.0.0.1:$LB_PORT
    "$ROOT/deploy/nginx/render-static.sh" "$NGX/conf" "127.0.0.1:$LB_PORT" \
        "127.0.0.1:${PORT[admin]}" "127.0.0.1:${PORT[r1]}" "127.0.0.1:${PORT[r2]}" ||
        fail "render-static.sh"
    : > "$WORK/nginx.log"
    "$NGINX" -p "$NGX/prefix/" -c "$NGX/conf/nginx.conf" 2>> "$WORK/nginx.log" &
    NGINX_PID=$!
    SERVERS+=($!)
    end=$((SECONDS + DEADLINE_S))
    while :; do
        nginx_up
        rc=$?
        [ $rc = 1 ] || break   # 0: up; 2: exited
        [ $SECONDS -lt $end ] || fail "nginx not up in time"
        sleep 0.05
    done
    [ $rc = 0 ] && break
    # Lost the race for the port to another process: pick another one.
    grep -q 'Address already in use' "$WORK/nginx.log" || fail "nginx did not start"
    NGINX_PID=
done
[ -n "$NGINX_PID" ] || fail "nginx found no free port in 5 attempts"
NGINX_LOG=$NGX/prefix/logs/access.log

# ---- A: health and info routes through nginx ----
check_eq "nginx: own health check" 200 "$(http_code "$LB/nginx-health")"
check_eq "nginx: /health reaches a replica" 200 "$(http_code "$LB/health")"
check_eq "nginx: /ready reaches a replica" 200 "$(http_code "$LB/ready")"
check_eq "nginx: /models lists the store's model" sst2-tiny \
    "$(curl -s --max-time 10 "$LB/models" | jq -r '.models[].name')"

# ---- B: 200 /classify requests, 4 keepalive loops of 50 ----
texts=("a charming and often affecting journey" "the movie is a disaster from start to finish"
       "an utterly compelling story" "it is dull, lifeless and too long"
       "one of the best films of the year" "a waste of two hours"
       "warm, funny and engaging" "painfully bad acting")
for i in "${!texts[@]}"; do
    jq -cn --arg t "${texts[$i]}" '{inputs: $t}' > "$WORK/body$i.json"
done
# loop_config LOOP COUNT: a curl config of COUNT sequential /classify requests.
loop_config() {
    local l=$1 n=$2 i
    for ((i = 0; i < n; i++)); do
        [ $i -gt 0 ] && echo next
        printf 'url = "%s/classify"\nheader = "Content-Type: application/json"\n' "$LB"
        printf 'data-binary = "@%s/body%d.json"\noutput = "%s/out/%d_%d.json"\n' \
            "$WORK" $(((l + i) % 8)) "$WORK" "$l" "$i"
        printf 'max-time = 30\nsilent\nwrite-out = "%%{http_code} %d\\n"\n' $(((l + i) % 8))
    done
}
loops=()
for l in 1 2 3 4; do
    loop_config $l 50 > "$WORK/loop$l.cfg"
    timeout 300 curl -K "$WORK/loop$l.cfg" > "$WORK/loop$l.status" 2> "$WORK/loop$l.err" &
    loops+=($!)
done
for p in "${loops[@]}"; do wait "$p"; done
cat "$WORK"/loop[1-4].status > "$WORK/b.status"
check_eq "B: answers" 200 "$(wc -l < "$WORK/b.status")"
check_eq "B: all 200" 200 "$(grep -c '^200 ' "$WORK/b.status")"
# The right label for each text: what a replica answers directly.
for i in "${!texts[@]}"; do
    curl -s --max-time 30 -H 'Content-Type: application/json' --data-binary "@$WORK/body$i.json" \
        "$R1/classify" | jq -r '.[0].label' > "$WORK/direct$i"
done
bad=0
for l in 1 2 3 4; do
    for ((i = 0; i < 50; i++)); do
        want=$(cat "$WORK/direct$(((l + i) % 8))")
        got=$(jq -r '.[0].label' "$WORK/out/${l}_$i.json" 2>/dev/null)
        [ "$got" = "$want" ] || bad=$((bad + 1))
    done
done
check_eq "B: every answer has the replica's label" 0 "$bad"
direct=$(curl -s --max-time 30 -H 'Content-Type: application/json' --data-binary "@$WORK/body0.json" "$R1/classify")
via=$(curl -s --max-time 30 -H 'Content-Type: application/json' --data-binary "@$WORK/body0.json" "$LB/classify")
check_eq "B: an answer through nginx is the replica's, byte for byte" "$direct" "$via"

# ---- C: both replicas served ----
# 200 loop requests + 1 through nginx above + 8 + 1 sent to r1 directly,
# each served once (no retries).  Access log lines are written when an
# exchange completes, a moment after the client has its answer: poll.
all_logged() { [ $(($(served r1) + $(served r2))) -ge 210 ]; }
wait_until "C: 210 requests in the replicas' access logs" all_logged
n1=$(served r1)
n2=$(served r2)
echo "B: replica 1 served $n1, replica 2 served $n2 of the /classify requests"
[ "$n1" -ge 20 ] && [ "$n2" -ge 20 ] || fail "C: load not spread: $n1 / $n2 (want >= 20 each)"
pass=$((pass + 1))
check_eq "C: every request served once (no retries)" 210 $((n1 + n2))
metric_classify() {
    curl -s --max-time 10 "http://127.0.0.1:${PORT[$1]}/metrics" |
        sed -n 's|^bct_http_requests_total{route="/classify",code="200"} ||p'
}
check_eq "C: /metrics of replica 1 agrees with its access log" "$n1" "$(metric_classify r1)"
check_eq "C: /metrics of replica 2 agrees with its access log" "$n2" "$(metric_classify r2)"
check_eq "C: the admin replica got no inference traffic" 0 "$(served admin)"
for p in "${PORT[r1]}" "${PORT[r2]}"; do
    check "C: nginx's access log names replica :$p" grep -q "\"upstream\":\"127.0.0.1:$p\"" "$NGINX_LOG"
done

# ---- D: errors pass through unchanged ----
# same_answer DESCRIPTION EXPECTED_STATUS PATH [curl args...]: the replica's
# answer directly and through nginx: same status, body, Content-Type.
same_answer() {
    local what=$1 status=$2 path=$3; shift 3
    local a b
    a=$(curl -s --max-time 30 -D "$WORK/h.direct" -o "$WORK/b.direct" -w '%{http_code}' "$@" "$R1$path")
    b=$(curl -s --max-time 30 -D "$WORK/h.lb" -o "$WORK/b.lb" -w '%{http_code}' "$@" "$LB$path")
    check_eq "$what: status directly" "$status" "$a"
    check_eq "$what: status through nginx" "$status" "$b"
    check "$what: same body through nginx" cmp -s "$WORK/b.direct" "$WORK/b.lb"
    check_eq "$what: same Content-Type" "$(hdr Content-Type "$WORK/h.direct")" "$(hdr Content-Type "$WORK/h.lb")"
    check "$what: error shape" jqe '(.error | strings) and (.error_type | strings)' "$WORK/b.lb"
}
jqe() { jq -e "$@" > /dev/null; }
hdr() { grep -i "^$1:" "$2" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
J=(-H 'Content-Type: application/json')
same_answer "D: empty text (422)" 422 /classify "${J[@]}" --data-binary '{"inputs": ""}'
same_answer "D: unknown field (422)" 422 /classify "${J[@]}" --data-binary '{"inputs": "x", "topk": 1}'
same_answer "D: malformed JSON (400)" 400 /classify "${J[@]}" --data-binary '{"inputs": '
same_answer "D: unknown route (404)" 404 /no-such-route
same_answer "D: wrong method (405)" 405 /classify
check_eq "D: Allow header passes through" "$(hdr Allow "$WORK/h.direct")" "$(hdr Allow "$WORK/h.lb")"
check_eq "D: 422s answered once, not retried" 0 \
    "$(jq -s '[.[] | select(.status == 422 and .upstream_status != "422")] | length' "$NGINX_LOG")"
jq -cn '{inputs: [range(65) | "x"]}' > "$WORK/many.json"
same_answer "D: too many inputs (the server's 413)" 413 /classify "${J[@]}" \
    --data-binary "@$WORK/many.json"
# 1.5 MB: over the server's max_body_bytes (1 MiB), and so over nginx's
# limit for /classify: nginx's own 413, in the server's shape.
head -c 1500000 /dev/zero | tr '\0' a | jq -Rc '{inputs: .}' > "$WORK/big.json"
code=$(curl -s --max-time 30 -D "$WORK/h.lb" -o "$WORK/b.lb" -w '%{http_code}' "${J[@]}" \
    --data-binary "@$WORK/big.json" "$LB/classify")
check_eq "D: nginx's 413 on /classify" 413 "$code"
check_eq "D: nginx's 413 error_type" PayloadTooLarge "$(jq -r .error_type "$WORK/b.lb")"
check_contains "D: nginx's 413 is JSON" application/json "$(hdr Content-Type "$WORK/h.lb")"

# ---- E: /admin/* goes to the admin replica only ----
code=$(curl -s --max-time 30 -o "$WORK/b.lb" -w '%{http_code}' "$LB/admin/jobs/job-1")
check_eq "E: GET /admin/jobs/job-1 without the token: the admin replica's 401" 401 "$code"
check "E: answered in the error shape" jqe '.error_type | strings' "$WORK/b.lb"
# (A server writes its access log line when the exchange completes,
# which may be a moment after the client has the answer: poll.)
wait_until "E: the admin replica got it" grep -q '"path":"/admin/jobs/job-1"' "$WORK/admin.access"
pass=$((pass + 1))
for n in r1 r2; do
    check "E: replica $n did not" bash -c "! grep -q '/admin/' '$WORK/$n.access'"
done
# A 3 MB upload: past nginx (admin's limit is 2g), to the admin replica,
# which refuses it without a token (401).
head -c 3000000 /dev/zero > "$WORK/big3.bin"
code=$(curl -s --max-time 60 -o "$WORK/b.lb" -w '%{http_code}' -F "name=tiny" \
    -F "weights=@$WORK/big3.bin;type=application/octet-stream" "$LB/admin/compress")
check_eq "E: a 3 MB POST /admin/compress without the token: 401" 401 "$code"
wait_until "E: the 3 MB upload reaches the admin replica" \
    grep -q '"method":"POST","path":"/admin/compress"' "$WORK/admin.access"
pass=$((pass + 1))
check "E: not nginx's own 413" bash -c "! grep -q 'too large for this route' '$WORK/b.lb'"

# ---- F: 429 with Retry-After reaches the client, not retried ----
# Each request carries 64 long inputs and the replicas' queues hold 64
# (BCT_QUEUE_SIZE), so of 8 at once some find the queue full.
words=$(printf 'a charming and often affecting journey %.0s' $(seq 40))
jq -cn --arg t "$words" '{inputs: [range(64) | $t]}' > "$WORK/burst.json"
got429=
for round in 1 2 3 4 5; do
    : > "$WORK/burst.cfg"
    for i in 1 2 3 4 5 6 7 8; do
        [ $i -gt 1 ] && echo next >> "$WORK/burst.cfg"
        printf 'url = "%s/classify"\nheader = "Content-Type: application/json"\ndata-binary = "@%s"\n' \
            "$LB" "$WORK/burst.json" >> "$WORK/burst.cfg"
        printf 'output = "%s/burst/o%d"\ndump-header = "%s/burst/h%d"\nmax-time = 60\nsilent\n' \
            "$WORK" $i "$WORK" $i >> "$WORK/burst.cfg"
        printf 'write-out = "%%{http_code} %d\\n"\n' $i >> "$WORK/burst.cfg"
    done
    timeout 300 curl -Z --parallel-immediate --parallel-max 8 -K "$WORK/burst.cfg" \
        > "$WORK/burst.status" 2> "$WORK/burst.err"
    bad=$(grep -cv '^\(200\|429\) ' "$WORK/burst.status" || true)
    check_eq "F: round $round: only 200 and 429" 0 "$bad"
    got429=$(awk '$1 == 429 { print $2; exit }' "$WORK/burst.status")
    [ -n "$got429" ] && break
done
[ -n "$got429" ] || fail "F: 5 bursts of 8 x 64 inputs never filled a queue of 64"
echo "F: burst $round: $(grep -c '^429 ' "$WORK/burst.status") of 8 requests got 429"
check_eq "F: Retry-After passes through" 1 "$(hdr Retry-After "$WORK/burst/h$got429")"
check_eq "F: the replica's 429 body" Overloaded "$(jq -r .error_type "$WORK/burst/o$got429")"
check_eq "F: 429s are not retried on the other replica" 0 \
    "$(jq -s '[.[] | select(.status == 429 and .upstream_status != "429")] | length' "$NGINX_LOG")"

# ---- G: the images' health check script ----
check "G: healthcheck.sh /ready on a replica" "$ROOT/deploy/healthcheck.sh" /ready "${PORT[r1]}"
check "G: healthcheck.sh /nginx-health on nginx" "$ROOT/deploy/healthcheck.sh" /nginx-health "$LB_PORT"
check "G: healthcheck.sh fails on a 404" bash -c "! '$ROOT/deploy/healthcheck.sh' /nope ${PORT[r1]} 2>/dev/null"
closed=$(free_port)
check "G: healthcheck.sh fails with nothing listening" \
    bash -c "! '$ROOT/deploy/healthcheck.sh' /ready $closed 2>/dev/null"

# ---- H: one replica stops under traffic; no request fails ----
# traffic LOOP: /classify through nginx until $WORK/stop exists (at most 400).
traffic() {
    local l=$1 i code
    for ((i = 0; i < 400; i++)); do
        [ -e "$WORK/stop" ] && break
        code=$(curl -s -o "$WORK/fo/${l}_$i.json" -w '%{http_code}' --max-time 30 "${J[@]}" \
            --data-binary "@$WORK/body$(((l + i) % 8)).json" "$LB/classify") || true
        echo "$code $l $i" >> "$WORK/fo/status"
    done
}
rm -f "$WORK/stop"
r1_before=$(served r1)
loops=()
for l in 1 2 3; do
    traffic $l &
    loops+=($!)
    SERVERS+=($!)
done
r1_busy() { [ "$(served r1)" -ge $((r1_before + 10)) ]; }
wait_until "replica 1 serving the failover traffic" r1_busy
kill -TERM "${PID[r1]}"
wait "${PID[r1]}"
check_eq "H: replica 1 exits 0 after SIGTERM" 0 $?
r2_at_exit=$(served r2)
r2_more() { [ "$(served r2)" -ge $((r2_at_exit + 30)) ]; }
wait_until "replica 2 serving alone" r2_more
touch "$WORK/stop"
for p in "${loops[@]}"; do wait "$p"; done
total=$(wc -l < "$WORK/fo/status")
echo "H: $total requests while replica 1 stopped; nginx retried $(jq -s \
    '[.[] | select(.upstream_status | contains(","))] | length' "$NGINX_LOG") on replica 2"
check_eq "H: every request 200" "$total" "$(grep -c '^200 ' "$WORK/fo/status")"
[ "$total" -ge 40 ] || fail "H: only $total requests"
pass=$((pass + 1))
check "H: replica 1 drained and stopped cleanly" grep -q '"msg":"stopped"' "$WORK/r1.log"

# ---- I: model upload through the admin route, served by both replicas ----
# Replica 1 comes back on its old port (nginx's upstream), so that two
# replicas run; it is stopped again for J.  The upload and the job polls go
# through nginx; each replica is then asked directly.
restart_r1() {
    local old=${PORT[r1]} end=$((SECONDS + DEADLINE_S))
    start_bct r1 --port "$old"
    until [ -s "$WORK/r1.port" ]; do
        if ! kill -0 "${PID[r1]}" 2>/dev/null; then
            echo "I: port $old was taken meanwhile; replica 1 runs on another port (not behind nginx)"
            start_bct r1
            break
        fi
        [ $SECONDS -lt $end ] || fail "I: replica 1 did not restart"
        sleep 0.05
    done
    wait_bct r1
}
# serves_model NAME VERSION PORT: /models of that replica lists it.
serves_model() {
    [ "$(curl -s --max-time 10 "http://127.0.0.1:$3/models" |
        jq -r --arg n "$1" '.models[] | select(.name == $n) | .version')" = "$2" ]
}
admin_upload_served_by_all_replicas() {
    local tiny=$SHARED/models/sst2-bert-tiny-scratch name=uploaded-sst2 id n state code body
    if [ ! -d "$tiny" ]; then
        echo "I: skipped (no ../shared checkpoint to upload)"
        return
    fi
    restart_r1
    code=$(curl -s --max-time 120 -o "$WORK/up.json" -w '%{http_code}' \
        -H "Authorization: Bearer $ADMIN_TOKEN" -F "name=$name" -F "config=@$tiny/config.json" \
        -F "weights=@$tiny/model.safetensors" -F "vocab=@$tiny/vocab.txt" "$LB/admin/compress")
    check_eq "I: upload through nginx: 202" 202 "$code"
    id=$(jq -r .job_id "$WORK/up.json")
    job_done() {
        state=$(curl -s --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$LB/admin/jobs/$id" |
            jq -r .state)
        [ "$state" = succeeded ] || [ "$state" = failed ]
    }
    wait_until "I: the job through nginx" job_done
    check_eq "I: the job succeeded" succeeded "$state"
    check_eq "I: the job ran on the admin replica" 1 \
        "$(grep -c '"method":"POST","path":"/admin/compress","status":202' "$WORK/admin.access")"
    for n in admin r1 r2; do
        within 5 "I: replica $n serves $name" serves_model "$name" 1 "${PORT[$n]}"
    done
    body=$(jq -cn --arg m "$name" '{inputs: "a charming and often affecting journey", model: $m}')
    for n in r1 r2; do
        code=$(curl -s --max-time 30 -o "$WORK/i.$n" -w '%{http_code}' "${J[@]}" --data-binary "$body" \
            "http://127.0.0.1:${PORT[$n]}/classify")
        check_eq "I: replica $n classifies with $name" 200 "$code"
    done
    check "I: both replicas answer alike" cmp -s "$WORK/i.r1" "$WORK/i.r2"
    code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' "${J[@]}" --data-binary "$body" "$LB/classify")
    check_eq "I: through nginx" 200 "$code"
    # the replacement (the CLI through nginx): version 2 on every replica
    "$BCT" admin upload --server "$LB" --token "$ADMIN_TOKEN" --name "$name" --preset w4a8 "$tiny" \
        > "$WORK/up2.txt" 2>&1 || fail "I: bct admin upload through nginx: $(cat "$WORK/up2.txt")"
    for n in admin r1 r2; do
        within 5 "I: replica $n serves version 2" serves_model "$name" 2 "${PORT[$n]}"
    done
    kill -TERM "${PID[r1]}"
    wait "${PID[r1]}"
    check_eq "I: replica 1 stops again" 0 $?
}
admin_upload_served_by_all_replicas

# ---- J: no replica left: nginx's own 502, in the server's shape ----
kill -TERM "${PID[r2]}"
wait "${PID[r2]}"
check_eq "J: replica 2 exits 0 after SIGTERM" 0 $?
code=$(curl -s --max-time 30 -D "$WORK/h.lb" -o "$WORK/b.lb" -w '%{http_code}' "${J[@]}" \
    --data-binary "@$WORK/body0.json" "$LB/classify")
check_eq "J: no replica: 502" 502 "$code"
check_eq "J: error_type" Unavailable "$(jq -r .error_type "$WORK/b.lb")"
check "J: error message" jqe '.error | strings' "$WORK/b.lb"
check_eq "J: Retry-After" 1 "$(hdr Retry-After "$WORK/h.lb")"
check_contains "J: JSON" application/json "$(hdr Content-Type "$WORK/h.lb")"
check "J: X-Request-Id set" test -n "$(hdr X-Request-Id "$WORK/h.lb")"

# ---- K: nginx stops gracefully ----
kill -QUIT "$NGINX_PID"
wait "$NGINX_PID"
check_eq "K: nginx exits 0 on SIGQUIT" 0 $?
done_ok
