#!/usr/bin/python3
"""Reference for structured pruning (quantizer/prune.c, engine per-layer
shapes): an independent BERT forward pass in torch float64 over the
tensors of a pruned .bct whose weights are kept in f32 (`bct compress
--weights f32 --embeddings f32 --tables f32`).  Each layer's head count
is its query rows / head width and its FFN width its intermediate rows; a
layer without attention.self.query (output.dense) weights has no heads
(neurons): that sub-block adds its output bias alone.

  ref_pruned.py check MODEL.bct HF_DIR CASES.jsonl
      CASES.jsonl: one {"ids", "type_ids", "logits"} object per line (the
      engine's logits).  Checks that:
      - the "pruning" meta matches the tensors' shapes;
      - Q, K, V rows are the original checkpoint's rows of the kept heads
        ("kept_heads"), and every FFN input row (and bias) is one of the
        original's: heads and neurons are removed, not retrained;
      - the engine's logits equal this forward pass (|diff| <= 1e-6: the
        random models' logits are ~0.03).
  ref_pruned.py corrupt MODEL.bct OUT.bct FIELD INDEX VALUE
      writes a copy whose meta has pruning[FIELD][INDEX] = VALUE (CRCs
      recomputed), for the loader's error path.
Exits 77 without torch.
"""
import json
import struct
import sys
import zlib

try:
    import torch
except ImportError:
    sys.exit(77)


def read_bct(path):
    data = open(path, "rb").read()
    hoff, hlen = struct.unpack_from("<QQ", data, 16)
    header = json.loads(data[hoff:hoff + hlen])
    return data, header


def bct_tensor(data, header, name, shape):
    b = header["blobs"][name]
    t = torch.frombuffer(bytearray(data[b["offset"]:b["offset"] + b["size"]]), dtype=torch.float32)
    return t.reshape(shape).double()


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", name
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=torch.float32)
        key = name[5:] if name.startswith("bert.") else name
        out[key] = t.reshape(e["shape"]).double()
    return out


def load(path):
    data, header = read_bct(path)
    meta = header["meta"]
    w = {}
    for e in meta["tensors"]:
        assert e["type"] == "f32", e["name"] + " is not f32"
        key = e["name"][5:] if e["name"].startswith("bert.") else e["name"]
        w[key] = bct_tensor(data, header, e["name"], e["shape"])
    return meta, w


def layer_norm(x, g, b, eps):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(v + eps) * g + b


def forward(meta, w, ids, types):
    c = meta["config"]
    H, nh, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    dh = H // nh
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = x + w["embeddings.token_type_embeddings.weight"][types]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for l in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        ob = w[p + "attention.output.dense.bias"]
        if p + "attention.self.query.weight" in w:
            q = x @ w[p + "attention.self.query.weight"].T + w[p + "attention.self.query.bias"]
            k = x @ w[p + "attention.self.key.weight"].T + w[p + "attention.self.key.bias"]
            v = x @ w[p + "attention.self.value.weight"].T + w[p + "attention.self.value.bias"]
            heads = q.shape[1] // dh
            ctx = []
            for h in range(heads):
                s = slice(h * dh, (h + 1) * dh)
                a = torch.softmax(q[:, s] @ k[:, s].T / dh ** 0.5, -1)
                ctx.append(a @ v[:, s])
            att = torch.cat(ctx, 1) @ w[p + "attention.output.dense.weight"].T + ob
        else:
            att = ob.expand(n, H)
        x = layer_norm(att + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        fb = w[p + "output.dense.bias"]
        if p + "intermediate.dense.weight" in w:
            f = x @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"]
            f = 0.5 * f * (1 + torch.erf(f / 2 ** 0.5))
            f = f @ w[p + "output.dense.weight"].T + fb
        else:
            f = fb.expand(n, H)
        x = layer_norm(f + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(x[0] @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
    return pooled @ w["classifier.weight"].T + w["classifier.bias"]


def check(bct, hf_dir, cases):
    meta, w = load(bct)
    orig = read_safetensors(hf_dir + "/model.safetensors")
    c, pr = meta["config"], meta["pruning"]
    H, nh, inter = c["hidden_size"], c["num_attention_heads"], c["intermediate_size"]
    dh = H // nh
    for l in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        heads, kept = pr["heads"][l], pr["kept_heads"][l]
        assert len(kept) == heads and kept == sorted(set(kept)), (l, kept)
        for m in ("query", "key", "value"):
            name = p + "attention.self.%s.weight" % m
            if heads == 0:
                assert name not in w, name
                continue
            rows = torch.cat([torch.arange(h * dh, (h + 1) * dh) for h in kept])
            assert torch.equal(w[name], orig[name][rows]), name
            assert torch.equal(w[p + "attention.self.%s.bias" % m], orig[p + "attention.self.%s.bias" % m][rows])
        if heads:
            assert tuple(w[p + "attention.output.dense.weight"].shape) == (H, heads * dh)
        name = p + "intermediate.dense.weight"
        if pr["intermediate"][l] == 0:
            assert name not in w and p + "output.dense.weight" not in w, name
        else:
            assert w[name].shape[0] == pr["intermediate"][l] <= inter, name
            full = torch.cat([orig[name], orig[p + "intermediate.dense.bias"][:, None]], 1)
            mine = torch.cat([w[name], w[p + "intermediate.dense.bias"][:, None]], 1)
            idx = [int(torch.nonzero((full == r).all(1))[0]) for r in mine]
            assert idx == sorted(set(idx)), name + ": rows are not distinct original rows in order"
            assert tuple(w[p + "output.dense.weight"].shape) == (H, pr["intermediate"][l])
    worst = 0.0
    for line in open(cases):
        case = json.loads(line)
        ref = forward(meta, w, case["ids"], case["type_ids"])
        got = torch.tensor(case["logits"], dtype=torch.float64)
        worst = max(worst, float((ref - got).abs().max()))
    print("max |engine - reference| logit: %.3g" % worst)
    assert worst <= 1e-6, worst


def corrupt(src, dst, field, index, value):
    data, header = read_bct(src)
    hoff = struct.unpack_from("<Q", data, 16)[0]
    header["meta"]["pruning"][field][index] = value
    h = json.dumps(header).encode()
    pre = bytearray(data[:64])
    struct.pack_into("<QQQ", pre, 16, hoff, len(h), hoff + len(h))
    struct.pack_into("<I", pre, 40, zlib.crc32(h))
    open(dst, "wb").write(bytes(pre) + data[64:hoff] + h)


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        corrupt(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6]))
