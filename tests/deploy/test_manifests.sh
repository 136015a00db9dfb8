#!/usr/bin/env bash
# The deployment files, without Docker or a cluster:
#  - every YAML file of deploy/k8s and docker-compose.yml parses, and has
#    what it must (check_manifests.py: probes, resources, PVC access mode,
#    HPA target, replicas, health checks, restart policies, the Dockerfile's
#    stages, user, health check and runtime libraries...);
#  - `docker compose config -q` accepts docker-compose.yml (skipped, and
#    said so, when no compose client is installed);
#  - `nginx -t` accepts deploy/nginx/nginx.conf as Docker and as the
#    loopback test render it;
#  - `bct serve` accepts the settings the deploy files give it (the
#    ConfigMap's server.json and the BCT_* variables of compose and k8s),
#    i.e. it starts with them and becomes ready.
. "$(dirname "$0")/lib.sh"
need_tools python3 nginx curl

# ---- YAML and structure ----
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "skipped: PyYAML (Debian: python3-yaml) not installed"; exit 77; }

"$BCT" serve --help | grep -o 'BCT_[A-Z_]*' | sort -u > "$WORK/known_env"
[ -s "$WORK/known_env" ] || fail "bct serve --help lists no BCT_* variable"

# The Debian packages owning the libraries bct links against (what the
# runtime image must install); what every Debian image has (libc6,
# libgcc-s1: dependencies of the essential set) and sanitizer runtimes are
# not the image's business.
pkgs_arg=()
if command -v dpkg >/dev/null && command -v readelf >/dev/null; then
    : > "$WORK/runtime_pkgs"
    for lib in $(readelf -d "$BCT" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
        case "$lib" in libasan* | libubsan* | liblsan* | libtsan*) continue ;; esac
        path=$(ldd "$BCT" | awk -v l="$lib" '$1 == l { print $3 }')
        [ -n "$path" ] || fail "ldd does not resolve $lib"
        # dpkg knows the path it installed: before or after the /usr merge.
        real=$(readlink -f "$path")
        pkg=
        for p in "$path" "$real" "${path#/usr}" "/usr${path#/usr}" "${real#/usr}" "/usr${real#/usr}"; do
            pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        [ -n "$pkg" ] || { echo "note: no Debian package owns $path"; continue; }
        case "$pkg" in libc6 | libgcc-s1) continue ;; esac
        echo "$pkg" >> "$WORK/runtime_pkgs"
    done
    pkgs_arg=("$WORK/runtime_pkgs")
else
    echo "note: no dpkg/readelf; the Dockerfile's runtime libraries are not checked"
fi
"$PY" "$HERE/check_manifests.py" "$ROOT" "$WORK/known_env" "${pkgs_arg[@]}" ||
    fail "deployment files (see above)"
pass=$((pass + 1))

# ---- docker compose config ----
export BCT_ADMIN_TOKEN=test-token
if docker compose version >/dev/null 2>&1; then
    (cd "$ROOT" && docker compose -f docker-compose.yml config -q) || fail "docker compose config"
    pass=$((pass + 1))
elif command -v docker-compose >/dev/null; then
    (cd "$ROOT" && docker-compose -f docker-compose.yml config -q) || fail "docker-compose config"
    pass=$((pass + 1))
else
    echo "skipped: docker compose config (no docker compose client here)"
fi

# ---- nginx -t, both renderings ----
mkdir -p "$WORK/ngx-static/prefix/logs" "$WORK/ngx-docker/prefix/logs" "$WORK/ngx-docker/conf"
"$ROOT/deploy/nginx/render-static.sh" "$WORK/ngx-static/conf" 127.0.0.1:8080 \
    127.0.0.1:9003 127.0.0.1:9001 127.0.0.1:9002 || fail "render-static.sh"
cp "$ROOT/deploy/nginx/nginx.conf" "$ROOT"/deploy/nginx/docker/*.conf "$WORK/ngx-docker/conf/"
for v in static docker; do
    "$NGINX" -t -q -p "$WORK/ngx-$v/prefix/" -c "$WORK/ngx-$v/conf/nginx.conf" \
        2> "$WORK/nginx-t.log" || { cat "$WORK/nginx-t.log" >&2; fail "nginx -t ($v)"; }
    pass=$((pass + 1))
done

# ---- bct serve accepts the deploy files' settings ----
mkdir -p "$WORK/store"
cp "$ROOT/models/sst2-tiny.bct" "$WORK/store/"
# settings_env WHAT: NAME=VALUE lines of the BCT_* variables WHAT sets
# (compose values with ${VAR:-default} resolved to the default).
settings_env() {
    "$PY" - "$ROOT" "$1" <<'EOF'
import re, sys, yaml
root, what = sys.argv[1], sys.argv[2]
def interp(v):
    return re.sub(r"\$\{[A-Za-z_]\w*(?::?[-?]([^}]*))?\}", lambda m: m.group(1) or "", str(v))
if what.startswith("compose:"):
    env = yaml.safe_load(open(root + "/docker-compose.yml"))["services"][what[8:]].get("environment") or {}
    env = {k: interp(v) for k, v in env.items()}
else:
    dep = next(d for d in yaml.safe_load_all(open(root + "/deploy/k8s/" + what[4:]))
               if d and d.get("kind") == "Deployment")
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])
           if "value" in e}
for k, v in env.items():
    if k.startswith("BCT_"):
        print(f"{k}={v}")
EOF
}
"$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "ConfigMap": print(d["data"]["server.json"])' \
    "$ROOT/deploy/k8s/configmap.yaml" > "$WORK/server.json"

# try_settings WHAT ENV...: starts bct serve with ENV (image defaults
# first, as in the container), on loopback and the test's store; it must
# become ready.
try_settings() {
    local what=$1; shift
    local log="$WORK/try.log"
    : > "$log"
    env BCT_HOST=0.0.0.0 BCT_PORT=8080 BCT_MODEL_STORE=/var/lib/bct/models BCT_DEFAULT_MODEL=sst2-tiny "$@" \
        "$BCT" serve --host 127.0.0.1 --port 0 --port-file "$WORK/try.port" \
        --model-store "$WORK/store" --access-log off 2>> "$log" &
    local pid=$!
    SERVERS+=("$pid")
    local end=$((SECONDS + DEADLINE_S))
    until [ -s "$WORK/try.port" ] && is_ready "http://127.0.0.1:$(cat "$WORK/try.port")"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            fail "bct serve does not start with the settings of $what"
        fi
        [ $SECONDS -lt $end ] || fail "bct serve with the settings of $what: not ready in time"
        sleep 0.1
    done
    kill -TERM "$pid"
    wait "$pid" || fail "bct serve with the settings of $what: exit code $?"
    rm -f "$WORK/try.port"
    pass=$((pass + 1))
}
for s in bct bct-admin; do
    mapfile -t vars < <(settings_env "compose:$s")
    try_settings "docker-compose.yml service $s" "${vars[@]}"
done
for f in deployment.yaml admin-deployment.yaml; do
    mapfile -t vars < <(settings_env "k8s:$f" | sed "s|^BCT_CONFIG=.*|BCT_CONFIG=$WORK/server.json|")
    try_settings "deploy/k8s/$f + configmap.yaml" "${vars[@]}"
done
done_ok
