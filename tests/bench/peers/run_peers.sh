#!/usr/bin/env bash
# bct against what users would run instead, on one machine in one go: the
# same BERT shape, grid and thread count through
#   bct bench (fp32 OpenBLAS, int8, int4),
#   torch_bench.py (PyTorch fp32 and PyTorch dynamic int8),
#   ort_export.py + ort_bench.js (ONNX Runtime fp32 and quantize_dynamic-style int8),
# then one markdown table of sentences/s (medians).  Not part of CI: it needs
# Debian's python3-torch and python3-onnx, Node.js and onnxruntime-node,
# which is installed from npm into ${XDG_CACHE_HOME:-~/.cache}/bct-peers on
# first use (never into the repository).
#
# Usage: tests/bench/peers/run_peers.sh [--threads 2] [--runs 5] [--batch 1,8,32]
#          [--seq 16,64,128] [--layers 12 --hidden 768 --heads 12 --intermediate 3072
#          --vocab 30522] [--per-channel] [--opset 17] [--bct build/bct]
#          [--ort-version 1.30.0] [--keep DIR]
#   --per-channel   ORT int8 weights with per-column scales (quantize_dynamic's
#                   per_channel=True) instead of its per-tensor default
#   --keep DIR      also copy the raw JSON results into DIR
# Exit status: 0 done, 1 a benchmark failed, 2 a tool is missing or bad usage.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
py=/usr/bin/python3 # Debian's: the pyenv python3 on PATH has no torch
cache=${XDG_CACHE_HOME:-$HOME/.cache}/bct-peers
# Pinned so that reruns time the same ORT; 1.30.0 is the version checked with Node 20.
ort_version=1.30.0
threads=2 runs=5 batch=1,8,32 seq=16,64,128 opset=17 bct=$root/build/bct keep=
shape=() per_channel=()

usage() {
    sed -n '/^# Usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --threads | --runs | --batch | --seq | --opset | --bct | --ort-version | --keep)
        [ $# -ge 2 ] || usage
        v=$2
        case $1 in
        --threads) threads=$v ;; --runs) runs=$v ;; --batch) batch=$v ;; --seq) seq=$v ;;
        --opset) opset=$v ;; --bct) bct=$v ;; --ort-version) ort_version=$v ;; --keep) keep=$v ;;
        esac
        shift 2 ;;
    --layers | --hidden | --heads | --intermediate | --vocab)
        [ $# -ge 2 ] || usage
        shape+=("$1" "$2")
        shift 2 ;;
    --per-channel) per_channel=(--per-channel); shift ;;
    -h | --help) usage ;;
    *) echo "run_peers.sh: unknown option $1" >&2; usage ;;
    esac
