#!/usr/bin/python3
"""Reference tokenizers for tokenizer.json files, written from the published
descriptions of the algorithms (Hugging Face `tokenizers` "fast" semantics as
summarised in ../shared/docs/tokenizers-and-formats.md; GPT-2's encoder.py
byte-to-unicode map and split pattern; SentencePiece's Viterbi segmentation).
Standard library only: unicodedata for Unicode data (Python's Unicode 14).

    tok = Tokenizer(json.load(open("tokenizer.json")))
    ids, type_ids = tok.encode("text", "pair or None", max_len)
    ids = tok.tokenize("text")              # model ids, no specials

Precompiled (SentencePiece charsmap) normalizers run the charsmap with
SentencePiece's longest-match rule (NFKC when the file has no charsmap), as
bct does.  Regex patterns are limited to what bct supports ("X{k,}" in Replace,
the GPT-2 pattern in Split).
"""
import base64
import json
import struct
import unicodedata

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# Unicode White_Space (what Rust's char::is_whitespace tests).
WHITE = set([0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
            + list(range(0x2000, 0x200B)))


def is_ws(c):
    return ord(c) in WHITE


def cat(c):
    return unicodedata.category(c)


def is_letter(c):
    return cat(c)[0] == "L"


def is_number(c):
    return cat(c)[0] == "N"


def is_word(c):
    k = cat(c)
    return k[0] in "LM" or k in ("Nd", "Nl", "Pc") or c in "\u200c\u200d"


def is_punct(c):
    o = ord(c)
    if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126:
        return True
    return cat(c)[0] == "P"


def is_cjk(c):
    o = ord(c)
    return any(a <= o <= b for a, b in [
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])


def lower(s):
    return "".join(c.lower() for c in s)  # per character: no final-sigma context


def bytes_to_unicode():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHAR = bytes_to_unicode()


class UnsupportedError(Exception):
    pass


# ------------------------------------------------------------ normalizers

class Charsmap:
    """SentencePiece precompiled_charsmap: u32 LE trie size, a darts-clone
    double array (u32 LE units), NUL-terminated replacement strings.
    Normalizing takes, at each position, the longest rule matching the
    UTF-8 bytes there, else copies one character (sentencepiece
    normalizer.cc)."""

    def __init__(self, blob):
        (size,) = struct.unpack_from("<I", blob, 0)
        if len(blob) <= 4 or size == 0 or size % 4 or size > len(blob) - 4:
            raise ValueError("bad trie size")
        self.units = struct.unpack_from("<%dI" % (size // 4), blob, 4)
        self.pool = blob[4 + size:]

    @staticmethod
    def _offset(u):
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    def longest(self, key):
        u, best = self.units, (0, None)
        pos = self._offset(u[0])
        for i, b in enumerate(key):
            pos ^= b
            if pos >= len(u) or (u[pos] & 0x800000FF) != b:
                break
            x = u[pos]
            pos ^= self._offset(x)
            if pos >= len(u):
                break
            if (x >> 8) & 1:
                best = (i + 1, u[pos] & 0x7FFFFFFF)
        return best

    def normalize(self, s):
        data, out, i = s.encode("utf-8"), [], 0
        while i < len(data):
            n, v = self.longest(memoryview(data)[i:])
            if not n:
                j = i + 1
                while j < len(data) and data[j] & 0xC0 == 0x80:
                    j += 1
                out.append(data[i:j])
                i = j
                continue
            i += n
            while i < len(data) and data[i] & 0xC0 == 0x80:
                i += 1
            out.append(self.pool[v:self.pool.index(b"\0", v)])
        return b"".join(out).decode("utf-8")


def run_regex_run(s, ch, k, rep):
    """Replace runs of >= k copies of ch."""
    out, i = [], 0
    while i < len(s):
        if s[i] == ch:
            j = i
            while j < len(s) and s[j] == ch:
                j += 1
            out.append(rep if j - i >= k else s[i:j])
            i = j
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def make_normalizer(spec):
    if spec is None:
        return lambda s: s
    t = spec["type"]
    if t == "Sequence":
        steps = [make_normalizer(x) for x in spec["normalizers"]]

        def seq(s):
            for f in steps:
                s = f(s)
            return s
        return seq
    if t == "BertNormalizer":
        clean = spec.get("clean_text", True)
        chinese = spec.get("handle_chinese_chars", True)
        low = spec.get("lowercase", True)
        strip = spec.get("strip_accents")
        if strip is None:
            strip = low

        def bert(s):
            if clean:
                s = "".join(" " if is_ws(c) else c for c in s
                            if not (c in "\0\ufffd" or (c not in "\t\n\r" and cat(c)[0] == "C")))
            if chinese:
                s = "".join(" %s " % c if is_cjk(c) else c for c in s)
            if strip:
                s = "".join(c for c in unicodedata.normalize("NFD", s) if cat(c) != "Mn")
            if low:
                s = lower(s)
            return s
        return bert
    if t in ("NFC", "NFD", "NFKC", "NFKD"):
        return lambda s: unicodedata.normalize(t, s)
    if t == "Precompiled":
        if not spec.get("precompiled_charsmap"):
            return lambda s: unicodedata.normalize("NFKC", s)
        cm = Charsmap(base64.b64decode(spec["precompiled_charsmap"], validate=True))
        return cm.normalize
    if t == "Lowercase":
        return lower
    if t == "StripAccents":
        return lambda s: "".join(c for c in s if cat(c)[0] != "M")
    if t == "Strip":
        left, right = spec.get("strip_left", True), spec.get("strip_right", True)

        def strip_fn(s):
            a, b = 0, len(s)
            while left and a < b and is_ws(s[a]):
                a += 1
            while right and b > a and is_ws(s[b - 1]):
                b -= 1
            return s[a:b]
        return strip_fn
    if t == "Prepend":
        p = spec["prepend"]
        return lambda s: p + s if s else s
    if t == "Replace":
        pat, content = spec["pattern"], spec["content"]
        if "String" in pat:
            return lambda s: s.replace(pat["String"], content)
        r = pat["Regex"]
        if len(r) >= 5 and r[1] == "{" and r.endswith(",}") and r[2:-2].isdigit():
            return lambda s: run_regex_run(s, r[0], int(r[2:-2]), content)
        raise UnsupportedError("regex " + r)
    raise UnsupportedError("normalizer " + t)


# --------------------------------------------------------- pre-tokenizers

def split_segments(s, matches):
    """matches: sorted non-overlapping (a, b) -> [(a, b, is_match)] covering s."""
    out, pos = [], 0
    for a, b in matches:
        if a > pos:
            out.append((pos, a, False))
        out.append((a, b, True))
        pos = b
    if pos < len(s):
        out.append((pos, len(s), False))
    return out


def apply_behavior(segs, behavior):
    out = []
    if behavior == "Removed":
        out = [(a, b) for a, b, m in segs if not m]
    elif behavior == "Isolated":
        out = [(a, b) for a, b, m in segs]
    elif behavior == "MergedWithPrevious":
        prev = False
        for a, b, m in segs:
            if m and not prev and out:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
            prev = m
    elif behavior == "MergedWithNext":
        prev = False
        for a, b, m in reversed(segs):
            if m and not prev and out:
                out[-1] = (a, out[-1][1])
            else:
                out.append((a, b))
            prev = m
        out.reverse()
    elif behavior == "Contiguous":
        prev = False
        for a, b, m in segs:
            if m == prev and out:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
            prev = m
    else:
        raise ValueError(behavior)
    return out


def split_by(piece, pred=None, literal=None, behavior="Isolated"):
    s, first = piece
    matches = []
    if pred is not None:
        matches = [(i, i + 1) for i, c in enumerate(s) if pred(c)]
    else:
        i = 0
        while i < len(s):
            if s.startswith(literal, i):
                matches.append((i, i + len(literal)))
                i += len(literal)
            else:
                i += 1
    return [(s[a:b], first and a == 0) for a, b in apply_behavior(split_segments(s, matches), behavior) if b > a]


def gpt2_split(s):
    """The GPT-2 pattern, alternatives tried in order at each position."""
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        e = None
        for con in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if s.startswith(con, i):
                e = i + len(con)
                break
        if e is None:
            st = i + 1 if c == " " and i + 1 < n else i
            for cls in (is_letter, is_number, lambda x: not is_ws(x) and not is_letter(x) and not is_number(x)):
                if st < n and cls(s[st]):
                    e = st
                    while e < n and cls(s[e]):
                        e += 1
                    break
        if e is None:
            r = i
            while r < n and is_ws(s[r]):
                r += 1
            # \s+(?!\S): give back one space unless at the end; else \s+
            e = r if r == n or r - 1 == i else r - 1
        out.append(s[i:e])
        i = e
    return out


def make_pre(spec):
    if spec is None:
        return lambda pieces: pieces
    t = spec["type"]
    if t == "Sequence":
        steps = [make_pre(x) for x in spec["pretokenizers"]]

        def seq(pieces):
            for f in steps:
                pieces = f(pieces)
            return pieces
        return seq

    def each(fn):
        return lambda pieces: [q for p in pieces for q in fn(p)]

    if t == "BertPreTokenizer":
        return each(lambda p: [q for w in split_by(p, is_ws, behavior="Removed")
                               for q in split_by(w, is_punct, behavior="Isolated")])
    if t == "WhitespaceSplit":
        return each(lambda p: split_by(p, is_ws, behavior="Removed"))
    if t == "Whitespace":
        def ws(p):
            s, first = p
            out, i = [], 0
            while i < len(s):
                if is_ws(s[i]):
                    i += 1
                    continue
                w = is_word(s[i])
                j = i + 1
                while j < len(s) and not is_ws(s[j]) and is_word(s[j]) == w:
                    j += 1
                out.append((s[i:j], first and i == 0))
                i = j
            return out
        return each(ws)
    if t == "Punctuation":
        return each(lambda p: split_by(p, is_punct, behavior=spec.get("behavior", "Isolated")))
    if t == "Digits":
        beh = "Isolated" if spec.get("individual_digits", False) else "Contiguous"
        return each(lambda p: split_by(p, is_number, behavior=beh))
    if t == "Split":
        if spec.get("invert"):
            raise UnsupportedError("invert")
        pat = spec["pattern"]
        if "Regex" in pat:
            if pat["Regex"] != GPT2_PATTERN:
                raise UnsupportedError("regex")

            def gs(p):
                s, first = p
                out, pos = [], 0
                for w in gpt2_split(s):
                    out.append((w, first and pos == 0))
                    pos += len(w)
                return out
            return each(gs)
        return each(lambda p: split_by(p, literal=pat["String"], behavior=spec.get("behavior", "Removed")))
    if t == "ByteLevel":
        aps, use_regex = spec.get("add_prefix_space", True), spec.get("use_regex", True)

        def bl(p):
            s, first = p
            if aps and not s.startswith(" "):
                s = " " + s
            words = gpt2_split(s) if use_regex else [s]
            out, pos = [], 0
            for w in words:
                out.append(("".join(BYTE_CHAR[b] for b in w.encode("utf-8")), first and pos == 0))
                pos += len(w)
            return [q for q in out if q[0]]
        return each(bl)
    if t == "Metaspace":
        rep = spec.get("replacement", "\u2581")
        scheme = spec.get("prepend_scheme")
        if scheme is None:
            scheme = "always" if spec.get("add_prefix_space", True) else "never"
        do_split = spec.get("split", True)

        def ms(p):
            s, first = p
            starts = s[:1] in (" ", rep)
            s = s.replace(" ", rep)
            if not starts and (scheme == "always" or (scheme == "first" and first)):
                s = rep + s
            if do_split:
                return split_by((s, first), literal=rep, behavior="MergedWithNext")
            return [(s, first)] if s else []
        return each(ms)
    raise UnsupportedError("pre-tokenizer " + t)


# ------------------------------------------------------------------ models

class WordPiece:
    def __init__(self, m):
        self.vocab = m["vocab"]
        self.unk = self.vocab[m["unk_token"]]
        self.prefix = m.get("continuing_subword_prefix", "##")
        if self.prefix is None:
            self.prefix = ""
        self.max_chars = m.get("max_input_chars_per_word", 100)

    def __call__(self, word):
        if len(word) > self.max_chars:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end, hit = len(word), None
            while end > start:
                sub = word[start:end]
                if start > 0:
                    sub = self.prefix + sub
                if sub in self.vocab:
                    hit = self.vocab[sub]
                    break
                end -= 1
            if hit is None:
                return [self.unk]
            out.append(hit)
            start = end
        return out


class BPE:
    def __init__(self, m):
        self.vocab = m["vocab"]
        self.unk = self.vocab[m["unk_token"]] if m.get("unk_token") is not None else None
        self.prefix = m.get("continuing_subword_prefix") or ""
        self.suffix = m.get("end_of_word_suffix") or ""
        self.fuse_unk = m.get("fuse_unk", False)
        self.byte_fallback = m.get("byte_fallback", False)
        self.ignore_merges = m.get("ignore_merges", False)
        self.ranks = {}
        for rank, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            tail = b[len(self.prefix):] if self.prefix and b.startswith(self.prefix) else b
            self.ranks[(self.vocab[a], self.vocab[b])] = (rank, self.vocab[a + tail])

    def __call__(self, word):
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        syms, pending = [], None
        for i, c in enumerate(word):
            s = (self.prefix if i else "") + c + (self.suffix if i == len(word) - 1 else "")
            if s in self.vocab:
                if pending is not None:
                    syms.append(pending)
                    pending = None
                syms.append(self.vocab[s])
                continue
            if self.byte_fallback:
                names = ["<0x%02X>" % b for b in c.encode("utf-8")]
                if all(x in self.vocab for x in names):
                    if pending is not None:
                        syms.append(pending)
                        pending = None
                    syms += [self.vocab[x] for x in names]
                    continue
            if self.unk is None:
                continue
            if pending is not None and not self.fuse_unk:
                syms.append(pending)
            pending = self.unk
        if pending is not None:
            syms.append(pending)
        # Repeatedly merge the lowest-ranked adjacent pair (leftmost on a tie).
        while len(syms) > 1:
            best = None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r[0] < best[0]):
                    best = (r[0], i, r[1])
            if best is None:
                break
            _, i, new = best
            syms[i:i + 2] = [new]
        return syms


class Unigram:
    def __init__(self, m):
        self.pieces = {}
        self.scores = []
        for i, (p, s) in enumerate(m["vocab"]):
            self.pieces[p] = i
            self.scores.append(float(s))
        self.unk = m.get("unk_id")
        self.byte_fallback = m.get("byte_fallback", False)
        self.unk_score = min(self.scores) - 10.0
        self.maxlen = max(len(p.encode("utf-8")) for p in self.pieces)

    def __call__(self, word):
        # Viterbi over character positions (same ties as byte positions).
        n = len(word)
        best = [None] * (n + 1)  # (score, start, id or None)
        best[0] = (0.0, 0, None)
        for s in range(n):
            if best[s] is None:
                continue
            single = False
            for e in range(s + 1, n + 1):
                piece = word[s:e]
                if len(piece.encode("utf-8")) > self.maxlen:
                    break
                pid = self.pieces.get(piece)
                if pid is None:
                    continue
                if e == s + 1:
                    single = True
                sc = best[s][0] + self.scores[pid]
                if best[e] is None or sc > best[e][0]:
                    best[e] = (sc, s, pid)
            if not single:
                sc = best[s][0] + self.unk_score
                if best[s + 1] is None or sc > best[s + 1][0]:
                    best[s + 1] = (sc, s, None)
        segs, e = [], n
        while e > 0:
            _, s, pid = best[e]
            segs.append((s, e, None if pid == self.unk else pid))
            e = s
        segs.reverse()
        fused = []
        for s, e, pid in segs:
            if pid is None and fused and fused[-1][2] is None:
                fused[-1] = (fused[-1][0], e, None)
            else:
                fused.append((s, e, pid))
        out = []
        for s, e, pid in fused:
            if pid is not None:
                out.append(pid)
            elif self.byte_fallback:
                for b in word[s:e].encode("utf-8"):
                    out.append(self.pieces.get("<0x%02X>" % b, self.unk))
            else:
                if self.unk is None:
                    raise ValueError("unknown piece and no unk_id")
                out.append(self.unk)
        return out


def make_model(m):
    t = m.get("type")
    if t is None:
        t = "Unigram" if isinstance(m["vocab"], list) else "BPE" if "merges" in m else "WordPiece"
    return {"WordPiece": WordPiece, "BPE": BPE, "Unigram": Unigram}[t](m)


# --------------------------------------------------------------- tokenizer

class Tokenizer:
    def __init__(self, spec):
        self.spec = spec
        self.normalize = make_normalizer(spec.get("normalizer"))
        self.pre = make_pre(spec.get("pre_tokenizer"))
        self.model = make_model(spec["model"])
        self.added = []
        for a in spec.get("added_tokens") or []:
            special = a.get("special", False)
            norm = a.get("normalized", not special)
            content = self.normalize(a["content"]) if norm else a["content"]
            if content:
                self.added.append(dict(a, pattern=content, normalized=norm))
        self.single, self.pair = self._templates(spec.get("post_processor"))
        tr = spec.get("truncation")
        self.trunc_max = tr["max_length"] if tr else None
        self.trunc_left = bool(tr) and tr.get("direction") == "Left"
        self.strategy = tr.get("strategy", "LongestFirst") if tr else "LongestFirst"

    @staticmethod
    def _templates(pp):
        if pp is None or pp["type"] == "ByteLevel":
            return [("A", 0)], [("A", 0), ("B", 0)]
        t = pp["type"]
        if t == "Sequence":
            rest = [p for p in pp["processors"] if p["type"] != "ByteLevel"]
            return Tokenizer._templates(rest[0] if rest else None)
        if t == "BertProcessing":
            cls, sep = [pp["cls"][1]], [pp["sep"][1]]
            return ([(cls, 0), ("A", 0), (sep, 0)], [(cls, 0), ("A", 0), (sep, 0), ("B", 1), (sep, 1)])
        if t == "RobertaProcessing":
            cls, sep = [pp["cls"][1]], [pp["sep"][1]]
            return ([(cls, 0), ("A", 0), (sep, 0)],
                    [(cls, 0), ("A", 0), (sep, 0), (sep, 0), ("B", 0), (sep, 0)])
        if t == "TemplateProcessing":
            def conv(items):
                out = []
                for it in items:
                    if "SpecialToken" in it:
                        x = it["SpecialToken"]
                        out.append((pp["special_tokens"][x["id"]]["ids"], x.get("type_id", 0)))
                    else:
                        x = it["Sequence"]
                        out.append((x["id"], x.get("type_id", 0)))
                return out
            return conv(pp["single"]), conv(pp["pair"])
        raise UnsupportedError("post-processor " + t)

    def _split_added(self, s, normalized, first, fn):
        """Leftmost-longest added-token matches of one class cut s; the text
        between goes to fn(text, first)."""
        toks = [a for a in self.added if a["normalized"] == normalized]
        out, text, i = [], 0, 0
        while i < len(s):
            hit = None
            for a in toks:
                if s.startswith(a["pattern"], i) and (hit is None or len(a["pattern"]) > len(hit["pattern"])):
                    hit = a
            if hit is None:
                i += 1
                continue
            b, e = i, i + len(hit["pattern"])
            if hit.get("single_word") and ((b > 0 and is_word(s[b - 1])) or (e < len(s) and is_word(s[e]))):
                i = e
                continue
            if hit.get("lstrip"):
                while b > text and is_ws(s[b - 1]):
                    b -= 1
            if hit.get("rstrip"):
                while e < len(s) and is_ws(s[e]):
                    e += 1
            if b > text:
                out += fn(s[text:b], first and text == 0)
            out.append(hit["id"])
            i = text = e
        if len(s) > text:
            out += fn(s[text:], first and text == 0)
        return out

    def _model_span(self, s, first):
        out = []
        for piece, _ in self.pre([(s, first)]):
            if piece:
                out += self.model(piece)
        return out

    def _normalized_span(self, s, first):
        return self._split_added(self.normalize(s), True, first, self._model_span)

    def tokenize(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8")  # raises on invalid UTF-8, as bct refuses it
        return self._split_added(text, False, True, self._normalized_span)

    def encode(self, a, b, max_len):
        tpl = self.pair if b is not None else self.single
        specials = sum(len(x) for x, _ in tpl if not isinstance(x, str))
        budget = min(max_len, self.trunc_max) if self.trunc_max else max_len
        if budget < specials:
            raise ValueError("max_len too small")
        ia = self.tokenize(a)
        ib = self.tokenize(b) if b is not None else []
        m = budget - specials
        ka, kb = len(ia), len(ib)
        if b is None:
            ka = min(ka, m)
        elif ka + kb > m:
            if self.strategy == "LongestFirst":
                n1, n2 = sorted((ka, kb))
                t2 = n1 if n1 > m else max(n1, m - n1)
                t1 = n1
                if t1 + t2 > m:
                    t1 = m // 2
                    t2 = t1 + m % 2
                ta, tb = (t2, t1) if ka > kb else (t1, t2)
                ka, kb = min(ka, ta), min(kb, tb)
            else:
                over = ka + kb - m
                if self.strategy == "OnlyFirst":
                    if ka <= over:
                        raise ValueError("first text too short")
                    ka -= over
                else:
                    if kb <= over:
                        raise ValueError("second text too short")
                    kb -= over
        if self.trunc_left:
            ia, ib = ia[len(ia) - ka:], ib[len(ib) - kb:]
        else:
            ia, ib = ia[:ka], ib[:kb]
        ids, types = [], []
        for x, t in tpl:
            part = ia if x == "A" else ib if x == "B" else x
            ids += part
            types += [t] * len(part)
        return ids, types


def load(path):
    with open(path, encoding="utf-8") as f:
        return Tokenizer(json.load(f))
