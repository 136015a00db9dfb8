#!/usr/bin/env node
// What users would run instead of bct, part 2: ONNX Runtime (onnxruntime-node,
// CPU execution provider) on the fp32 and int8 ONNX files ort_export.py writes
// from torch_bench.py's BERT, timed on the same grid as `bct bench`.
//
// Usage: node tests/bench/peers/ort_bench.js --dir DIR [--modes fp32,int8]
//          [--threads 2] [--runs 5] [--batch 1,8,32] [--seq 16,64,128]
//          [--vocab 30522] [--ort PREFIX]
//        node tests/bench/peers/ort_bench.js --dir DIR --check [--ort PREFIX]
// DIR holds fp32.onnx, int8.onnx (and check.json for --check, export.json
// for how they were made), as ort_export.py writes them.  PREFIX is the
// `npm install --prefix` directory holding node_modules/onnxruntime-node
// (default ${XDG_CACHE_HOME:-~/.cache}/bct-peers; run_peers.sh installs it).
//
// Prints one JSON object per (mode, batch, seq) on stdout, like torch_bench.py.
// Each mode runs in its own Node process (this script re-runs itself with
// --child), so peak_rss_mb (VmHWM: model load, session creation and all runs)
// is that mode's alone, as in `bct bench`.
//
// --check runs check.json's inputs through both files and prints the largest
// logit differences: fp32 ONNX against PyTorch (the export is right) and
// int8 against fp32 (the quantized graph is close).  It also saves the int8
// graph as ORT optimized it (DIR/int8.optimized.onnx) so that the fused ops
// can be listed with `ort_export.py --show-ops`.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

function parseArgs(argv) {
  const cacheHome = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const a = {
    dir: null, modes: 'fp32,int8', threads: 2, runs: 5, batch: '1,8,32', seq: '16,64,128',
    vocab: 30522, ort: path.join(cacheHome, 'bct-peers'), check: false, child: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'check') { a.check = true; continue; }
    if (key === 'help' || key === 'h') {
      // The usage is the comment block at the top of this file.
      const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(1);
      const head = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')));
      console.log(head.map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    }
    if (!(key in a) || i + 1 >= argv.length) throw new Error(`unknown option or missing value: ${argv[i]}`);
    a[key] = argv[++i];
  }
  if (!a.dir) throw new Error('--dir DIR is required');
  if (Number(a.vocab) <= 1000) throw new Error('--vocab must exceed 1000 (token ids are drawn from [1000, vocab), as in torch_bench.py)');
  for (const k of ['threads', 'runs', 'vocab']) {
    a[k] = Number(a[k]);
    if (!Number.isInteger(a[k]) || a[k] < 1) throw new Error(`--${k} must be a positive integer`);
  }
  return a;
}

const list = (s) => s.split(',').map((x) => {
  const n = Number(x);
  if (!Number.isInteger(n) || n < 1) throw new Error(`not a positive integer: ${x}`);
  return n;
});

function loadOrt(prefix) {
  const dir = path.join(prefix, 'node_modules', 'onnxruntime-node');
  if (!fs.existsSync(dir)) {
    throw new Error(`onnxruntime-node not found in ${prefix}: npm install --prefix ${prefix} --ignore-scripts onnxruntime-node`);
  }
  return require(dir);
}

// Kilobytes of a /proc/self/status field (VmHWM: peak resident set).
function statusKb(field) {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// The settings the task compares under: the same thread count as bct and
// PyTorch, no inter-op parallelism (one model, one request at a time),
// every graph optimization ORT has (this is where the int8 fusions happen).
function sessionOptions(threads, extra) {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 3, // errors only
    ...extra,
  };
}

function feeds(ort, batch, seq, idsFlat, maskFlat) {
  const shape = [batch, seq];
  return {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(idsFlat, BigInt), shape),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from(maskFlat, BigInt), shape),
  };
}

