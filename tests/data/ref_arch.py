#!/usr/bin/python3
"""Small random BERT-family classifiers in the Hugging Face layout, and an
independent PyTorch reference of their forward pass (no `transformers`).

Architectures, as the Hugging Face model descriptions define them:
  distilbert   DistilBertForSequenceClassification: word + position embeddings
               (no token types; a fixed sinusoidal table when
               sinusoidal_pos_embds), transformer.layer.N.{attention.{q,k,v,out}_lin,
               sa_layer_norm, ffn.lin1/lin2, output_layer_norm}; head: token 0 ->
               pre_classifier -> ReLU -> classifier.
  roberta      RobertaForSequenceClassification: BERT's layers; position ids
  xlm-roberta  padding_idx + 1 + (non-pad tokens before), pad tokens padding_idx;
               one token type; head: token 0 -> classifier.dense -> tanh ->
               classifier.out_proj.  XLM-R is the same network.
  electra      ElectraForSequenceClassification: embeddings of embedding_size,
               LayerNorm, then embeddings_project (Linear) to hidden_size; BERT's
               layers; head: token 0 -> classifier.dense -> GELU (erf) ->
               classifier.out_proj.

Commands:
  make NAME OUT     writes OUT/{config.json, vocab.txt, model.safetensors} for one
                    of the FIXTURES below (standard library only: runs on any
                    python3; the weights come from random.Random(seed), so they are
                    the same on every machine)
  make-all OUT      every fixture into OUT/NAME
  golden NAME DIR DATA   (needs torch) token ids for the fixture in DIR, and the
                    reference logits: DATA/NAME.ids ("id id ...\tTYPES" per line)
                    and DATA/NAME.logits (one row of logits per line)
  logits DIR IDS    (needs torch) prints the reference logits of DIR for IDS
  train NAME OUT TRAIN_TSV VOCAB REF_BERT_DIR [EPOCHS [MAX_LEN [LIMIT]]]
                    (needs torch) trains one of TRAINED below on SST-2 from scratch
                    (one thread; REF_BERT_DIR holds ../shared/tools/ref_bert.py, whose
                    WordPiece tokenizer bct matches) and writes a checkpoint to OUT

Run the torch commands with /usr/bin/python3 (Debian's python3-torch).
"""
import json
import math
import os
import random
import struct
import sys

# ------------------------------------------------------------------ fixtures
# name: architecture, sizes and the checkpoint variations each one covers.
FIXTURES = {
    # Sinusoidal positions left out of the file (bct computes them);
    # multi-label head with named labels; F32.
    "distilbert": dict(arch="distilbert", hidden=128, layers=2, heads=4, inter=256, max_pos=64,
                       act="gelu", sinusoidal=True, omit_sinusoid=True, dtype="F32",
                       problem="multi_label_classification", labels=["toxic", "insult", "threat"],
                       prefix=True, seed=11),
    # Learned positions, ReLU FFN, names without "distilbert.", F16.
    "distilbert-relu": dict(arch="distilbert", hidden=128, layers=1, heads=2, inter=256, max_pos=48,
                            act="relu", sinusoidal=False, dtype="F16",
                            problem="single_label_classification", labels=None, prefix=False,
                            seed=12),
    "roberta": dict(arch="roberta", hidden=128, layers=2, heads=4, inter=256, max_pos=66,
                    act="gelu", dtype="F16", problem="single_label_classification",
                    labels=["negative", "positive"], prefix=True, seed=13, eps=1e-5),
    # Regression (one logit), BF16, names without "roberta.", pad id 1.
    "xlm-roberta": dict(arch="xlm-roberta", hidden=128, layers=2, heads=2, inter=256, max_pos=50,
                        act="gelu", dtype="BF16", problem="regression", labels=["score"],
                        prefix=False, seed=14, eps=1e-5),
    # embedding_size 128 projected to hidden 256; token types used; 3 labels.
    "electra": dict(arch="electra", hidden=256, emb=128, layers=2, heads=4, inter=256, max_pos=64,
                    act="gelu", dtype="F16", problem="single_label_classification",
                    labels=["contradiction", "entailment", "neutral"], prefix=True, seed=15),
}

