#!/usr/bin/env python3
"""Static checks of the deployment files (PyYAML, no cluster, no Docker).

usage: check_manifests.py ROOT KNOWN_ENV [RUNTIME_PACKAGES]

ROOT is the repository; KNOWN_ENV a file of the BCT_* variables that
`bct serve --help` documents, one per line; RUNTIME_PACKAGES (optional) a
file of the Debian packages that own the shared libraries the bct binary
links against.  Prints every failed check, then "N checks passed"; exits 1
if any failed.
"""
import glob
import json
import os
import re
import sys

import yaml

ROOT = sys.argv[1]
KNOWN_ENV = set(open(sys.argv[2]).read().split()) | {"BCT_CONFIG"}
# Variables the deploy files already pass but the server does not read yet
# (printed as a note, not a failure).  None now: BCT_ADMIN_TOKEN is read
# since the admin API landed (issue 7).
PENDING_ENV = set()
RUNTIME_PKGS = open(sys.argv[3]).read().split() if len(sys.argv) > 3 else None

passed = 0
failures = []
notes = []


def check(what, ok):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
    return ok


def rel(path):
    return os.path.relpath(path, ROOT)


def load_all(path):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        check(f"{rel(path)} parses", True)
        return docs
    except yaml.YAMLError as e:
        check(f"{rel(path)} parses: {e}", False)
        return []


def dig(obj, *keys, default=None):
    for k in keys:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


def check_env_names(where, names):
    for n in names:
        if n in KNOWN_ENV:
            check(f"{where}: {n} is a bct serve variable", True)
        elif n in PENDING_ENV:
            notes.append(f"{where}: {n} is not read by `bct serve` yet (pending, issue 8)")
        elif n.startswith("BCT_"):
            check(f"{where}: {n} is not a variable `bct serve --help` knows (typo?)", False)


def seconds(value):
    """'45s', '1m30s', 45 -> seconds."""
    if isinstance(value, (int, float)):
        return value
    total, ok = 0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms|us)", str(value)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
        ok = True
    return total if ok else None


def interpolate(value):
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR} with VAR unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?]([^}]*))?\}",
                  lambda m: m.group(1) or "", str(value))


defaults = json.load(open(os.path.join(ROOT, "config/default.json")))

# ---------------------------------------------------------------- Kubernetes
K8S = os.path.join(ROOT, "deploy/k8s")
objects = {}  # (kind, name) -> object
files = sorted(glob.glob(os.path.join(K8S, "*.yaml")) + glob.glob(os.path.join(K8S, "*.yml")))
check("deploy/k8s has manifests", len(files) > 0)
kustomization = None
for path in files:
    for doc in load_all(path):
        kind = doc.get("kind")
        if kind == "Kustomization":
            kustomization = (path, doc)
            continue
        name = dig(doc, "metadata", "name")
        where = f"{rel(path)}: {kind}/{name}"
        check(f"{where}: has apiVersion, kind and metadata.name",
              bool(doc.get("apiVersion")) and bool(kind) and bool(name))
        check(f"{where}: unique", (kind, name) not in objects)
        objects[(kind, name)] = doc

check("deploy/k8s/kustomization.yaml exists", kustomization is not None)
if kustomization:
    path, k = kustomization
    res = k.get("resources") or []
    for r in res:
        check(f"kustomization: resource {r} exists", os.path.exists(os.path.join(K8S, r)))
    listed = {os.path.normpath(os.path.join(K8S, r)) for r in res}
    for f in files:
        if f != path and os.path.basename(f) != "ingress.yaml":
            check(f"kustomization lists {rel(f)}", os.path.normpath(f) in listed)
    check("kustomization: sets the image bct",
          any(i.get("name") == "bct" for i in k.get("images") or []))


def obj(kind, name):
    o = objects.get((kind, name))
    check(f"k8s: {kind} {name} exists", o is not None)
    return o or {}


cm = obj("ConfigMap", "bct-config")
server_json = {}
try:
    server_json = json.loads(dig(cm, "data", "server.json", default="{}"))
    check("ConfigMap bct-config: server.json is JSON", True)
except ValueError as e:
    check(f"ConfigMap bct-config: server.json is JSON: {e}", False)
for key in server_json:
    check(f"ConfigMap server.json: key {key} is a config/default.json key", key in defaults)
drain_s = server_json.get("drain_timeout_s", defaults["drain_timeout_s"])

secret = obj("Secret", "bct-admin-token")
check("Secret bct-admin-token has a token key",
      "token" in (secret.get("stringData") or {}) or "token" in (secret.get("data") or {}))