done
vocab=30522
for ((i = 0; i < ${#shape[@]}; i += 2)); do
    [ "${shape[i]}" = --vocab ] && vocab=${shape[i + 1]}
done

# --- tools: say everything that is missing at once, then stop ---------------
missing=()
[ -x "$bct" ] || missing+=("bct: no executable $bct (build it: deploy/build.sh)")
if [ -x "$py" ]; then
    "$py" -c 'import torch' 2> /dev/null || missing+=("PyTorch for $py: apt-get install python3-torch")
    "$py" -c 'import onnx' 2> /dev/null || missing+=("ONNX for $py: apt-get install python3-onnx")
else
    missing+=("$py: apt-get install python3 python3-torch python3-onnx")
fi
command -v node > /dev/null || missing+=("Node.js: apt-get install nodejs (20 tested)")
ort_installed() {
    [ "$(node -p "require('$cache/node_modules/onnxruntime-node/package.json').version" 2> /dev/null)" = "$ort_version" ]
}
if command -v node > /dev/null && ! ort_installed && ! command -v npm > /dev/null; then
    missing+=("npm, to install onnxruntime-node $ort_version into $cache: apt-get install npm")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "run_peers.sh: cannot run, missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi
if ! ort_installed; then
    echo "run_peers.sh: installing onnxruntime-node@$ort_version into $cache" >&2
    mkdir -p "$cache"
    # --ignore-scripts: its postinstall only fetches the CUDA provider from
    # nuget.org; the CPU library is in the npm package itself.
    if ! npm install --prefix "$cache" --ignore-scripts --no-audit --no-fund --loglevel=error \
        "onnxruntime-node@$ort_version" >&2 || ! ort_installed; then
        echo "run_peers.sh: cannot install onnxruntime-node@$ort_version from npm" >&2
        exit 2
    fi
fi
if ! node -e "require('$cache/node_modules/onnxruntime-node')" 2> /dev/null; then
    echo "run_peers.sh: onnxruntime-node in $cache does not load with Node $(node --version)" >&2
    exit 2
fi

fail() {
    echo "run_peers.sh: $1 failed" >&2
    exit 1
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bct-peers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the runs: one after the other, never two at once -----------------------
echo "run_peers.sh: bct bench ..." >&2
"$bct" bench --json --no-gemm --threads "$threads" --runs "$runs" --batch "$batch" --seq "$seq" \
    "${shape[@]}" > "$tmp/bct.json" || fail "bct bench"

echo "run_peers.sh: PyTorch ..." >&2
"$py" "$here/torch_bench.py" --threads "$threads" --runs "$runs" --batches "$batch" --seqs "$seq" \
    "${shape[@]}" > "$tmp/torch.jsonl" || fail "torch_bench.py"

echo "run_peers.sh: ONNX Runtime: export ..." >&2
"$py" "$here/ort_export.py" --out "$tmp/onnx" --opset "$opset" "${per_channel[@]}" "${shape[@]}" ||
    fail "ort_export.py"
# The export must match PyTorch and int8 must stay close to fp32 before anything is timed.
node "$here/ort_bench.js" --dir "$tmp/onnx" --check --threads "$threads" --ort "$cache" > "$tmp/check.json" ||
    fail "ort_bench.js --check: $(cat "$tmp/check.json")"
echo "run_peers.sh: ONNX Runtime check: $(cat "$tmp/check.json")" >&2
echo "run_peers.sh: ONNX Runtime int8 graph as optimized:" \
    "$("$py" "$here/ort_export.py" --show-ops "$tmp/onnx/int8.optimized.onnx" |
        awk '/Quant|MatMul/ {printf "%s%s %s", sep, $1, $2; sep=", "}')" >&2
rm -f "$tmp/onnx/"*.optimized.onnx
echo "run_peers.sh: ONNX Runtime ..." >&2
node "$here/ort_bench.js" --dir "$tmp/onnx" --threads "$threads" --runs "$runs" --batch "$batch" \
    --seq "$seq" --vocab "$vocab" --ort "$cache" > "$tmp/ort.jsonl" || fail "ort_bench.js"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    cp "$tmp/bct.json" "$tmp/torch.jsonl" "$tmp/ort.jsonl" "$tmp/check.json" "$keep/"
fi

# --- the table -----------------------------------------------------------------
"$py" - "$tmp" "$batch" "$seq" "$threads" "$runs" "$load_before" "$load_after" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" <<'EOF'
import json, sys

tmp, batches, seqs, threads, runs, load_before, load_after, cpu = sys.argv[1:]
speed, rss, info, kernels, model = {}, {}, {}, {}, ""
bct = json.load(open(f"{tmp}/bct.json"))
for o in bct:
    if o.get("kind") == "forward":
        speed[("bct " + o["mode"], o["batch"], o["seq"])] = o["sentences_per_s"]
        rss["bct " + o["mode"]] = o["peak_rss_mb"]
        kernels["bct " + o["mode"]] = o.get("engine", "?")  # what the mode's own process ran
    elif o.get("kind") == "machine":
        model = o["model"]
info["bct"] = ", ".join(f"{k} kernel {v}" for k, v in kernels.items()) + f"; {model}"
names = {"torch-fp32": "PyTorch fp32", "torch-int8-dynamic": "PyTorch int8"}
for line in open(f"{tmp}/torch.jsonl"):
    o = json.loads(line)
    speed[(names[o["mode"]], o["batch"], o["seq"])] = o["sentences_per_s"]
    info["torch"] = f"PyTorch {o['torch']}" + (f" ({o['quantized_engine']})" if o.get("quantized_engine") else "")
for line in open(f"{tmp}/ort.jsonl"):
    o = json.loads(line)
    speed[("ORT " + o["mode"], o["batch"], o["seq"])] = o["sentences_per_s"]
    rss["ORT " + o["mode"]] = o["peak_rss_mb"]
    info["ort"] = f"onnxruntime-node {o['onnxruntime']} on Node {o['node']} (Node alone: {o['rss_before_load_mb']:.0f} MB RSS), opset {o.get('opset')}"
    if o.get("int8_weights"):
        info["ort"] += f", int8 as quantize_dynamic ({o['int8_weights']} weights)"

cols = ["bct fp32", "bct int8", "bct int4", "PyTorch fp32", "PyTorch int8", "ORT fp32", "ORT int8"]
fmt = lambda v: "–" if v is None else f"{v:.1f}"
ratio = lambda a, b: "–" if a is None or not b else f"{a / b:.2f}x"
print(f"{cpu}; {threads} threads; median of {runs} runs after a warm-up; sentences/s")
print(f"{info.get('bct', '')}; {info.get('torch', '')}; {info.get('ort', '')}")
print(f"load average before {load_before}, after {load_after}")
print()
print("| batch | seq | " + " | ".join(cols) + " | bct int8 / ORT int8 | bct int8 / PyTorch int8 |")
print("| ---: | ---: |" + " ---: |" * (len(cols) + 2))
for b in map(int, batches.split(",")):
    for s in map(int, seqs.split(",")):
        v = {c: speed.get((c, b, s)) for c in cols}
        print(f"| {b} | {s} | " + " | ".join(fmt(v[c]) for c in cols) +
              f" | {ratio(v['bct int8'], v['ORT int8'])} | {ratio(v['bct int8'], v['PyTorch int8'])} |")
print()
print("peak RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()) + " (PyTorch: not measured)")
EOF
