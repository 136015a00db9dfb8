#!/usr/bin/python3
"""The ONNX models ort_bench.js times: torch_bench.py's Bert (same module,
random weights; speed does not depend on their values) exported with
torch.onnx.export, and its int8 version as ONNX Runtime users get it from
onnxruntime.quantization.quantize_dynamic.

quantize_dynamic is a Python package that cannot be installed here (no
PyPI), so this script writes the graph it would write, with Debian's
python3-onnx.  Its defaults (weight_type QInt8, per_channel False,
reduce_range False, MatMulConstBOnly True, op types of its IntegerOps
registry) give, and this script emits:

  * every MatMul whose B is a constant 2-D float initializer (all the
    Q/K/V/O and FFN projections; not Q.K^T nor P.V, whose B is computed):
        x -> DynamicQuantizeLinear -> (x_q uint8, x_scale, x_zp)
        MatMulInteger(x_q, W_q, x_zp, W_zp) -> Cast(float) -> Mul(., Mul(x_scale, W_scale)) -> (MatMul's output)
    W_q int8 symmetric (scale = max|W| / 127, zero point 0), per tensor by
    default, per output column with --per-channel (quantize_dynamic's
    per_channel=True).  One DynamicQuantizeLinear per activation tensor,
    shared by the MatMuls that read it (Q, K and V read the same x), as the
    quantizer does.  The bias Add that follows stays a float Add.
  * every Gather from a float initializer (word, position and token-type
    embeddings): the table as uint8, asymmetric, per tensor (the quantizer
    treats it as an activation), Gather -> DequantizeLinear.
  * Gemm (the pooler and classifier, which torch exports as Gemm because their
    input is 2-D) is not in that registry and stays fp32, as for users.

We emit this standard-op form, not the com.microsoft DynamicQuantizeMatMul
op, because it is what the quantizer writes to the file: the fused kernels
come from ONNX Runtime's own graph optimizer when the session is created
(DynamicQuantizeMatMulFusion, level "extended", included in "all"): a
DynamicQuantizeLinear read by one MatMulInteger becomes DynamicQuantizeMatMul,
a shared one feeds MatMulIntegerToFloat, and a following bias Add with a
constant 1-D B is folded in.  ort_bench.js creates its sessions with
graphOptimizationLevel "all", so the kernels timed are the ones ORT users
run; `--show-ops` on the model ORT saves (ort_bench.js --check) shows them.
With onnxruntime-node 1.30.0 on the bert-base shape every projection is
fused: 36 DynamicQuantizeMatMul (attention output, FFN in and out) and 36
MatMulIntegerToFloat (Q, K, V: one shared DynamicQuantizeLinear per layer),
each with its bias; both run MLAS's u8 x s8 integer GEMM, which picks its
kernel by cpuid (this machine has AVX-512 VNNI).

Linear weights are drawn from N(0, 0.02) rather than nn.Linear's uniform
default (see normal_weights); values do not change the speed, but uniform
ones made some per-tensor scales bitwise equal, which defeats that fusion.

Usage: /usr/bin/python3 tests/bench/peers/ort_export.py --out DIR [--opset 17]
       [--per-channel] [--layers 12 --hidden 768 --heads 12 --intermediate 3072 --vocab 30522]
  writes DIR/fp32.onnx, DIR/int8.onnx, DIR/check.json (a few random inputs
  with the PyTorch logits, for ort_bench.js --check to compare against) and
  DIR/export.json (opset, int8 weight scales, versions, shape).
       /usr/bin/python3 tests/bench/peers/ort_export.py --show-ops MODEL.onnx
  prints how many nodes of each op type MODEL has.
Needs Debian's python3-torch and python3-onnx.
"""
import argparse, collections, json, os, sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

# The model code lives in torch_bench.py, next to this file: one definition for both peers.
# No __pycache__ for it in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import Bert, add_shape_args  # noqa: E402


