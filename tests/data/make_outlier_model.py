#!/usr/bin/python3
"""Builds an outlier-stress variant of a trained BERT classifier (issue 15).

Pretrained BERTs have a few hidden dimensions whose LayerNorm outputs are
10-50x larger than the rest, always the same dimensions in every layer
(Bondarenko et al. 2021; Kovaleva et al. 2021).  The shared models were
trained from scratch and have none, so this script makes them:

 1. In every LayerNorm, multiply gamma of a few fixed dimensions by 20-50
    and shift beta there.
 2. Fine-tune briefly on the GLUE train set with every LayerNorm (and the
    word embeddings, to keep it to minutes of CPU) frozen, so that the
    model relies on those dimensions.
 3. Add function-preserving rescalings per layer: query row j x s and key
    row j / s (q.k unchanged), value row j x t and the attention output
    projection's input column j / t (context . W_o unchanged).  fp32 logits
    stay the same (checked); the weights and the attention inputs get
    outliers.

Writes config.json, vocab.txt, model.safetensors (HF layout, F32) and
OUTLIERS.json (what was done, the fp32 dev accuracy) into --out.
Deterministic for a given source model, seed and thread count.

Usage: /usr/bin/python3 make_outlier_model.py --src MODEL_DIR --out DIR
           --train train.tsv --dev dev.tsv --ref-tools SHARED/tools [--steps N]
Needs python3-torch and python3-numpy (Debian).
"""
import argparse, json, math, os, shutil, struct, sys, time

import numpy as np
import torch


def load_ref(tools):
    sys.path.insert(0, tools)
    import ref_bert  # the shared reference: tokenizer, safetensors reader, fp32 forward
    return ref_bert


def save_safetensors(path, tensors):
    """F32 safetensors, tensors in the given order, offsets 8-byte aligned."""
    hdr, off, blobs = {}, 0, []
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
        hdr[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Model:
    """A differentiable post-LN BERT classifier over a name -> tensor dict
    (names without the 'bert.' prefix)."""

    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.L, self.H, self.A = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)

    def ln(self, x, p):
        return torch.nn.functional.layer_norm(x, (self.H,), self.w[p + ".weight"], self.w[p + ".bias"], self.eps)

    def lin(self, x, p):
        return x @ self.w[p + ".weight"].T + self.w[p + ".bias"]

    def __call__(self, ids, tt, mask, drop=0.0):
        w, B, T = self.w, ids.shape[0], ids.shape[1]
        dr = (lambda x: torch.nn.functional.dropout(x, drop, True)) if drop > 0 else (lambda x: x)
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos] \
            + w["embeddings.token_type_embeddings.weight"][tt]
        x = dr(self.ln(x, "embeddings.LayerNorm"))
        dh = self.H // self.A
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9
        for i in range(self.L):
            p = f"encoder.layer.{i}."
            q = self.lin(x, p + "attention.self.query").view(B, T, self.A, dh).transpose(1, 2)
            k = self.lin(x, p + "attention.self.key").view(B, T, self.A, dh).transpose(1, 2)
            v = self.lin(x, p + "attention.self.value").view(B, T, self.A, dh).transpose(1, 2)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(dh) + bias
            ctx = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, self.H)
            x = self.ln(dr(self.lin(ctx, p + "attention.output.dense")) + x, p + "attention.output.LayerNorm")
            h = self.lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
            x = self.ln(dr(self.lin(h, p + "output.dense")) + x, p + "output.LayerNorm")
        pooled = torch.tanh(self.lin(x[:, 0], "pooler.dense"))
        return self.lin(dr(pooled), "classifier")


def batches(tok, rows, max_len, bs):
    for i in range(0, len(rows), bs):
        enc = [tok.encode(a, b, max_len) for a, b, _ in rows[i:i + bs]]
        T = max(len(e[0]) for e in enc)
        ids = torch.zeros(len(enc), T, dtype=torch.long)
        tt, m = torch.zeros_like(ids), torch.zeros_like(ids)
        for j, (a, t) in enumerate(enc):
            ids[j, :len(a)] = torch.tensor(a)
            tt[j, :len(t)] = torch.tensor(t)
            m[j, :len(a)] = 1
        yield ids, tt, m, rows[i:i + bs]


