#!/usr/bin/env bash
# healthcheck.sh [PATH] [PORT]: exits 0 if GET http://127.0.0.1:PORT/PATH
# answers 200, 1 otherwise.  PATH defaults to /ready, PORT to $BCT_PORT or
# 8080.  The images' HEALTHCHECK (installed as /usr/local/bin/bct-healthcheck):
# bash's /dev/tcp stands in for curl, so the runtime images need neither
# curl nor its libraries.  Bounded: the connection is local and the status
# line must arrive within 5 s.
set -u
path=${1:-/ready}
port=${2:-${BCT_PORT:-8080}}
if ! exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    echo "bct-healthcheck: nothing listens on 127.0.0.1:$port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
status=
IFS=' ' read -r -t 5 _ status _ <&3 || true
exec 3<&-
if [ "$status" != 200 ]; then
    echo "bct-healthcheck: GET $path on port $port answered ${status:-nothing}" >&2
    exit 1
fi
