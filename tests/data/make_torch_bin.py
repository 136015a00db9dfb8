#!/usr/bin/python3
"""Fixtures for the PyTorch .bin reader (engine/formats/torch_bin.c, pickle.c).

Writes tests/data/torch_bin/:
  st/    config.json vocab.txt model.safetensors   a random 1-layer BERT, fp32
  f32/   ... pytorch_model.bin  the same weights by torch.save (OrderedDict with
         _metadata, a LongTensor position_ids buffer, a classifier weight that is
         a view at an offset into a larger storage)
  f16/, bf16/  the same weights converted by torch (.half(), .bfloat16())
  good/*.bin   other valid shapes of file (Parameters, protocol 4, archive/ prefix)
  bad/*.bin    malicious or broken files, each refused by a check in test_torch_bin.c

Run with Debian's torch: /usr/bin/python3 tests/data/make_torch_bin.py
Deterministic (fixed seed); the outputs are committed (about 180 KB).
"""
import collections, io, json, os, struct, sys, zipfile, zlib
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_bin")
H, I, L, A, P, V = 32, 32, 1, 2, 16, 64

WORDS = ("the a an is was it this that good bad movie film great awful fun "
         "boring not very and but plot acting story best worst love hate "
         "funny dull what just so too much one all its with for of to in "
         "on").split()


def vocab():
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "'"]
    toks += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    toks += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    toks += WORDS
    toks = toks[:V]
    assert len(toks) == V, len(toks)
    return toks


def config():
    return {
        "architectures": ["BertForSequenceClassification"], "model_type": "bert",
        "hidden_act": "gelu", "hidden_size": H, "intermediate_size": I,
        "layer_norm_eps": 1e-12, "max_position_embeddings": P,
        "num_attention_heads": A, "num_hidden_layers": L, "pad_token_id": 0,
        "type_vocab_size": 2, "vocab_size": V, "torch_dtype": "float32",
        "id2label": {"0": "negative", "1": "positive"},
        "label2id": {"negative": 0, "positive": 1},
    }


def weights():
    g = torch.Generator().manual_seed(14)
    sd = collections.OrderedDict()

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    def ln(prefix):
        sd[prefix + ".weight"] = 1 + r(H, scale=0.05)
        sd[prefix + ".bias"] = r(H, scale=0.05)

    e = "bert.embeddings."
    sd[e + "word_embeddings.weight"] = r(V, H)
    sd[e + "position_embeddings.weight"] = r(P, H)
    sd[e + "token_type_embeddings.weight"] = r(2, H)
    ln(e + "LayerNorm")
    for n in range(L):
        p = "bert.encoder.layer.%d." % n
        for m in ("query", "key", "value"):
            sd[p + "attention.self.%s.weight" % m] = r(H, H)
            sd[p + "attention.self.%s.bias" % m] = r(H, scale=0.05)
        sd[p + "attention.output.dense.weight"] = r(H, H)
        sd[p + "attention.output.dense.bias"] = r(H, scale=0.05)
        ln(p + "attention.output.LayerNorm")
        sd[p + "intermediate.dense.weight"] = r(I, H)
        sd[p + "intermediate.dense.bias"] = r(I, scale=0.05)
        sd[p + "output.dense.weight"] = r(H, I)
        sd[p + "output.dense.bias"] = r(H, scale=0.05)
        ln(p + "output.LayerNorm")
    sd["bert.pooler.dense.weight"] = r(H, H)
    sd["bert.pooler.dense.bias"] = r(H, scale=0.05)
    # A view at an offset into a larger storage (shared storages, views).
    big = r(3, H)
    sd["classifier.weight"] = big[1:3]
    sd["classifier.bias"] = r(2, scale=0.05)
    return sd


def write_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        b = v.contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model_dir(name, weights_file, write):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config(), f, indent=1)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab()) + "\n")
    write(os.path.join(d, weights_file))


def save(sd, path, metadata=True, **kw):
    sd = collections.OrderedDict(sd)
    if metadata:
        sd._metadata = collections.OrderedDict([("", {"version": 1}), ("bert", {"version": 1})])
    torch.save(sd, path, **kw)


# ---------------------------------------------------------------- hand-built zips