CLASS = {"distilbert": "DistilBertForSequenceClassification",
         "roberta": "RobertaForSequenceClassification",
         "xlm-roberta": "XLMRobertaForSequenceClassification",
         "electra": "ElectraForSequenceClassification"}
PREFIX = {"distilbert": "distilbert", "roberta": "roberta", "xlm-roberta": "roberta",
          "electra": "electra"}

WORDS = ("the a an and but not very quite so too film movie story plot acting actor script "
         "scene music cast director good bad great awful fine dull fun funny sad moving "
         "charming boring smart silly bleak warm cold long short best worst love hate "
         "like enjoy watch see feel it is was are be this that with without").split()


def vocab_for(arch):
    """WordPiece vocab.txt tokens; RoBERTa-style ids (<s> 0, <pad> 1, </s> 2, <unk> 3) for
    the RoBERTa family so that pad_token_id 1 is the pad token."""
    if arch in ("roberta", "xlm-roberta"):
        specials = ["[CLS]", "[PAD]", "[SEP]", "[UNK]"]
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    return specials + ["[MASK]"] + WORDS + ["##s", "##ly", "##ing", ",", ".", "!"]


# ---------------------------------------------------------------- safetensors
def _f16_bits(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]


def _bf16_bits(x):
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even


def st_write(path, tensors, dtype):
    """tensors: list of (name, shape, flat list of floats)."""
    header, blobs, off = {}, [], 0
    for name, shape, vals in tensors:
        if dtype == "F32":
            raw = struct.pack("<%df" % len(vals), *vals)
        elif dtype == "F16":
            raw = struct.pack("<%dH" % len(vals), *[_f16_bits(v) for v in vals])
        else:
            raw = struct.pack("<%dH" % len(vals), *[_bf16_bits(v) for v in vals])
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    import numpy as np
    import torch
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    out = {}
    for name, e in json.loads(buf[8:8 + n]).items():
        if name == "__metadata__":
            continue
        raw = buf[8 + n + e["data_offsets"][0]: 8 + n + e["data_offsets"][1]]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(e["dtype"])
        out[name] = torch.from_numpy(a.astype(np.float32).reshape(e["shape"]))
    return out