def normal_weights(model):
    """Linear weights ~ N(0, 0.02) (Hugging Face BERT's initialisation) instead of
    nn.Linear's uniform default.  Not for speed itself: with uniform weights
    max|W| is nearly the bound 1/sqrt(fan_in), so the per-tensor scales of
    same-shaped weights are often bitwise equal; ONNX Runtime then shares those
    constants, merges the scale Mul nodes, and no longer fuses the MatMuls that
    read them (an artifact trained weights never show)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.02)


def export_fp32(model, path, opset, vocab):
    # Any example shape: batch and sequence are dynamic axes in the file.
    ids = torch.randint(1000, vocab, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    torch.onnx.export(model, (ids, mask), path, opset_version=opset, do_constant_folding=True,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                    "attention_mask": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch"}})


def float_initializer(inits, name, ndim=None):
    t = inits.get(name)
    if t is None or t.data_type != TensorProto.FLOAT:
        return None
    if ndim is not None and len(t.dims) != ndim:
        return None
    return numpy_helper.to_array(t)


def quantize_weight_int8(w, per_channel):
    """Symmetric int8: q = round(w / s) in [-127, 127], zero point 0; s per tensor or per column of W [K, N]."""
    amax = np.abs(w).max(axis=0) if per_channel else np.abs(w).max()
    scale = np.maximum(amax, 1e-12).astype(np.float32) / 127.0
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    zp = np.zeros(scale.shape, np.int8)
    return q, scale.astype(np.float32), zp


def quantize_table_uint8(w):
    """Asymmetric uint8 over a range that includes 0 (how the quantizer treats an activation)."""
    rmin, rmax = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    scale = np.float32((rmax - rmin) / 255.0 if rmax > rmin else 1.0)
    zp = np.uint8(np.clip(np.round(-rmin / scale), 0, 255))
    q = np.clip(np.round(w / scale) + zp, 0, 255).astype(np.uint8)
    return q, scale, zp


def quantize_dynamic_like_ort(model, per_channel):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    new_inits, nodes = [], []
    dql = {}  # activation name -> (quantized, scale, zero point): one DynamicQuantizeLinear per tensor
    counts = collections.Counter()

    def add_init(arr, name):
        new_inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    for node in g.node:
        w = float_initializer(inits, node.input[1], 2) if node.op_type == "MatMul" else None
        if w is not None:
            x, wname, out = node.input[0], node.input[1], node.output[0]
            if x not in dql:
                dql[x] = (x + "_quantized", x + "_scale", x + "_zero_point")
                nodes.append(helper.make_node("DynamicQuantizeLinear", [x], list(dql[x]), x + "_QuantizeLinear"))
            xq, xs, xz = dql[x]
            q, s, z = quantize_weight_int8(w, per_channel)
            wq, ws, wz = add_init(q, wname + "_quantized"), add_init(s, wname + "_scale"), add_init(z, wname + "_zero_point")
            nodes += [
                helper.make_node("MatMulInteger", [xq, wq, xz, wz], [out + "_int32"], node.name + "_quant"),
                helper.make_node("Cast", [out + "_int32"], [out + "_float"], node.name + "_cast", to=TensorProto.FLOAT),
                helper.make_node("Mul", [xs, ws], [out + "_scales"], node.name + "_scales_mul"),
                helper.make_node("Mul", [out + "_float", out + "_scales"], [out], node.name + "_output_scale_mul"),
            ]
            counts["MatMul"] += 1
            continue
        table = float_initializer(inits, node.input[0]) if node.op_type == "Gather" else None
        if table is not None:
            q, s, z = quantize_table_uint8(table)
            name, out = node.input[0], node.output[0]
            tq, ts, tz = add_init(q, name + "_quantized"), add_init(s, name + "_scale"), add_init(z, name + "_zero_point")
            gathered = helper.make_node("Gather", [tq, node.input[1]], [out + "_quantized"], node.name + "_quant")
            gathered.attribute.extend(node.attribute)  # axis
            nodes += [gathered, helper.make_node("DequantizeLinear", [out + "_quantized", ts, tz], [out],
                                                 node.name + "_dequantize")]
            counts["Gather"] += 1
            continue
        nodes.append(node)

    # Replace the graph's nodes and drop the float initializers nothing reads any more.
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return counts


def write_check_inputs(model, path, vocab):
    """A few random inputs, one with padding, and PyTorch's logits for them."""
    cases = []
    for batch, seq, pad in ((1, 16, 0), (3, 24, 5), (2, 64, 0)):
        ids = torch.randint(1000, vocab, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        if pad:
            mask[-1, seq - pad:] = 0
        with torch.inference_mode():
            logits = model(ids, mask)
        cases.append({"batch": batch, "seq": seq, "input_ids": ids.flatten().tolist(),
                      "attention_mask": mask.flatten().tolist(), "logits": logits.flatten().tolist()})
    with open(path, "w") as f:
        json.dump(cases, f)


def show_ops(path):
    m = onnx.load(path, load_external_data=False)
    ops = collections.Counter((n.domain or "ai.onnx") + "." + n.op_type for n in m.graph.node)
    for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{n:5d}  {op}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="directory for fp32.onnx, int8.onnx, check.json")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (17: the newest Debian's torch 1.13 exports)")
    ap.add_argument("--per-channel", action="store_true", help="int8 weight scales per output column")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show-ops", metavar="MODEL", help="only print the op types of MODEL")
    add_shape_args(ap)
    a = ap.parse_args()
    if a.show_ops:
        return show_ops(a.show_ops)
    if not a.out:
        ap.error("--out DIR is required")
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    model = Bert(a).eval()
    normal_weights(model)

    fp32 = os.path.join(a.out, "fp32.onnx")
    export_fp32(model, fp32, a.opset, a.vocab)
    m = onnx.load(fp32)
    counts = quantize_dynamic_like_ort(m, a.per_channel)
    onnx.checker.check_model(m)
    int8 = os.path.join(a.out, "int8.onnx")
    onnx.save(m, int8)
    write_check_inputs(model, os.path.join(a.out, "check.json"), a.vocab)
    # How the files were made, for ort_bench.js to put into its results.
    with open(os.path.join(a.out, "export.json"), "w") as f:
        json.dump({"opset": a.opset, "int8_weights": "per-channel" if a.per_channel else "per-tensor",
                   "torch": torch.__version__, "onnx": onnx.__version__,
                   "shape": {k: getattr(a, k) for k in ("layers", "hidden", "heads", "intermediate", "vocab")}}, f)
    mb = lambda p: os.path.getsize(p) / 2**20
    print(f"ort_export: opset {a.opset}, torch {torch.__version__}, onnx {onnx.__version__}: "
          f"fp32.onnx {mb(fp32):.1f} MB; int8.onnx {mb(int8):.1f} MB "
          f"({counts['MatMul']} MatMuls int8 {'per channel' if a.per_channel else 'per tensor'}, "
          f"{counts['Gather']} embedding Gathers uint8)", file=sys.stderr)


if __name__ == "__main__":
    main()
