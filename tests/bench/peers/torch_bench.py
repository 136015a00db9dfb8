#!/usr/bin/python3
"""What users would run instead of bct: a BERT classifier in PyTorch, fp32 and
with PyTorch's own post-training dynamic int8 quantization (every nn.Linear),
timed on the same shapes as `bct bench`.  The module mirrors Hugging Face's
BertForSequenceClassification structure (separate Q/K/V/O and FFN Linears,
post-LayerNorm, erf GELU, pooler + classifier); weights are random because
speed does not depend on their values.

Usage: /usr/bin/python3 tests/bench/peers/torch_bench.py [--threads 2] [--runs 5]
       [--layers 12 --hidden 768 --heads 12 --intermediate 3072 --vocab 30522]
Prints one JSON object per (mode, batch, seq) on stdout.
Needs Debian's python3-torch (the pyenv python3 on PATH has no torch).
"""
import argparse, json, math, statistics, time

import torch
from torch import nn


class Layer(nn.Module):
    def __init__(self, h, heads, inter):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(h, eps=1e-12), nn.LayerNorm(h, eps=1e-12)
        self.ffn_in, self.ffn_out = nn.Linear(h, inter), nn.Linear(inter, h)

    def forward(self, x, bias):
        b, t, h = x.shape
        dh = h // self.heads
        split = lambda y: y.view(b, t, self.heads, dh).transpose(1, 2)
        s = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / math.sqrt(dh) + bias
        ctx = (torch.softmax(s, -1) @ split(self.v(x))).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(self.o(ctx) + x)
        return self.ln2(self.ffn_out(nn.functional.gelu(self.ffn_in(x))) + x)


class Bert(nn.Module):
    def __init__(self, a):
        super().__init__()
        h = a.hidden
        self.word, self.pos, self.types = nn.Embedding(a.vocab, h), nn.Embedding(512, h), nn.Embedding(2, h)
        self.ln = nn.LayerNorm(h, eps=1e-12)
        self.layers = nn.ModuleList(Layer(h, a.heads, a.intermediate) for _ in range(a.layers))
        self.pooler, self.classifier = nn.Linear(h, h), nn.Linear(h, 2)

    def forward(self, ids, mask):
        t = ids.shape[1]
        x = self.ln(self.word(ids) + self.pos(torch.arange(t))[None] + self.types(torch.zeros_like(ids)))
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in self.layers:
            x = layer(x, bias)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


def add_shape_args(ap):
    """The model-shape options (default bert-base); ort_export.py builds the same Bert from them."""
    for k, v in (("layers", 12), ("hidden", 768), ("heads", 12), ("intermediate", 3072), ("vocab", 30522)):
        ap.add_argument("--" + k, type=int, default=v)


def bench(model, batch, seq, runs, vocab):
    ids = torch.randint(1000, vocab, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    with torch.inference_mode():
        model(ids, mask)  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(ids, mask)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"batch": batch, "seq": seq, "ms_per_batch": med * 1e3,
            "sentences_per_s": batch / med, "sentences_per_s_min": batch / max(times)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    add_shape_args(ap)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--seqs", default="16,64,128")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    fp32 = Bert(a).eval()
    torch.backends.quantized.engine = "onednn" if "onednn" in torch.backends.quantized.supported_engines else "qnnpack"
    int8 = torch.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)
    for mode, model in (("torch-fp32", fp32), ("torch-int8-dynamic", int8)):
        for b in map(int, a.batches.split(",")):
            for s in map(int, a.seqs.split(",")):
                r = bench(model, b, s, a.runs, a.vocab)
                r.update(mode=mode, threads=a.threads, torch=torch.__version__,
                         quantized_engine=torch.backends.quantized.engine if "int8" in mode else None)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