def logits_of(model, tok, rows, max_len=128):
    out = []
    with torch.no_grad():
        for ids, tt, m, _ in batches(tok, rows, max_len, 64):
            out.append(model(ids, tt, m))
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--ref-tools", required=True, help="directory holding ref_bert.py")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--dims", type=int, default=3, help="outlier dimensions per LayerNorm")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)  # deterministic summation order
    t0 = time.time()
    rb = load_ref(a.ref_tools)
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    raw = rb.load_safetensors(os.path.join(a.src, "model.safetensors"))
    order = list(raw.keys())
    strip = lambda k: k[5:] if k.startswith("bert.") else k
    w = {strip(k): v.clone() for k, v in raw.items()}
    tok = rb.Tokenizer(os.path.join(a.src, "vocab.txt"), lower=cfg.get("do_lower_case", True))
    H, L, A = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    g = torch.Generator().manual_seed(a.seed)

    # 1. The same few dimensions in every LayerNorm: gamma x 20..50, beta shifted.
    dims = torch.randperm(H, generator=g)[:a.dims].sort().values
    gain = 20 + 30 * torch.rand(a.dims, generator=g)
    shift = 2 + 3 * torch.rand(a.dims, generator=g)
    lns = [k[:-len(".weight")] for k in w if k.endswith("LayerNorm.weight")]
    for p in lns:
        w[p + ".weight"][dims] *= gain
        w[p + ".bias"][dims] += shift * torch.sign(w[p + ".weight"][dims])

    # 2. Brief fine-tune with LayerNorms (and word embeddings) frozen.
    train = rb.read_glue(a.task, a.train)
    dev = rb.read_glue(a.task, a.dev)
    label2id = cfg.get("label2id") or {}
    lab = lambda s: int(label2id[s]) if s in label2id else int(s)
    perm = torch.randperm(len(train), generator=g)[:a.steps * a.bs].tolist()
    sub = [train[i] for i in perm]
    frozen = lambda k: "LayerNorm" in k or k == "embeddings.word_embeddings.weight"
    params = [w[k].requires_grad_() for k in w if not frozen(k)]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    model = Model(cfg, w)
    step, loss_sum = 0, 0.0
    for ids, tt, m, rows in batches(tok, sub, 66, a.bs):
        lr = a.lr * min(1.0, (step + 1) / 10) * (1 - step / a.steps)
        for pg in opt.param_groups:
            pg["lr"] = lr
        y = torch.tensor([lab(r[2]) for r in rows])
        loss = torch.nn.functional.cross_entropy(model(ids, tt, m, drop=0.1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.item()
        step += 1
        if step % 25 == 0:
            print(f"step {step}/{a.steps} loss {loss_sum / 25:.4f} ({time.time() - t0:.0f} s)", flush=True)
            loss_sum = 0.0
    for k in w:
        w[k] = w[k].detach()

    dev_rows = dev
    before = logits_of(model, tok, dev_rows)

    # 3. Function-preserving rescalings: a few head dimensions per layer.
    dh = H // A
    resc = []
    for i in range(L):
        p = f"encoder.layer.{i}."
        jq = torch.randperm(H, generator=g)[:4]
        s = 8 + 24 * torch.rand(4, generator=g)
        for pn, f in (("attention.self.query", s), ("attention.self.key", 1 / s)):
            w[p + pn + ".weight"][jq] *= f[:, None]
            w[p + pn + ".bias"][jq] *= f
        jv = torch.randperm(H, generator=g)[:4]
        t = 8 + 24 * torch.rand(4, generator=g)
        w[p + "attention.self.value.weight"][jv] *= t[:, None]
        w[p + "attention.self.value.bias"][jv] *= t
        w[p + "attention.output.dense.weight"][:, jv] /= t
        resc.append({"layer": i, "qk_dims": jq.tolist(), "qk_scale": [round(v, 3) for v in s.tolist()],
                     "v_dims": jv.tolist(), "v_scale": [round(v, 3) for v in t.tolist()]})
    after = logits_of(model, tok, dev_rows)
    diff = (after - before).abs().max().item()
    print(f"rescalings: max |logit diff| {diff:.2e}")
    if diff > 1e-3 * max(1.0, before.abs().max().item()):
        sys.exit(f"rescalings changed the logits by {diff}")

    gold = torch.tensor([lab(r[2]) for r in dev_rows])
    acc = (after.argmax(-1) == gold).float().mean().item()
    src_acc = (logits_of(Model(cfg, {strip(k): v for k, v in raw.items()}), tok, dev_rows).argmax(-1) == gold).float().mean().item()

    # Outlier census after the embedding LayerNorm (per-dimension max |x|).
    with torch.no_grad():
        ids, tt, m, _ = next(batches(tok, dev_rows[:256], 128, 256))
        pos = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos] \
            + w["embeddings.token_type_embeddings.weight"][tt]
        x = model.ln(x, "embeddings.LayerNorm")[m.bool()]
        mx = x.abs().max(0).values
        ratio = (mx[dims].min() / mx.median()).item()

    os.makedirs(a.out, exist_ok=True)
    save_safetensors(os.path.join(a.out, "model.safetensors"),
                     {k: w[strip(k)] for k in order})
    shutil.copy(os.path.join(a.src, "vocab.txt"), a.out)
    shutil.copy(os.path.join(a.src, "config.json"), a.out)
    info = {"source": os.path.abspath(a.src), "seed": a.seed, "steps": a.steps, "batch": a.bs, "lr": a.lr,
            "ln_dims": dims.tolist(), "ln_gain": [round(v, 3) for v in gain.tolist()],
            "ln_shift": [round(v, 3) for v in shift.tolist()], "rescalings": resc,
            "rescale_max_logit_diff": diff, "source_dev_accuracy": src_acc, "dev_accuracy": acc,
            "emb_ln_outlier_ratio": ratio, "seconds": round(time.time() - t0, 1)}
    json.dump(info, open(os.path.join(a.out, "OUTLIERS.json"), "w"), indent=1)
    print(json.dumps({"dev_accuracy": acc, "source_dev_accuracy": src_acc, "emb_ln_outlier_ratio": ratio,
                      "seconds": info["seconds"]}))


if __name__ == "__main__":
    main()
