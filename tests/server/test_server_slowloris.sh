#!/usr/bin/env bash
# Issue 17 (4): connection exhaustion.  Slowloris clients (a request line,
# then one header byte a second) and idle connections, from two other
# loopback addresses, try to take every connection slot while a normal
# client keeps asking /health and /classify.  The per-client cap keeps
# each attacker to max_connections_per_client slots, and the header
# deadline closes what they hold although bytes keep trickling in.
. "$(dirname "$0")/lib.sh"
need_tools
command -v python3 > /dev/null || { echo "skipped: python3 not installed"; exit 77; }
HOLD="python3 $(dirname "$0")/hold_connections.py"

start_server --model "$SERVE_MODEL" --threads 1 --max-connections 100 --max-connections-per-client 20 \
    --header-timeout-s 2 --connection-timeout-s 30
PORT=$(cat "$WORK/port")
$HOLD 127.0.0.1 "$PORT" 127.0.0.2 slow 150 10 > "$WORK/slow.json" & S=$!
$HOLD 127.0.0.1 "$PORT" 127.0.0.3 idle 150 10 > "$WORK/idle.json" & I=$!
sleep 1
ok=0 total=0
for i in $(seq 1 12); do
    for path in /health /classify; do
        if [ $path = /health ]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL$path")
        else
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
                --data-binary '{"inputs": "a charming journey"}' "$URL$path")
        fi
        total=$((total + 1))
        [ "$code" = 200 ] && ok=$((ok + 1))
    done
    sleep 0.3
done
wait $S $I
echo "normal client: $ok of $total; slowloris: $(cat "$WORK/slow.json"); idle: $(cat "$WORK/idle.json")"
check_eq "the normal client got every answer" "$total" "$ok"
check "server alive" server_alive
for kind in slow idle; do
    check_eq "$kind: every held connection was closed by the server" 0 "$(jq .still_open "$WORK/$kind.json")"
done
# After the attack the cap has room again for everyone.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL/health")
check_eq "/health after the attack" 200 "$code"
stop_server
check_eq "clean exit" 0 "$SERVER_RC"
done_ok
