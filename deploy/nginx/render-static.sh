#!/usr/bin/env bash
# render-static.sh OUT_DIR LISTEN ADMIN REPLICA...
#
# Writes a ready-to-run nginx configuration for replicas at fixed
# addresses into OUT_DIR: nginx.conf (copied unchanged) plus the two
# files it includes, rendered from deploy/nginx/static/*.in.  LISTEN is
# what nginx listens on (8080, 127.0.0.1:8080), ADMIN and each REPLICA a
# HOST:PORT.  Then run:  nginx -p PREFIX/ -c OUT_DIR/nginx.conf
# (PREFIX writable, with a logs/ folder; it gets nginx.pid, *_temp/ and
# logs/access.log).
# Used by tests/deploy/test_topology.sh.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$1 listen=$2 admin=$3
shift 3
servers=
for r in "$@"; do
    servers+="    server $r max_fails=1 fail_timeout=10s;"$'\n'
done
mkdir -p "$out"
cp "$here/nginx.conf" "$out/nginx.conf"
sed "s|@LISTEN@|$listen|" "$here/static/bct-listen.conf.in" > "$out/bct-listen.conf"
awk -v servers="${servers%$'\n'}" -v admin="    server $admin;" '
    $0 == "@REPLICA_SERVERS@" { print servers; next }
    $0 == "@ADMIN_SERVER@" { print admin; next }
    { print }' "$here/static/bct-upstreams.conf.in" > "$out/bct-upstreams.conf"