pvc = obj("PersistentVolumeClaim", "bct-models")
check("PVC bct-models is ReadWriteMany (every replica and the admin share it)",
      dig(pvc, "spec", "accessModes") == ["ReadWriteMany"])
check("PVC bct-models requests storage", bool(dig(pvc, "spec", "resources", "requests", "storage")))


def pod_labels(dep):
    return dig(dep, "spec", "template", "metadata", "labels", default={})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_deployment(name, admin):
    dep = obj("Deployment", name)
    spec = dig(dep, "spec", default={})
    pod = dig(spec, "template", "spec", default={})
    where = f"Deployment {name}"
    check(f"{where}: selector matches its pod labels",
          selects(dig(spec, "selector", "matchLabels"), pod_labels(dep)))
    if admin:
        check(f"{where}: exactly one replica", spec.get("replicas") == 1)
        check(f"{where}: Recreate (never two admins at once)",
              dig(spec, "strategy", "type") == "Recreate")
    else:
        check(f"{where}: at least 2 replicas", (spec.get("replicas") or 0) >= 2)
    sc = pod.get("securityContext") or {}
    check(f"{where}: runs as non-root", sc.get("runAsNonRoot") is True and (sc.get("runAsUser") or 0) != 0)
    containers = pod.get("containers") or []
    check(f"{where}: one container", len(containers) == 1)
    c = containers[0] if containers else {}
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    check(f"{where}: port http = 8080 (BCT_PORT of the image)", ports.get("http") == 8080)
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = dig(c, probe, "httpGet", default={})
        check(f"{where}: {probe} on {path}", get.get("path") == path)
        check(f"{where}: {probe} on the http port", get.get("port") in ("http", 8080))
    for kind in ("requests", "limits"):
        r = dig(c, "resources", kind, default={})
        check(f"{where}: resources.{kind} has cpu and memory", "cpu" in r and "memory" in r)
    csc = c.get("securityContext") or {}
    check(f"{where}: no privilege escalation", csc.get("allowPrivilegeEscalation") is False)
    check(f"{where}: read-only root filesystem", csc.get("readOnlyRootFilesystem") is True)
    pre = dig(c, "lifecycle", "preStop", "exec", "command", default=[])
    sleep_s = 0
    if len(pre) == 2 and pre[0].endswith("sleep"):
        sleep_s = float(pre[1])
    check(f"{where}: preStop sleeps so endpoints drain before SIGTERM", sleep_s > 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(f"{where}: terminationGracePeriodSeconds ({grace}) > preStop ({sleep_s:g}) + "
          f"drain_timeout_s ({drain_s})", grace > sleep_s + drain_s)
    env = {e.get("name"): e for e in c.get("env") or []}
    check_env_names(where, env)
    check(f"{where}: BCT_CONFIG names the ConfigMap's file",
          dig(env, "BCT_CONFIG", "value") == "/etc/bct/server.json")
    token_ref = dig(env, "BCT_ADMIN_TOKEN", "valueFrom", "secretKeyRef", default={})
    if admin:
        check(f"{where}: BCT_ADMIN_TOKEN from Secret bct-admin-token/token",
              token_ref.get("name") == "bct-admin-token" and token_ref.get("key") == "token")
    else:
        check(f"{where}: no admin token on inference replicas", "BCT_ADMIN_TOKEN" not in env)
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
    store = mounts.get("/var/lib/bct/models") or {}
    check(f"{where}: model store mounted at /var/lib/bct/models (BCT_MODEL_STORE of the image)",
          bool(store))
    check(f"{where}: model store is the PVC bct-models",
          dig(volumes, store.get("name"), "persistentVolumeClaim", "claimName") == "bct-models")
    check(f"{where}: model store {'writable' if admin else 'read-only'}",
          bool(store.get("readOnly")) == (not admin))
    cfg = mounts.get("/etc/bct") or {}
    check(f"{where}: ConfigMap bct-config mounted at /etc/bct",
          dig(volumes, cfg.get("name"), "configMap", "name") == "bct-config")
    inits = pod.get("initContainers") or []
    check(f"{where}: an init container seeds the model store from the image",
          any(any(dig(volumes, m.get("name"), "persistentVolumeClaim", "claimName") == "bct-models"
                  for m in i.get("volumeMounts") or []) for i in inits))
    return dep


dep = check_deployment("bct", admin=False)
admin = check_deployment("bct-admin", admin=True)
check("the admin pods and the inference pods have different labels",
      not selects(dig(dep, "spec", "selector", "matchLabels"), pod_labels(admin)))

for svc_name, dep_obj in (("bct", dep), ("bct-admin", admin)):
    svc = obj("Service", svc_name)
    sel = dig(svc, "spec", "selector")
    check(f"Service {svc_name} selects Deployment {dig(dep_obj, 'metadata', 'name')}'s pods",
          selects(sel, pod_labels(dep_obj)))
    other = admin if dep_obj is dep else dep
    check(f"Service {svc_name} does not select the other Deployment's pods",
          not selects(sel, pod_labels(other)))
    check(f"Service {svc_name} targets the http port",
          all(p.get("targetPort") in ("http", 8080) for p in dig(svc, "spec", "ports", default=[{}])))

hpa = obj("HorizontalPodAutoscaler", "bct")
check("HPA is autoscaling/v2", hpa.get("apiVersion") == "autoscaling/v2")
target = dig(hpa, "spec", "scaleTargetRef", default={})
check("HPA targets Deployment bct", target.get("kind") == "Deployment" and target.get("name") == "bct")
spec = hpa.get("spec") or {}
check("HPA: 2 <= minReplicas <= maxReplicas",
      2 <= (spec.get("minReplicas") or 0) <= (spec.get("maxReplicas") or 0))
check("HPA scales on CPU utilisation",
      any(dig(m, "resource", "name") == "cpu" and dig(m, "resource", "target", "type") == "Utilization"
          for m in spec.get("metrics") or []))

pdb = objects.get(("PodDisruptionBudget", "bct"))
if pdb:
    check("PDB selects the inference pods", selects(dig(pdb, "spec", "selector", "matchLabels"),
                                                    pod_labels(dep)))

for (kind, name), o in objects.items():
    if kind == "Ingress":
        for rule in dig(o, "spec", "rules", default=[]):
            for p in dig(rule, "http", "paths", default=[]):
                svc = dig(p, "backend", "service", "name")
                check(f"Ingress {name}: backend {svc} is a Service", ("Service", svc) in objects)

# ---------------------------------------------------------- docker-compose.yml
compose_docs = load_all(os.path.join(ROOT, "docker-compose.yml"))
compose = compose_docs[0] if compose_docs else {}
services = compose.get("services") or {}
for name in ("bct", "bct-admin", "nginx"):
    check(f"compose: service {name}", name in services)
for name, s in services.items():
    check(f"compose {name}: has a healthcheck", bool(dig(s, "healthcheck", "test")))
    check(f"compose {name}: has a restart policy",
          s.get("restart") in ("always", "unless-stopped", "on-failure")
          or bool(dig(s, "deploy", "restart_policy")))
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    check_env_names(f"compose {name}", env)
bct, bct_admin, nginx = (services.get(n) or {} for n in ("bct", "bct-admin", "nginx"))
check("compose bct: replicated (deploy.replicas >= 2)", (dig(bct, "deploy", "replicas") or 0) >= 2)
check("compose bct-admin: exactly one replica", dig(bct_admin, "deploy", "replicas") == 1)
check("compose: bct and bct-admin run the same image", bct.get("image") == bct_admin.get("image"))
check("compose: the image is built from deploy/Dockerfile",
      dig(bct, "build", "dockerfile") == "deploy/Dockerfile")
for name, s in (("bct", bct), ("bct-admin", bct_admin)):
    vols = s.get("volumes") or []
    check(f"compose {name}: named volume `models` at /var/lib/bct/models",
          any(str(v).startswith("models:/var/lib/bct/models") for v in vols))
    grace = seconds(s.get("stop_grace_period", "10s"))
    env = s.get("environment") or {}
    drain = float(interpolate(env.get("BCT_DRAIN_TIMEOUT_S", defaults["drain_timeout_s"])))
    check(f"compose {name}: stop_grace_period ({grace:g} s) > drain timeout ({drain:g} s)",
          grace is not None and grace > drain)
    check(f"compose {name}: healthcheck on /ready", "/ready" in (dig(s, "healthcheck", "test") or []))
check("compose: only bct-admin gets the admin token",
      "BCT_ADMIN_TOKEN" in (bct_admin.get("environment") or {})
      and "BCT_ADMIN_TOKEN" not in (bct.get("environment") or {}))
check("compose: the volume models is declared", "models" in (compose.get("volumes") or {}))
check("compose: nginx is the only service publishing a port",
      bool(nginx.get("ports")) and not bct.get("ports") and not bct_admin.get("ports"))
check("compose nginx: waits for healthy replicas",
      dig(nginx, "depends_on", "bct", "condition") == "service_healthy")
check("compose nginx: built from deploy/nginx/Dockerfile",
      dig(nginx, "build", "dockerfile") == "deploy/nginx/Dockerfile")

# ------------------------------------------------------------------ Dockerfiles
dockerfile = open(os.path.join(ROOT, "deploy/Dockerfile")).read()
# Join continuation lines; drop comments.
lines = [l for l in re.sub(r"\\\n", " ", dockerfile).splitlines()
         if l.strip() and not l.lstrip().startswith("#")]
froms = [l.split()[1:] for l in lines if l.upper().startswith("FROM ")]
check("Dockerfile: build stage on debian:bookworm", bool(froms) and froms[0][0] == "debian:bookworm")
check("Dockerfile: runtime stage on debian:bookworm-slim",
      len(froms) >= 2 and froms[-1][0] == "debian:bookworm-slim")
runs = " ".join(l for l in lines if l.upper().startswith("RUN "))
check("Dockerfile: builds with CI's scripts (install-deps.sh, then build.sh)",
      "deploy/install-deps.sh" in runs and "deploy/build.sh" in runs
      and runs.index("deploy/install-deps.sh") < runs.index("deploy/build.sh"))
final = lines[max(i for i, l in enumerate(lines) if l.upper().startswith("FROM ")):]


def instr(name):
    return [l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "" for l in final
            if l.split()[0].upper() == name]


users = instr("USER")
check("Dockerfile: runtime runs as a non-root user",
      bool(users) and users[-1].split(":")[0] not in ("root", "0"))
check("Dockerfile: HEALTHCHECK on /ready", any("/ready" in h for h in instr("HEALTHCHECK")))
check("Dockerfile: EXPOSE 8080", any("8080" in e.split() for e in instr("EXPOSE")))
check("Dockerfile: STOPSIGNAL SIGTERM", instr("STOPSIGNAL") == ["SIGTERM"])
envs = " ".join(instr("ENV"))
image_env = dict(re.findall(r"(\w+)=(\S+)", envs))
check_env_names("Dockerfile", image_env)
check("Dockerfile: binds 0.0.0.0", image_env.get("BCT_HOST") == "0.0.0.0")
check("Dockerfile: BCT_PORT is the exposed 8080", image_env.get("BCT_PORT") == "8080")
store = image_env.get("BCT_MODEL_STORE", "")
check("Dockerfile: model store on a VOLUME", any(store in v for v in instr("VOLUME")) and bool(store))
check("Dockerfile: the bundled model is copied into the model store",
      any("models/sst2-tiny.bct" in c and store in c for c in instr("COPY")))
check("Dockerfile: default model is the bundled one", image_env.get("BCT_DEFAULT_MODEL") == "sst2-tiny")
apt = " ".join(r for r in instr("RUN") if "apt-get install" in r)
installed = set(re.findall(r"\b(lib[\w.+-]+|zlib1g)\b", apt))
if RUNTIME_PKGS is not None:
    for pkg in RUNTIME_PKGS:
        check(f"Dockerfile: runtime stage installs {pkg} (bct links against it)", pkg in installed)
for path in re.findall(r"COPY\s+(?:--\S+\s+)*(\S+)\s", "\n".join(l + "\n" for l in final)):
    if not path.startswith("/"):
        check(f"Dockerfile: COPY source {path} exists", os.path.exists(os.path.join(ROOT, path)))

ndf = open(os.path.join(ROOT, "deploy/nginx/Dockerfile")).read()
check("nginx Dockerfile: Debian's nginx", "debian:bookworm" in ndf and "install" in ndf and " nginx" in ndf)
check("nginx Dockerfile: unprivileged", re.search(r"^USER\s+(?!root\b|0\b)\S+", ndf, re.M) is not None)
for src in re.findall(r"^COPY\s+(.+)\s+\S+$", ndf, re.M):
    for p in src.split():
        check(f"nginx Dockerfile: COPY source {p} exists", os.path.exists(os.path.join(ROOT, p)))

ignore = open(os.path.join(ROOT, ".dockerignore")).read().split()
check(".dockerignore: leaves out .git and build directories",
      ".git" in ignore and any(i.startswith("build") for i in ignore))

for n in notes:
    print("note:", n)
for f in failures:
    print("FAIL:", f)
print(f"deployment files: {passed} checks passed" + (f", {len(failures)} failed" if failures else ""))
sys.exit(1 if failures else 0)