# ---------------------------------------------------------------- generation
def config_for(fx, vocab_size):
    arch = fx["arch"]
    labels = fx["labels"]
    c = {"architectures": [CLASS[arch]], "model_type": arch, "vocab_size": vocab_size,
         "max_position_embeddings": fx["max_pos"], "problem_type": fx["problem"],
         "initializer_range": 0.02, "torch_dtype": {"F32": "float32", "F16": "float16",
                                                     "BF16": "bfloat16"}[fx["dtype"]]}
    if labels:
        c["id2label"] = {str(i): l for i, l in enumerate(labels)}
        c["label2id"] = {l: i for i, l in enumerate(labels)}
    if arch == "distilbert":
        c.update(dim=fx["hidden"], n_layers=fx["layers"], n_heads=fx["heads"],
                 hidden_dim=fx["inter"], activation=fx["act"], dropout=0.1,
                 attention_dropout=0.1, seq_classif_dropout=0.2, qa_dropout=0.1,
                 sinusoidal_pos_embds=fx["sinusoidal"], pad_token_id=0)
    else:
        c.update(hidden_size=fx["hidden"], num_hidden_layers=fx["layers"],
                 num_attention_heads=fx["heads"], intermediate_size=fx["inter"],
                 hidden_act=fx["act"], hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, layer_norm_eps=fx.get("eps", 1e-12),
                 position_embedding_type="absolute")
        if arch == "electra":
            c.update(embedding_size=fx["emb"], type_vocab_size=2, pad_token_id=0,
                     summary_type="first", summary_activation="gelu")
        else:
            c.update(type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return c


def sinusoid(rows, dim):
    out = []
    for p in range(rows):
        for j in range(dim):
            a = p / math.pow(10000, 2 * (j // 2) / dim)
            out.append(math.sin(a) if j % 2 == 0 else math.cos(a))
    return out


def tensors_for(fx, cfg, rng):
    """The state dict (HF names) as (name, shape, values); random normal weights
    large enough that every layer matters."""
    arch, H, I, L = fx["arch"], fx["hidden"], fx["inter"], fx["layers"]
    E = fx.get("emb", H)
    V = cfg["vocab_size"]
    pre = PREFIX[arch] + "." if fx["prefix"] else ""
    out = []

    def rand(name, shape, std, mean=0.0):
        n = 1
        for d in shape:
            n *= d
        out.append((name, shape, [rng.gauss(mean, std) for _ in range(n)]))

    def linear(name, o, i):
        rand(name + ".weight", (o, i), 1.0 / math.sqrt(i))
        rand(name + ".bias", (o,), 0.1)

    def norm(name, n):
        rand(name + ".weight", (n,), 0.1, 1.0)
        rand(name + ".bias", (n,), 0.1)

    rand(pre + "embeddings.word_embeddings.weight", (V, E), 0.5)
    if arch == "distilbert" and fx["sinusoidal"]:
        if not fx.get("omit_sinusoid"):
            out.append((pre + "embeddings.position_embeddings.weight", (fx["max_pos"], E),
                        sinusoid(fx["max_pos"], E)))
    else:
        rand(pre + "embeddings.position_embeddings.weight", (fx["max_pos"], E), 0.5)
    if arch != "distilbert":
        rand(pre + "embeddings.token_type_embeddings.weight", (cfg["type_vocab_size"], E), 0.5)
    norm(pre + "embeddings.LayerNorm", E)
    if arch == "electra" and E != H:
        linear(pre + "embeddings_project", H, E)
    for i in range(L):
        if arch == "distilbert":
            p = "%stransformer.layer.%d." % (pre, i)
            for n in ("q_lin", "k_lin", "v_lin", "out_lin"):
                linear(p + "attention." + n, H, H)
            norm(p + "sa_layer_norm", H)
            linear(p + "ffn.lin1", I, H)
            linear(p + "ffn.lin2", H, I)
            norm(p + "output_layer_norm", H)
        else:
            p = "%sencoder.layer.%d." % (pre, i)
            for n in ("query", "key", "value"):
                linear(p + "attention.self." + n, H, H)
            linear(p + "attention.output.dense", H, H)
            norm(p + "attention.output.LayerNorm", H)
            linear(p + "intermediate.dense", I, H)
            linear(p + "output.dense", H, I)
            norm(p + "output.LayerNorm", H)
    n_labels = len(fx["labels"]) if fx["labels"] else 2
    if arch == "distilbert":
        linear("pre_classifier", H, H)
        linear("classifier", n_labels, H)
    else:
        linear("classifier.dense", H, H)
        linear("classifier.out_proj", n_labels, H)
    return out


def make(name, out_dir):
    fx = FIXTURES[name]
    rng = random.Random(fx["seed"])
    vocab = vocab_for(fx["arch"])
    cfg = config_for(fx, len(vocab))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    st_write(os.path.join(out_dir, "model.safetensors"), tensors_for(fx, cfg, rng), fx["dtype"])


# ------------------------------------------------------------------ reference
class Ref:
    """Forward pass of a checkpoint directory, on a right-padded batch with an
    attention mask (bct packs sequences without padding: a different route)."""

    def __init__(self, d=None, cfg=None, weights=None):
        """From a checkpoint directory d, or from a config dict and a state dict."""
        import torch
        self.torch = torch
        self.c = cfg if cfg is not None else json.load(open(os.path.join(d, "config.json")))
        self.arch = self.c["model_type"]
        w = weights if weights is not None else st_read(os.path.join(d, "model.safetensors"))
        pre = PREFIX[self.arch] + "."
        self.w = {(k[len(pre):] if k.startswith(pre) else k): v for k, v in w.items()}
        c = self.c
        if self.arch == "distilbert":
            self.H, self.L, self.A = c["dim"], c["n_layers"], c["n_heads"]
            self.act, self.eps = c["activation"], 1e-12
            if "embeddings.position_embeddings.weight" not in self.w:
                assert c["sinusoidal_pos_embds"]
                self.w["embeddings.position_embeddings.weight"] = torch.tensor(
                    sinusoid(c["max_position_embeddings"], self.H), dtype=torch.float64
                ).float().view(c["max_position_embeddings"], self.H)
        else:
            self.H, self.L, self.A = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
            self.act, self.eps = c["hidden_act"], c["layer_norm_eps"]
        self.pad = c.get("pad_token_id", 0)

    def lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def ln(self, x, name):
        return self.torch.nn.functional.layer_norm(x, (x.shape[-1],), self.w[name + ".weight"],
                                                   self.w[name + ".bias"], self.eps)

    def activation(self, x, name):
        t = self.torch
        if name == "gelu":
            return 0.5 * x * (1.0 + t.erf(x / math.sqrt(2.0)))
        if name == "relu":
            return t.relu(x)
        raise ValueError(name)

    def positions(self, ids):
        if self.arch in ("roberta", "xlm-roberta"):
            real = (ids != self.pad).long()
            return self.torch.cumsum(real, dim=1) * real + self.pad
        return self.torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)

    def attention(self, x, p, names, mask):
        B, T, H = x.shape
        dh = H // self.A
        q, k, v = (self.lin(x, p + n).view(B, T, self.A, dh).transpose(1, 2) for n in names[:3])
        q = q / math.sqrt(dh)
        s = q @ k.transpose(-1, -2)
        s = s.masked_fill(mask[:, None, None, :] == 0, self.torch.finfo(s.dtype).min)
        ctx = (self.torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
        return self.lin(ctx, p + names[3])

    def logits(self, ids, types, mask):
        t, w = self.torch, self.w
        if True:  # (differentiable: `train` runs it with gradients)
            x = w["embeddings.word_embeddings.weight"][ids] + \
                w["embeddings.position_embeddings.weight"][self.positions(ids)]
            if self.arch != "distilbert":
                x = x + w["embeddings.token_type_embeddings.weight"][types]
            x = self.ln(x, "embeddings.LayerNorm")
            if "embeddings_project.weight" in w:
                x = self.lin(x, "embeddings_project")
            for i in range(self.L):
                if self.arch == "distilbert":
                    p = "transformer.layer.%d." % i
                    a = self.attention(x, p, ["attention.q_lin", "attention.k_lin",
                                              "attention.v_lin", "attention.out_lin"], mask)
                    x = self.ln(a + x, p + "sa_layer_norm")
                    f = self.lin(self.activation(self.lin(x, p + "ffn.lin1"), self.act), p + "ffn.lin2")
                    x = self.ln(f + x, p + "output_layer_norm")
                else:
                    p = "encoder.layer.%d." % i
                    a = self.attention(x, p, ["attention.self.query", "attention.self.key",
                                              "attention.self.value", "attention.output.dense"], mask)
                    x = self.ln(a + x, p + "attention.output.LayerNorm")
                    f = self.activation(self.lin(x, p + "intermediate.dense"), self.act)
                    x = self.ln(self.lin(f, p + "output.dense") + x, p + "output.LayerNorm")
            first = x[:, 0]
            if self.arch == "distilbert":
                return self.lin(t.relu(self.lin(first, "pre_classifier")), "classifier")
            h = self.lin(first, "classifier.dense")
            h = self.activation(h, "gelu") if self.arch == "electra" else t.tanh(h)
            return self.lin(h, "classifier.out_proj")

    def run(self, seqs):
        """seqs: list of (ids, types); one padded batch."""
        t = self.torch
        T = max(len(s[0]) for s in seqs)
        ids = t.full((len(seqs), T), self.pad, dtype=t.long)
        types = t.zeros_like(ids)
        mask = t.zeros_like(ids)
        for i, (a, b) in enumerate(seqs):
            ids[i, :len(a)] = t.tensor(a)
            types[i, :len(b)] = t.tensor(b)
            mask[i, :len(a)] = 1
        if not t.is_grad_enabled():
            return self.logits(ids, types, mask)
        with t.no_grad():
            return self.logits(ids, types, mask)


def golden_ids(name):
    """Sequences of every length class up to the longest the model takes:
    [CLS] words [SEP] (a pair with token types for ELECTRA); RoBERTa-family
    sequences also hold the pad id inside, which takes position padding_idx."""
    fx = FIXTURES[name]
    rng = random.Random(1000 + fx["seed"])
    vocab = vocab_for(fx["arch"])
    cls, sep, pad = vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[PAD]")
    longest = fx["max_pos"] - (2 if fx["arch"] in ("roberta", "xlm-roberta") else 0)
    lengths = [1, 2, 3, 5, 8, 13, 21, 34, longest] + [rng.randint(4, longest) for _ in range(7)]
    out = []
    for n in lengths:
        ids = [cls] + [rng.randrange(5, len(vocab)) for _ in range(max(0, n - 2))] + ([sep] if n > 1 else [])
        types = [0] * n
        if fx["arch"] == "electra" and n > 6:
            cut = n // 2
            ids[cut] = sep
            types = [0] * (cut + 1) + [1] * (n - cut - 1)
        if fx["arch"] in ("roberta", "xlm-roberta") and n > 10:
            ids[3] = pad
            ids[n // 2] = pad
        out.append((ids[:n], types[:n]))
    return out


def write_golden(name, d, data):
    seqs = golden_ids(name)
    lg = Ref(d).run(seqs)
    with open(os.path.join(data, name + ".ids"), "w") as f:
        for ids, types in seqs:
            f.write(" ".join(map(str, ids)) + "\t" + "".join(map(str, types)) + "\n")
    with open(os.path.join(data, name + ".logits"), "w") as f:
        for row in lg.tolist():
            f.write("\t".join("%.7g" % v for v in row) + "\n")


# ------------------------------------------------------------------ training
# Small SST-2 classifiers of each architecture, trained from scratch on the
# bert-base-uncased WordPiece vocabulary (../shared/models/*/vocab.txt), so
# bct's own tokenizer reads them; to measure what compression costs on
# trained weights (random ones have no accuracy).
TRAINED = {
    "distilbert": dict(arch="distilbert", hidden=128, layers=2, heads=2, inter=512, max_pos=128,
                       act="gelu", sinusoidal=False),
    "roberta": dict(arch="roberta", hidden=128, layers=2, heads=2, inter=512, max_pos=129,
                    act="gelu", eps=1e-5),
    "xlm-roberta": dict(arch="xlm-roberta", hidden=128, layers=2, heads=2, inter=512, max_pos=129,
                        act="gelu", eps=1e-5),
    "electra": dict(arch="electra", hidden=256, emb=128, layers=1, heads=4, inter=512, max_pos=128,
                    act="gelu"),
}


def train(name, out_dir, train_tsv, vocab_path, ref_bert_dir, epochs=1, max_len=64, limit=0, seed=0):
    import torch
    sys.path.insert(0, ref_bert_dir)
    import ref_bert  # ../shared/tools/ref_bert.py: the WordPiece tokenizer bct matches
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a shared machine
    fx = dict(TRAINED[name], dtype="F32", problem="single_label_classification",
              labels=["negative", "positive"], prefix=True, seed=seed)
    vocab = open(vocab_path, encoding="utf-8").read().split("\n")
    vocab = vocab[:-1] if vocab[-1] == "" else vocab
    cfg = config_for(fx, len(vocab))
    if fx["arch"] in ("roberta", "xlm-roberta"):
        cfg["pad_token_id"] = vocab.index("[PAD]")  # position ids count from it
        cfg["max_position_embeddings"] = fx["max_pos"] + cfg["pad_token_id"]
    cfg["do_lower_case"] = True
    # HF-style initialisation: normal(0, 0.02) matrices, zero biases, unit LayerNorm.
    state = {}
    for n, shape, vals in tensors_for(fx, cfg, _ShapeOnly()):
        if n.endswith("LayerNorm.weight") or n.endswith("layer_norm.weight"):
            state[n] = torch.ones(shape)
        elif len(shape) == 1:
            state[n] = torch.zeros(shape)
        else:
            state[n] = torch.randn(shape) * 0.02
    for v in state.values():
        v.requires_grad_(True)
    model = Ref(cfg=cfg, weights=state)
    tok = ref_bert.Tokenizer(vocab_path, lower=True)
    lines = [l.rstrip("\n").split("\t") for l in open(train_tsv, encoding="utf-8")][1:]
    if limit:
        lines = lines[:limit]
    data = [(tok.encode(a, None, max_len)[0], int(y)) for a, y in lines]
    params = list(state.values())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    bs = 64
    steps = epochs * ((len(data) + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, (steps - s) / steps))
    rng = random.Random(seed)
    step = 0
    for ep in range(epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        total = 0.0
        for b0 in range(0, len(order), bs):
            batch = [data[i] for i in order[b0:b0 + bs]]
            seqs = [(ids, [0] * len(ids)) for ids, _ in batch]
            y = torch.tensor([l for _, l in batch])
            T = max(len(a) for a, _ in seqs)
            ids = torch.full((len(seqs), T), model.pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, (a, _) in enumerate(seqs):
                ids[i, :len(a)] = torch.tensor(a)
                mask[i, :len(a)] = 1
            loss = torch.nn.functional.cross_entropy(model.logits(ids, torch.zeros_like(ids), mask), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            total += loss.item()
            if step % 200 == 0:
                print("%s epoch %d step %d/%d loss %.4f" % (name, ep, step, steps, total / 200), flush=True)
                total = 0.0
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    st_write_np(os.path.join(out_dir, "model.safetensors"),
                [(n, v.detach().numpy()) for n, v in state.items()])


class _ShapeOnly:
    """A stand-in for random.Random when only the tensor shapes are wanted."""
    def gauss(self, mu, sigma):
        return 0.0


def st_write_np(path, arrays):
    """F32 safetensors from (name, numpy array) pairs (fast for large tensors)."""
    header, blobs, off = {}, [], 0
    for name, a in arrays:
        raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main(argv):
    if len(argv) == 3 and argv[0] == "make":
        make(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "make-all":
        for name in FIXTURES:
            make(name, os.path.join(argv[1], name))
    elif len(argv) == 4 and argv[0] == "golden":
        write_golden(argv[1], argv[2], argv[3])
    elif len(argv) == 3 and argv[0] == "logits":
        seqs = []
        for line in open(argv[2]):
            ids, _, types = line.rstrip("\n").partition("\t")
            ids = [int(v) for v in ids.split()]
            seqs.append((ids, [int(c) for c in types] if types else [0] * len(ids)))
        for row in Ref(argv[1]).run(seqs).tolist():
            print("\t".join("%.7g" % v for v in row))
    elif len(argv) >= 6 and argv[0] == "train":
        train(argv[1], argv[2], argv[3], argv[4], argv[5], *[int(v) for v in argv[6:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