// Random token ids in [1000, vocab) like torch_bench.py (speed does not depend
// on them); a fixed-seed LCG so every run and mode sees the same tokens.
function randomIds(n, vocab, seed) {
  const ids = new Array(n);
  let r = seed >>> 0;
  for (let i = 0; i < n; i++) {
    r = (Math.imul(r, 1664525) + 1013904223) >>> 0;
    ids[i] = 1000 + (r % (vocab - 1000));
  }
  return ids;
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

// One mode, in this (child) process.
async function benchMode(a, mode) {
  const ort = loadOrt(a.ort);
  const rssBefore = statusKb('VmRSS');
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(path.join(a.dir, `${mode}.onnx`), sessionOptions(a.threads));
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const points = [];
  for (const batch of list(a.batch)) {
    for (const seq of list(a.seq)) {
      const f = feeds(ort, batch, seq, randomIds(batch * seq, a.vocab, 12345), new Array(batch * seq).fill(1));
      await session.run(f); // warm-up
      const ms = [];
      for (let r = 0; r < a.runs; r++) {
        const t = process.hrtime.bigint();
        await session.run(f);
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      const med = median(ms);
      const min = Math.min(...ms);
      points.push({
        engine: 'onnxruntime', mode, batch, seq,
        sentences_per_s: (batch * 1e3) / med, sentences_per_s_best: (batch * 1e3) / min,
        ms_per_batch: med, ms_per_batch_min: min,
      });
    }
  }
  // Peak RSS once at the end, so every line of a mode carries the same
  // figure (as bct bench does); rss_before_load_mb is Node's own share.
  const peak = statusKb('VmHWM') / 1024;
  const exported = path.join(a.dir, 'export.json');
  const meta = fs.existsSync(exported) ? JSON.parse(fs.readFileSync(exported, 'utf8')) : {};
  for (const p of points) {
    Object.assign(p, {
      opset: meta.opset, int8_weights: mode === 'int8' ? meta.int8_weights : undefined,
      peak_rss_mb: peak, rss_before_load_mb: rssBefore / 1024, load_s: loadS, threads: a.threads,
      onnxruntime: ort.env.versions.node, node: process.version,
    });
    console.log(JSON.stringify(p));
  }
  await session.release();
}

async function check(a) {
  const ort = loadOrt(a.ort);
  const cases = JSON.parse(fs.readFileSync(path.join(a.dir, 'check.json'), 'utf8'));
  const sessions = {};
  sessions.fp32 = await ort.InferenceSession.create(path.join(a.dir, 'fp32.onnx'), sessionOptions(a.threads));
  sessions.int8 = await ort.InferenceSession.create(path.join(a.dir, 'int8.onnx'),
    sessionOptions(a.threads, { optimizedModelFilePath: path.join(a.dir, 'int8.optimized.onnx') }));
  let dFp32 = 0, dInt8 = 0, maxLogit = 0, agree = 0, rows = 0;
  for (const c of cases) {
    const f = feeds(ort, c.batch, c.seq, c.input_ids, c.attention_mask);
    const fp32 = (await sessions.fp32.run(f)).logits.data;
    const int8 = (await sessions.int8.run(f)).logits.data;
    const labels = fp32.length / c.batch;
    for (let i = 0; i < fp32.length; i++) {
      dFp32 = Math.max(dFp32, Math.abs(fp32[i] - c.logits[i]));
      dInt8 = Math.max(dInt8, Math.abs(int8[i] - fp32[i]));
      maxLogit = Math.max(maxLogit, Math.abs(fp32[i]));
    }
    for (let b = 0; b < c.batch; b++, rows++) {
      const row = (x) => Array.from(x.slice(b * labels, (b + 1) * labels));
      const argmax = (r) => r.indexOf(Math.max(...r));
      agree += argmax(row(fp32)) === argmax(row(int8));
    }
  }
  const r = {
    check: cases.map((c) => `${c.batch}x${c.seq}`).join(','),
    max_abs_diff_fp32_vs_torch: dFp32, max_abs_diff_int8_vs_fp32: dInt8, max_abs_logit: maxLogit,
    argmax_agreement: `${agree}/${rows}`, onnxruntime: ort.env.versions.node,
  };
  console.log(JSON.stringify(r));
  // The fp32 file must compute what the PyTorch module computes; int8 is
  // expected to differ a little (it is reported, not judged).
  if (!(dFp32 <= 1e-3 * Math.max(1, maxLogit))) {
    console.error('ort_bench: the fp32 ONNX logits do not match PyTorch\'s');
    process.exit(1);
  }
  if (!Number.isFinite(dInt8)) {
    console.error('ort_bench: the int8 ONNX logits are not finite');
    process.exit(1);
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (a.check) return check(a);
  if (a.child) return benchMode(a, a.child);
  const modes = a.modes.split(',');
  for (const mode of modes) {
    if (!['fp32', 'int8'].includes(mode)) throw new Error(`--modes: fp32 and/or int8, not ${mode}`);
  }
  for (const mode of modes) {
    // A fresh process per mode: its peak RSS is its own, and one mode's
    // arena or page cache state cannot help the other.
    const args = [__filename, ...process.argv.slice(2).filter((x, i, all) => x !== '--modes' && all[i - 1] !== '--modes'),
      '--child', mode];
    const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`the ${mode} run failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`);
  }
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