def zip_bytes(entries, method=0, zip64=False):
    """A minimal zip writer: entries [(name, data)], stored (or deflated);
    zip64: sizes and offsets in ZIP64 extra fields and end records."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data in entries:
        n = name.encode()
        crc = zlib.crc32(data)
        payload = data
        if method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
        off = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc,
                              len(payload), len(data), len(n), 0) + n + payload)
        if zip64:
            x = struct.pack("<HHQQQ", 1, 24, len(data), len(payload), off)
            central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0,
                                      crc, 0xFFFFFFFF, 0xFFFFFFFF, len(n), len(x), 0, 0, 0, 0,
                                      0xFFFFFFFF) + n + x)
        else:
            central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0,
                                      0, crc, len(payload), len(data), len(n), 0, 0, 0, 0, 0,
                                      off) + n)
    cd = central.getvalue()
    cd_off = out.tell()
    out.write(cd)
    if zip64:
        z64 = out.tell()
        out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries),
                              len(entries), len(cd), cd_off))
        out.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                              0xFFFFFFFF, 0))
    else:
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                              len(cd), cd_off, 0))
    return out.getvalue()


def pkl_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def state_dict_pickle(size=(2, 3), stride=(3, 1), offset=0, numel=6, storage="FloatStorage"):
    """A one-tensor state dict {'w': tensor} the way torch.save writes it."""
    tup = lambda xs: b"(" + b"".join(b"J" + struct.pack("<i", x) for x in xs) + b"t"
    return (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(" + pkl_str("w") +
            b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((" + pkl_str("storage") +
            b"ctorch\n" + storage.encode() + b"\n" + pkl_str("0") + pkl_str("cpu") +
            b"J" + struct.pack("<i", numel) + b"tQ" + b"J" + struct.pack("<i", offset) +
            tup(size) + tup(stride) + b"\x89h\x00)Rtq\x03Ru.")


def torch_zip(pkl, storages=(("0", 24),), prefix="archive", method=0, zip64=False):
    ents = [(prefix + "/data.pkl", pkl)]
    ents += [(prefix + "/data/" + k, bytes(i % 251 for i in range(n))) for k, n in storages]
    ents.append((prefix + "/version", b"3\n"))
    return zip_bytes(ents, method, zip64)


def bad_files():
    bad = {}
    # Code execution attempts.
    bad["reduce_os_system"] = torch_zip(b"\x80\x02cposix\nsystem\nq\x00" + pkl_str("id") + b"\x85R.")
    bad["global_eval"] = torch_zip(b"\x80\x02cbuiltins\neval\n" + pkl_str("1") + b"\x85R.")
    body = b"\x8c\x0asubprocess\x94\x8c\x05Popen\x94\x93" + pkl_str("ls") + b"\x85R."
    bad["stack_global_subprocess"] = torch_zip(
        b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body)
    bad["inst"] = torch_zip(b"\x80\x02(" + pkl_str("id") + b"ios\nsystem\n.")
    bad["obj"] = torch_zip(b"\x80\x02(cos\nsystem\n" + pkl_str("id") + b"o.")
    bad["newobj"] = torch_zip(b"\x80\x02ccollections\nOrderedDict\n)\x81.")
    bad["ext1"] = torch_zip(b"\x80\x02\x82\x01.")
    bad["reduce_storage"] = torch_zip(b"\x80\x02ctorch\nFloatStorage\n)R.")
    bad["reduce_list"] = torch_zip(b"\x80\x02])R.")
    bad["build_list"] = torch_zip(b"\x80\x02]}b.")
    bad["complex_storage"] = torch_zip(state_dict_pickle(storage="ComplexFloatStorage"))
    # Resource exhaustion.
    bad["mark_bomb"] = torch_zip(b"\x80\x02" + b"(" * 1000 + b".")
    bad["stack_bomb"] = torch_zip(b"\x80\x02" + b"N" * 17000 + b".")
    # 64 lists, each holding the previous one twice: 2^64 items if walked.
    laughs = b"\x80\x02]q\x00" + b"".join(
        b"]" + (b"j" + struct.pack("<I", i)) * 2 + b"\x86a" + b"r" + struct.pack("<I", i + 1)
        for i in range(64)) + b"."
    bad["nested_lists"] = torch_zip(laughs)
    # 5,000 lists nested in one another: deep if anything recursed.
    bad["deep_lists"] = torch_zip(b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".")
    bad["huge_memo"] = torch_zip(b"\x80\x02]r\xff\xff\xff\x7f.")
    bad["memo_unset"] = torch_zip(b"\x80\x02j\x05\x00\x00\x00.")
    bad["huge_unicode"] = torch_zip(b"\x80\x02X\xff\xff\xff\x7fabc.")
    bad["no_stop"] = torch_zip(b"\x80\x02}")
    # Tensors that do not fit their storage.
    bad["storage_too_small"] = torch_zip(state_dict_pickle(size=(4, 3), stride=(3, 1), numel=6))
    bad["offset_past_storage"] = torch_zip(state_dict_pickle(offset=1, numel=6))
    bad["storage_record_short"] = torch_zip(state_dict_pickle(), storages=(("0", 20),))
    bad["storage_missing"] = torch_zip(state_dict_pickle(), storages=())
    bad["strided"] = torch_zip(state_dict_pickle(size=(2, 3), stride=(1, 2)))
    # Zip structure.
    bad["deflated"] = torch_zip(state_dict_pickle(), method=8)
    bad["foreign_prefix"] = zip_bytes([("archive/data.pkl", state_dict_pickle()),
                                       ("other/data/0", bytes(24))])
    good = torch_zip(state_dict_pickle())
    # Central directory says data/0 holds far more bytes than the file has.
    z = bytearray(good)
    cd = z.rfind(b"archive/data/0") - 46
    struct.pack_into("<II", z, cd + 20, 0x7FFFFFF0, 0x7FFFFFF0)
    bad["lying_size"] = bytes(z)
    # An entry whose local header sits inside another entry's data.
    inner = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, 0, 24, 24, 14, 0) + \
        b"archive/data/1" + bytes(24)
    ents = [("archive/data.pkl", state_dict_pickle()), ("archive/data/0", inner + bytes(24))]
    raw = bytearray(zip_bytes(ents))
    hdr0 = raw.find(b"archive/data/0") - 30
    inner_off = hdr0 + 30 + 14
    eocd = len(raw) - 22
    cd_off, = struct.unpack_from("<I", raw, eocd + 16)
    extra = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0, 24, 24, 14,
                        0, 0, 0, 0, 0, inner_off) + b"archive/data/1"
    cd = bytes(raw[cd_off:eocd]) + extra
    bad["overlapping_entries"] = bytes(raw[:cd_off]) + cd + struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(cd), cd_off, 0)
    bad["legacy"] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + bytes(64)
    bad["not_zip"] = b"{\"not\": \"a zip\"}" + bytes(32)
    return bad


def good_files():
    g = torch.Generator().manual_seed(7)
    good = {}
    # Parameters (_rebuild_parameter), protocol 4 (FRAME, MEMOIZE,
    # SHORT_BINUNICODE, STACK_GLOBAL), shared storage.
    w = torch.randn(4, 3, generator=g)
    sd = collections.OrderedDict()
    sd["p"] = torch.nn.Parameter(w.clone())
    sd["view"] = w[2:]
    sd["w"] = w
    sd["half"] = w.half()
    sd["ids"] = torch.arange(5)
    for proto in (2, 4):
        buf = io.BytesIO()
        torch.save(sd, buf, pickle_protocol=proto)
        good["params_proto%d" % proto] = buf.getvalue()
    good["hand_built"] = torch_zip(state_dict_pickle())
    good["zip64"] = torch_zip(state_dict_pickle(), prefix="pytorch_model", zip64=True)
    return good


def main():
    sd = weights()
    model_dir("st", "model.safetensors", lambda p: write_safetensors(p, sd))
    with_ids = collections.OrderedDict(sd)
    with_ids["bert.embeddings.position_ids"] = torch.arange(P).unsqueeze(0)
    model_dir("f32", "pytorch_model.bin", lambda p: save(with_ids, p))
    model_dir("f16", "pytorch_model.bin",
              lambda p: save({k: v.half() for k, v in sd.items()}, p))
    model_dir("bf16", "pytorch_model.bin",
              lambda p: save({k: v.bfloat16() for k, v in sd.items()}, p))
    for sub, files in (("good", good_files()), ("bad", bad_files())):
        d = os.path.join(OUT, sub)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name + ".bin"), "wb") as f:
                f.write(data)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("wrote %s (%d bytes)" % (OUT, total))


if __name__ == "__main__":
    sys.exit(main())
