/* tok_pipeline.c - runs a tokenizer.json pipeline (tok_json_priv.h) on text.
 *
 * The reference is the Rust `tokenizers` library ("fast" tokenizers), as
 * described in ../shared/docs/tokenizers-and-formats.md and reimplemented
 * in tests/data/ref_tokenizers.py.  Character classes follow Rust:
 * whitespace is the Unicode White_Space property, lowercase is the full
 * per-character mapping, \w is letters, marks, Nd, Nl, Pc and the joiners.
 * Unicode data comes from utf8proc.
 *
 * Precompiled (SentencePiece charsmap) normalizers run the charsmap's
 * darts-clone trie with SentencePiece's longest-match rule (charsmap());
 * one without a charsmap is applied as NFKC.
 */
#include "tok_json_priv.h"
#include "tokenizer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util/utf8.h"

/* ------------------------------------------------------------ buffers */

typedef struct cpbuf {
    int32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_reserve(cpbuf *b, size_t need) {
    if (need <= b->cap) return 0;
    size_t c = b->cap ? b->cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 8) return -1;
        c *= 2;
    }
    int32_t *v = realloc(b->v, c * sizeof(*v));
    if (!v) return -1;
    b->v = v;
    b->cap = c;
    return 0;
}

static int cp_push(cpbuf *b, int32_t c) {
    if (b->n == b->cap && cp_reserve(b, b->n + 1)) return -1;
    b->v[b->n++] = c;
    return 0;
}

static int cp_append(cpbuf *b, const int32_t *s, size_t n) {
    if (cp_reserve(b, b->n + n)) return -1;
    if (n) memcpy(b->v + b->n, s, n * sizeof(*s));
    b->n += n;
    return 0;
}

static int ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, c * sizeof(*p));
        if (!p) return -1;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

/* ------------------------------------------------------- char classes */

static int cat(int32_t c) { return utf8proc_category(c); }

/* Unicode White_Space (Rust char::is_whitespace). */
static int is_ws(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_letter(int32_t c) { int k = cat(c); return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO; }
static int is_number(int32_t c) { int k = cat(c); return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO; }
static int is_mark(int32_t c) { int k = cat(c); return k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME; }

/* Regex \w. */
static int is_word(int32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    int k = cat(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || is_mark(c) || k == UTF8PROC_CATEGORY_ND ||
           k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_PC || c == 0x200C || c == 0x200D;
}

/* ASCII punctuation (symbols included) or Unicode P*. */
static int is_punct(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return 1;
    if (c < 0x80) return 0;
    int k = cat(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* C* categories (Cn included), as Rust's BertNormalizer tests them. */
static int is_other(int32_t c) {
    int k = cat(c);
    return k == UTF8PROC_CATEGORY_CN || k >= UTF8PROC_CATEGORY_CC;
}

/* The CJK blocks of tokenizers' BertNormalizer (its last range starts at
 * 0x2B920, where Google's BERT has 0x2B820). */
static int is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Full lowercase of one character; the only multi-character mapping in
 * SpecialCasing.txt that applies without context is U+0130. */
static int lower_into(cpbuf *o, int32_t c) {
    if (c == 0x130) return cp_push(o, 'i') || cp_push(o, 0x307);
    return cp_push(o, c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : utf8proc_tolower(c));
}

/* -------------------------------------------------------- normalizers */

static int utf8_of(const int32_t *s, size_t n, char **out, size_t *out_n) {
    char *b = malloc(4 * n + 1);
    if (!b) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)utf8proc_encode_char(s[i], (utf8proc_uint8_t *)b + k);
    b[k] = '\0';
    *out = b;
    *out_n = k;
    return 0;
}

/* Unicode normal form by utf8proc on the UTF-8 form. */
static int unicode_nf(cpbuf *o, const int32_t *s, size_t n, utf8proc_option_t opt) {
    char *u;
    size_t un;
    if (utf8_of(s, n, &u, &un)) return -1;
    utf8proc_int32_t *buf = NULL;
    utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)un, NULL, 0, opt);
    int rc = -1;
    if (r >= 0 && (buf = malloc(((size_t)r + 1) * sizeof(*buf)))) {
        r = utf8proc_decompose((const utf8proc_uint8_t *)u, (utf8proc_ssize_t)un, buf, r, opt);
        if (r >= 0 && (opt & UTF8PROC_COMPOSE)) r = utf8proc_normalize_utf32(buf, r, opt);
        if (r >= 0) rc = cp_append(o, buf, (size_t)r);
    }
    free(buf);
    free(u);
    return rc;
}

/* Longest rule of the darts-clone trie matching a prefix of k[0..n):
 * returns its length (0: none) and *value, the replacement's pool offset.
 * Unit fields as darts-clone packs them; indexes are bounds-checked. */
static size_t trie_longest(const tj_norm *st, const uint8_t *k, size_t n, uint32_t *value) {
    const uint32_t *u = st->units;
    size_t nu = st->n_units, best = 0;
#define OFFSET(x) (((x) >> 10) << (((x) & (1u << 9)) >> 6))
    size_t pos = OFFSET(u[0]);
    for (size_t i = 0; i < n; i++) {
        pos ^= k[i];
        if (pos >= nu) break;
        uint32_t x = u[pos];
        if ((x & 0x800000FFu) != k[i]) break;
        pos ^= OFFSET(x);
        if (pos >= nu) break;
        if ((x >> 8) & 1) { /* has a leaf: the unit at pos holds the value */
            best = i + 1;
            *value = u[pos] & 0x7FFFFFFFu;
        }
    }
#undef OFFSET
    return best;
}

/* SentencePiece's normalizer: at each position the longest rule replaces
 * its bytes; otherwise one character is copied.  (tokenizers tries whole
 * grapheme clusters first; results differ only where a rule spans part of
 * a cluster.) */
static int charsmap(const tj_norm *st, const int32_t *s, size_t n, cpbuf *o) {
    char *u;
    size_t un;
    if (utf8_of(s, n, &u, &un)) return -1;
    int rc = 0;
    for (size_t i = 0; i < un && !rc;) {
        uint32_t v = 0;
        size_t len = trie_longest(st, (const uint8_t *)u + i, un - i, &v);
        if (!len || (v >= st->pool_n)) {
            utf8proc_int32_t c;
            i += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)u + i, (utf8proc_ssize_t)(un - i), &c);
            rc = cp_push(o, c);
            continue;
        }
        /* A rule may end inside a character: then it covers the whole one. */
        i += len;
        while (i < un && ((uint8_t)u[i] & 0xC0) == 0x80) i++;
        const char *r = st->pool + v;
        for (size_t p = 0, rl = strlen(r); p < rl && !rc;) {
            utf8proc_int32_t c;
            p += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)r + p, (utf8proc_ssize_t)(rl - p), &c);
            rc = cp_push(o, c);
        }
    }
    free(u);
    return rc;
}

static int norm_step(const tj_norm *st, const int32_t *s, size_t n, cpbuf *o) {
    switch (st->kind) {
    case TJN_BERT: {
        cpbuf a = {0}, b = {0};
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            int32_t c = s[i];
            if (st->clean) {
                if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && is_other(c))) continue;
                if (is_ws(c)) c = ' ';
            }
            if (st->chinese && is_cjk(c))
                rc = cp_push(&a, ' ') || cp_push(&a, c) || cp_push(&a, ' ');
            else
                rc = cp_push(&a, c);
        }
        if (!rc && st->strip_accents) {
            rc = unicode_nf(&b, a.v, a.n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
            size_t k = 0;
            for (size_t i = 0; !rc && i < b.n; i++)
                if (cat(b.v[i]) != UTF8PROC_CATEGORY_MN) b.v[k++] = b.v[i];
            b.n = k;
            free(a.v);
            a = b;
        }
        for (size_t i = 0; i < a.n && !rc; i++) rc = st->lower ? lower_into(o, a.v[i]) : cp_push(o, a.v[i]);
        free(a.v);
        return rc;
    }
    case TJN_NFC: return unicode_nf(o, s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case TJN_NFD: return unicode_nf(o, s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case TJN_PRECOMPILED:
        if (st->units) return charsmap(st, s, n, o);
        return unicode_nf(o, s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case TJN_NFKC: return unicode_nf(o, s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case TJN_NFKD: return unicode_nf(o, s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case TJN_LOWER:
        for (size_t i = 0; i < n; i++)
            if (lower_into(o, s[i])) return -1;
        return 0;
    case TJN_STRIP_ACCENTS:
        for (size_t i = 0; i < n; i++)
            if (!is_mark(s[i]) && cp_push(o, s[i])) return -1;
        return 0;
    case TJN_STRIP: {
        size_t a = 0, b = n;
        if (st->left)
            while (a < b && is_ws(s[a])) a++;
        if (st->right)
            while (b > a && is_ws(s[b - 1])) b--;
        return cp_append(o, s + a, b - a);
    }
    case TJN_PREPEND:
        if (n && (cp_append(o, st->rep, st->rep_n))) return -1;
        return cp_append(o, s, n);
    case TJN_REPLACE:
        for (size_t i = 0; i < n;) {
            if (st->left) { /* run of >= left copies of pat[0] */
                size_t e = i;
                while (e < n && s[e] == st->pat[0]) e++;
                if (e - i >= (size_t)st->left) {
                    if (cp_append(o, st->rep, st->rep_n)) return -1;
                    i = e;
                    continue;
                }
                if (cp_append(o, s + i, e > i ? e - i : 1)) return -1;
                i = e > i ? e : i + 1;
                continue;
            }
            if (i + st->pat_n <= n && memcmp(s + i, st->pat, st->pat_n * sizeof(int32_t)) == 0) {
                if (cp_append(o, st->rep, st->rep_n)) return -1;
                i += st->pat_n;
            } else if (cp_push(o, s[i++])) {
                return -1;
            }
        }
        return 0;
    }
    return -1;
}

int tjson_normalize(const tjson *j, const int32_t *cps, size_t n, int32_t **out, size_t *out_n) {
    cpbuf cur = {0};
    if (cp_append(&cur, cps, n)) return -1;
    for (int i = 0; i < j->n_norm; i++) {
        cpbuf next = {0};
        if (norm_step(&j->norm[i], cur.v, cur.n, &next)) {
            free(cur.v);
            free(next.v);
            return -1;
        }
        free(cur.v);
        cur = next;
    }
    *out = cur.v;
    *out_n = cur.n;
    if (!cur.v) *out = malloc(sizeof(int32_t)); /* empty, but still a buffer to free */
    return *out ? 0 : -1;
}

/* ----------------------------------------------------- pre-tokenizers */

/* Pieces: offsets into one code point pool, plus "first" (starts the text;
 * Metaspace's prepend_scheme "first"). */
typedef struct plist {
    cpbuf pool;
    size_t *off, *len;
    uint8_t *first;
    size_t n, cap;
} plist;

static void plist_free(plist *p) {
    free(p->pool.v);
    free(p->off);
    free(p->len);
    free(p->first);
}

static int plist_add(plist *p, const int32_t *s, size_t n, int first) {
    if (!n) return 0;
    if (p->n == p->cap) {
        size_t c = p->cap ? p->cap * 2 : 16;
        size_t *o = realloc(p->off, c * sizeof(*o));
        if (!o) return -1;
        p->off = o;
        size_t *l = realloc(p->len, c * sizeof(*l));
        if (!l) return -1;
        p->len = l;
        uint8_t *f = realloc(p->first, c);
        if (!f) return -1;
        p->first = f;
        p->cap = c;
    }
    size_t at = p->pool.n;
    if (cp_append(&p->pool, s, n)) return -1;
    p->off[p->n] = at;
    p->len[p->n] = n;
    p->first[p->n++] = (uint8_t)first;
    return 0;
}

/* Segments [start, end) with a match flag covering a piece in order;
 * applies a split behavior the way tokenizers' NormalizedString::split
 * does, then adds the non-empty results. */
typedef struct seg {
    size_t a, b;
    int m;
} seg;

static int apply_behavior(plist *out, const int32_t *s, seg *g, size_t ng, enum tj_split_behavior bh, int first) {
    size_t k = 0;
    int prev = 0;
    switch (bh) {
    case TJB_REMOVED:
        for (size_t i = 0; i < ng; i++)
            if (!g[i].m) g[k++] = g[i];
        break;
    case TJB_ISOLATED: k = ng; break;
    case TJB_MERGED_PREV:
        for (size_t i = 0; i < ng; i++) {
            if (g[i].m && !prev && k)
                g[k - 1].b = g[i].b;
            else
                g[k++] = g[i];
            prev = g[i].m;
        }
        break;
    case TJB_MERGED_NEXT: /* right to left, merging a match into what follows */
        for (size_t i = ng; i-- > 0;) {
            seg x = g[i];
            if (x.m && !prev && k)
                g[ng - k].a = x.a;
            else
                g[ng - ++k] = x;
            prev = x.m;
        }
        memmove(g, g + ng - k, k * sizeof(*g));
        break;
    case TJB_CONTIGUOUS:
        for (size_t i = 0; i < ng; i++) {
            if (g[i].m == prev && k)
                g[k - 1].b = g[i].b;
            else
                g[k++] = g[i];
            prev = g[i].m;
        }
        break;
    }
    for (size_t i = 0; i < k; i++)
        if (plist_add(out, s + g[i].a, g[i].b - g[i].a, first && g[i].a == 0)) return -1;
    return 0;
}

/* Splits piece s[0..n) where pred(c) holds (each such char is a match),
 * or at the literal pattern pat (non-overlapping, left to right). */
static int split_piece(plist *out, const int32_t *s, size_t n, int (*pred)(int32_t), const int32_t *pat,
                       size_t pat_n, enum tj_split_behavior bh, int first) {
    seg *g = malloc((2 * n + 1) * sizeof(*g));
    if (!g) return -1;
    size_t ng = 0, run = 0;
    for (size_t i = 0; i < n;) {
        size_t ml = 0;
        if (pred)
            ml = pred(s[i]) ? 1 : 0;
        else if (i + pat_n <= n && memcmp(s + i, pat, pat_n * sizeof(int32_t)) == 0)
            ml = pat_n;
        if (!ml) {
            i++;
            continue;
        }
        if (i > run) g[ng++] = (seg){run, i, 0};
        g[ng++] = (seg){i, i + ml, 1};
        i += ml;
        run = i;
    }
    if (n > run) g[ng++] = (seg){run, n, 0};
    int rc = apply_behavior(out, s, g, ng, bh, first);
    free(g);
    return rc;
}

size_t tjson_gpt2_split(const int32_t *s, size_t n, size_t *ends) {
    size_t ne = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        int32_t c = s[i];
        if (c == '\'' && i + 1 < n) { /* 's 't 're 've 'm 'll 'd */
            int32_t d = s[i + 1], f = i + 2 < n ? s[i + 2] : 0;
            if (d == 's' || d == 't' || d == 'm' || d == 'd')
                e = i + 2;
            else if ((d == 'r' && f == 'e') || (d == 'v' && f == 'e') || (d == 'l' && f == 'l'))
                e = i + 3;
        }
        size_t st = c == ' ' && i + 1 < n ? i + 1 : i; /* the optional leading space */
        if (e == i && st < n && is_letter(s[st])) {
            for (e = st; e < n && is_letter(s[e]); e++) {}
        } else if (e == i && st < n && is_number(s[st])) {
            for (e = st; e < n && is_number(s[e]); e++) {}
        } else if (e == i && st < n && !is_ws(s[st]) && !is_letter(s[st]) && !is_number(s[st])) {
            for (e = st; e < n && !is_ws(s[e]) && !is_letter(s[e]) && !is_number(s[e]); e++) {}
        } else if (e == i) { /* whitespace: \s+(?!\S) then \s+ */
            size_t r = i;
            while (r < n && is_ws(s[r])) r++;
            e = r == n || r - 1 == i ? r : r - 1;
        }
        ends[ne++] = e;
        i = e;
    }
    return ne;
}

/* bytes_to_unicode of GPT-2: printable bytes map to themselves, the other
 * 68 (0x00-0x20, 0x7F-0xA0, 0xAD) to U+0100.. in byte order. */
static int32_t byte_char(unsigned b) {
    if (b <= 0x20) return 0x100 + (int32_t)b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (int32_t)(b - 0x7F);
    if (b == 0xAD) return 0x100 + 67;
    return (int32_t)b;
}

static int bytelevel_add(plist *out, const int32_t *s, size_t n, int first) {
    cpbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        uint8_t u[4];
        utf8proc_ssize_t k = utf8proc_encode_char(s[i], u);
        for (utf8proc_ssize_t x = 0; x < k; x++)
            if (cp_push(&b, byte_char(u[x]))) {
                free(b.v);
                return -1;
            }
    }
    int rc = plist_add(out, b.v, b.n, first);
    free(b.v);
    return rc;
}

static int is_digit_pred(int32_t c) { return is_number(c); }
static int is_ws_pred(int32_t c) { return is_ws(c); }

static int pre_step(const tj_pre *p, const int32_t *s, size_t n, int first, plist *out) {
    switch (p->kind) {
    case TJP_BERT: {
        plist tmp = {0};
        int rc = split_piece(&tmp, s, n, is_ws_pred, NULL, 0, TJB_REMOVED, first);
        for (size_t i = 0; !rc && i < tmp.n; i++)
            rc = split_piece(out, tmp.pool.v + tmp.off[i], tmp.len[i], is_punct, NULL, 0, TJB_ISOLATED, tmp.first[i]);
        plist_free(&tmp);
        return rc;
    }
    case TJP_WS_SPLIT: return split_piece(out, s, n, is_ws_pred, NULL, 0, TJB_REMOVED, first);
    case TJP_PUNCT: return split_piece(out, s, n, is_punct, NULL, 0, p->behavior, first);
    case TJP_DIGITS:
        return split_piece(out, s, n, is_digit_pred, NULL, 0, p->split ? TJB_ISOLATED : TJB_CONTIGUOUS, first);
    case TJP_SPLIT: return split_piece(out, s, n, NULL, p->pat, p->pat_n, p->behavior, first);
    case TJP_WHITESPACE: /* \w+|[^\w\s]+ */
        for (size_t i = 0; i < n;) {
            if (is_ws(s[i])) {
                i++;
                continue;
            }
            int w = is_word(s[i]);
            size_t e = i + 1;
            while (e < n && !is_ws(s[e]) && is_word(s[e]) == w) e++;
            if (plist_add(out, s + i, e - i, first && i == 0)) return -1;
            i = e;
        }
        return 0;
    case TJP_GPT2:
    case TJP_BYTELEVEL: {
        cpbuf t = {0};
        int rc = 0;
        if (p->kind == TJP_BYTELEVEL && p->add_prefix_space && !(n && s[0] == ' ')) rc = cp_push(&t, ' ');
        rc = rc || cp_append(&t, s, n);
        size_t *ends = rc ? NULL : malloc((t.n + 1) * sizeof(size_t));
        if (!ends) {
            free(t.v);
            return -1;
        }
        size_t ne = 1;
        ends[0] = t.n;
        if (p->kind == TJP_GPT2 || p->use_regex) ne = tjson_gpt2_split(t.v, t.n, ends);
        size_t a = 0;
        for (size_t i = 0; !rc && i < ne; a = ends[i++]) {
            if (p->kind == TJP_GPT2) /* a Split step: pieces stay text */
                rc = plist_add(out, t.v + a, ends[i] - a, first && a == 0);
            else
                rc = bytelevel_add(out, t.v + a, ends[i] - a, first && a == 0);
        }
        free(ends);
        free(t.v);
        return rc;
    }
    case TJP_METASPACE: {
        cpbuf t = {0};
        int rc = 0;
        int starts = n && (s[0] == ' ' || s[0] == p->replacement);
        if (!starts && (p->prepend == TJ_PREPEND_ALWAYS || (p->prepend == TJ_PREPEND_FIRST && first)))
            rc = cp_push(&t, p->replacement);
        for (size_t i = 0; !rc && i < n; i++) rc = cp_push(&t, s[i] == ' ' ? p->replacement : s[i]);
        if (!rc) {
            if (p->split)
                rc = split_piece(out, t.v, t.n, NULL, &p->replacement, 1, TJB_MERGED_NEXT, first);
            else
                rc = plist_add(out, t.v, t.n, first);
        }
        free(t.v);
        return rc;
    }
    }
    return -1;
}

/* -------------------------------------------------------------- models */

/* One pre-token as UTF-8 with the byte offset of each code point. */
typedef struct word {
    char *b;
    size_t nb, *off, n;
} word;

static int word_of(const int32_t *s, size_t n, word *w) {
    w->b = malloc(4 * n + TJ_MAX_TOKEN_BYTES + 8);
    w->off = malloc((n + 1) * sizeof(size_t));
    if (!w->b || !w->off) return -1;
    w->nb = 0;
    for (size_t i = 0; i < n; i++) {
        w->off[i] = w->nb;
        w->nb += (size_t)utf8proc_encode_char(s[i], (utf8proc_uint8_t *)w->b + w->nb);
    }
    w->off[n] = w->nb;
    w->n = n;
    return 0;
}

typedef struct out_ids {
    int32_t **ids;
    size_t *n, *cap;
} out_ids;

static int emit(out_ids *o, int32_t id) { return ids_push(o->ids, o->n, o->cap, id); }

static int wordpiece(const tj_model *m, const word *w, out_ids *o) {
    if (w->n > (size_t)m->max_word_chars) return emit(o, m->unk);
    size_t first = *o->n;
    char *buf = malloc(m->prefix_n + w->nb + 1);
    if (!buf) return -1;
    for (size_t start = 0; start < w->n;) {
        int32_t id = -1;
        size_t end = start, pre = start ? m->prefix_n : 0;
        /* Longest candidate first, starting at the longest vocab entry. */
        while (end < w->n && pre + w->off[end + 1] - w->off[start] <= m->max_piece_bytes) end++;
        for (; end > start; end--) {
            size_t len = w->off[end] - w->off[start];
            if (pre) memcpy(buf, m->prefix, pre);
            memcpy(buf + pre, w->b + w->off[start], len);
            if ((id = tj_map_get(&m->vocab, buf, pre + len)) >= 0) break;
        }
        if (id < 0) {
            free(buf);
            *o->n = first; /* the whole word is one unknown */
            return emit(o, m->unk);
        }
        if (emit(o, id)) {
            free(buf);
            return -1;
        }
        start = end;
    }
    free(buf);
    return 0;
}

static const tj_merge *merge_get(const tj_model *m, int32_t a, int32_t b) {
    uint64_t key = tj_merge_key(a, b);
    size_t i = tj_merge_slot(key, m->merge_mask);
    for (; m->merges[i].key; i = (i + 1) & m->merge_mask)
        if (m->merges[i].key == key) return &m->merges[i];
    return NULL;
}

/* Min-heap entry: the pair starting at symbol pos, ordered by (rank, pos)
 * as tokenizers' priority queue orders its merges. */
typedef struct hent {
    int32_t rank, pos, id;
} hent;

static int hless(hent a, hent b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void hpush(hent *h, size_t *n, hent e) {
    size_t i = (*n)++;
    for (; i && hless(e, h[(i - 1) / 2]); i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
    h[i] = e;
}

static hent hpop(hent *h, size_t *n) {
    hent top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && hless(h[c + 1], h[c])) c++;
        if (!hless(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static int bpe(const tj_model *m, const word *w, out_ids *o) {
    if (m->ignore_merges) {
        int32_t id = tj_map_get(&m->vocab, w->b, w->nb);
        if (id >= 0) return emit(o, id);
    }
    size_t n = w->n;
    int32_t *sym = malloc((4 * n + 1) * sizeof(int32_t)), *nx = malloc((4 * n + 1) * sizeof(int32_t)),
            *pv = malloc((4 * n + 1) * sizeof(int32_t));
    hent *heap = malloc((4 * n + 1) * 2 * sizeof(hent));
    char *buf = malloc(m->prefix_n + m->suffix_n + 8);
    int rc = -1;
    if (!sym || !nx || !pv || !heap || !buf) goto done;
    size_t ns = 0;
    int32_t unk_run = -1; /* a pending (fused) unknown */
    for (size_t i = 0; i < n; i++) {
        size_t pre = i ? m->prefix_n : 0, suf = i + 1 == n ? m->suffix_n : 0, cl = w->off[i + 1] - w->off[i];
        if (pre) memcpy(buf, m->prefix, pre);
        memcpy(buf + pre, w->b + w->off[i], cl);
        if (suf) memcpy(buf + pre + cl, m->suffix, suf);
        int32_t id = tj_map_get(&m->vocab, buf, pre + cl + suf);
        if (id >= 0) {
            if (unk_run >= 0) sym[ns++] = unk_run;
            unk_run = -1;
            sym[ns++] = id;
            continue;
        }
        if (m->byte_fallback) {
            int all = 1;
            for (size_t k = 0; k < cl; k++) all &= m->byte_ids[(uint8_t)w->b[w->off[i] + k]] >= 0;
            if (all) {
                if (unk_run >= 0) sym[ns++] = unk_run;
                unk_run = -1;
                for (size_t k = 0; k < cl; k++) sym[ns++] = m->byte_ids[(uint8_t)w->b[w->off[i] + k]];
                continue;
            }
        }
        if (m->unk < 0) continue; /* no unk token: the character is dropped */
        if (unk_run >= 0 && !m->fuse_unk) sym[ns++] = unk_run;
        unk_run = m->unk;
    }
    if (unk_run >= 0) sym[ns++] = unk_run;
    size_t hn = 0;
    for (size_t i = 0; i < ns; i++) {
        nx[i] = i + 1 < ns ? (int32_t)i + 1 : -1;
        pv[i] = (int32_t)i - 1;
        const tj_merge *g = i + 1 < ns ? merge_get(m, sym[i], sym[i + 1]) : NULL;
        if (g) hpush(heap, &hn, (hent){g->rank, (int32_t)i, g->id});
    }
    while (hn) {
        hent t = hpop(heap, &hn);
        int32_t p = t.pos, q = nx[p];
        if (sym[p] < 0 || q < 0) continue; /* removed, or last */
        const tj_merge *g = merge_get(m, sym[p], sym[q]);
        if (!g || g->rank != t.rank || g->id != t.id) continue; /* stale */
        sym[p] = t.id;
        sym[q] = -1;
        nx[p] = nx[q];
        if (nx[q] >= 0) pv[nx[q]] = p;
        if (pv[p] >= 0 && (g = merge_get(m, sym[pv[p]], sym[p]))) hpush(heap, &hn, (hent){g->rank, pv[p], g->id});
        if (nx[p] >= 0 && (g = merge_get(m, sym[p], sym[nx[p]]))) hpush(heap, &hn, (hent){g->rank, p, g->id});
    }
    rc = 0;
    for (int32_t i = ns ? 0 : -1; i >= 0 && !rc; i = nx[i]) rc = emit(o, sym[i]);
done:
    free(sym);
    free(nx);
    free(pv);
    free(heap);
    free(buf);
    return rc;
}

/* Viterbi over byte positions of the word (sentencepiece's
 * EncodeOptimized): best[e] = max over pieces text[s..e) of best[s] +
 * score; a tie keeps the earlier start.  A character no single piece
 * covers gets an unknown edge scored unk_score. */
static int unigram(const tj_model *m, const word *w, out_ids *o, int *no_unk) {
    size_t nb = w->nb;
    double *best = malloc((nb + 1) * sizeof(double));
    int32_t *from = malloc((nb + 1) * sizeof(int32_t)), *tid = malloc((nb + 1) * sizeof(int32_t));
    size_t *st = malloc((nb + 1) * sizeof(size_t)), *en = malloc((nb + 1) * sizeof(size_t));
    int32_t *kid = malloc((nb + 1) * sizeof(int32_t));
    int rc = -1;
    if (!best || !from || !tid || !st || !en || !kid) goto done;
    for (size_t i = 0; i <= nb; i++) from[i] = -1;
    best[0] = 0;
    from[0] = 0;
    for (size_t ci = 0; ci < w->n; ci++) {
        size_t s = w->off[ci];
        if (from[s] < 0) continue; /* unreachable (cannot happen: unk edges) */
        int single = 0;
        for (size_t ce = ci + 1; ce <= w->n; ce++) {
            size_t e = w->off[ce];
            if (e - s > m->max_piece_bytes) break;
            int32_t id = tj_map_get(&m->vocab, w->b + s, e - s);
            if (id < 0) continue;
            if (ce == ci + 1) single = 1;
            double sc = best[s] + m->scores[id];
            if (from[e] < 0 || sc > best[e]) {
                best[e] = sc;
                from[e] = (int32_t)s;
                tid[e] = id;
            }
        }
        if (!single) {
            size_t e = w->off[ci + 1];
            double sc = best[s] + m->unk_score;
            if (from[e] < 0 || sc > best[e]) {
                best[e] = sc;
                from[e] = (int32_t)s;
                tid[e] = -1;
            }
        }
    }
    /* Backtrack into pieces [st, en) with ids (-1 unknown), reversed. */
    size_t k = 0;
    for (size_t e = nb; e > 0; e = (size_t)from[e]) {
        st[k] = (size_t)from[e];
        en[k] = e;
        kid[k++] = tid[e] >= 0 && tid[e] == m->unk ? -1 : tid[e];
    }
    rc = 0;
    for (size_t i = k; i-- > 0 && !rc;) {
        if (kid[i] >= 0) {
            rc = emit(o, kid[i]);
            continue;
        }
        size_t a = st[i], b = en[i];
        while (m->fuse_unk && i > 0 && kid[i - 1] < 0) b = en[--i]; /* fuse adjacent unknowns */
        if (m->byte_fallback) {
            for (size_t x = a; x < b && !rc; x++) {
                int32_t id = m->byte_ids[(uint8_t)w->b[x]];
                rc = emit(o, id >= 0 ? id : m->unk);
                if (id < 0 && m->unk < 0) *no_unk = 1;
            }
        } else {
            if (m->unk < 0) *no_unk = 1;
            rc = emit(o, m->unk);
        }
    }
done:
    free(best);
    free(from);
    free(tid);
    free(st);
    free(en);
    free(kid);
    return rc;
}

/* ----------------------------------------------------- added tokens */

/* Longest added token (of class `normalized`) matching s at i, or -1. */
static int added_at(const tjson *j, const int32_t *s, size_t n, size_t i, int normalized) {
    int best = -1, lo = 0, hi = j->n_added;
    while (lo < hi) { /* first token whose first character is >= s[i] (sorted at load) */
        int mid = lo + (hi - lo) / 2;
        if (j->added[mid].cps[0] < s[i])
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int k = lo; k < j->n_added && j->added[k].cps[0] == s[i]; k++) {
        const tj_added *a = &j->added[k];
        if ((a->normalized != 0) != normalized || a->n > n - i) continue;
        if (best >= 0 && a->n <= j->added[best].n) continue;
        if (memcmp(a->cps, s + i, a->n * sizeof(int32_t)) == 0) best = k;
    }
    return best;
}

typedef int (*span_fn)(const tjson *j, const int32_t *s, size_t n, int first, out_ids *o, int *no_unk);

/* Cuts s[0..n) at the added tokens of one class: text between them goes
 * to fn, the tokens' ids straight to the output. */
static int split_added(const tjson *j, const int32_t *s, size_t n, int normalized, int first, span_fn fn,
                       out_ids *o, int *no_unk) {
    size_t text = 0; /* start of the pending text */
    for (size_t i = 0; i < n;) {
        int k = j->n_added ? added_at(j, s, n, i, normalized) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        const tj_added *a = &j->added[k];
        size_t b = i, e = i + a->n;
        if (a->single_word && ((b > 0 && is_word(s[b - 1])) || (e < n && is_word(s[e])))) {
            i = e; /* not a word of its own: stays text */
            continue;
        }
        if (a->lstrip)
            while (b > text && is_ws(s[b - 1])) b--;
        if (a->rstrip)
            while (e < n && is_ws(s[e])) e++;
        int rc = b > text ? fn(j, s + text, b - text, first && text == 0, o, no_unk) : 0;
        if (rc || emit(o, a->id)) return -1;
        i = text = e;
    }
    return n > text ? fn(j, s + text, n - text, first && text == 0, o, no_unk) : 0;
}

static int model_span(const tjson *j, const int32_t *s, size_t n, int first, out_ids *o, int *no_unk) {
    plist cur = {0};
    int rc = plist_add(&cur, s, n, first);
    for (int i = 0; !rc && i < j->n_pre; i++) {
        plist next = {0};
        for (size_t p = 0; !rc && p < cur.n; p++)
            rc = pre_step(&j->pre[i], cur.pool.v + cur.off[p], cur.len[p], cur.first[p], &next);
        plist_free(&cur);
        cur = next;
    }
    for (size_t p = 0; !rc && p < cur.n; p++) {
        word w = {0};
        rc = word_of(cur.pool.v + cur.off[p], cur.len[p], &w);
        if (!rc) {
            if (j->model.kind == TJM_WORDPIECE)
                rc = wordpiece(&j->model, &w, o);
            else if (j->model.kind == TJM_BPE)
                rc = bpe(&j->model, &w, o);
            else
                rc = unigram(&j->model, &w, o, no_unk);
        }
        free(w.b);
        free(w.off);
    }
    plist_free(&cur);
    return rc;
}

static int normalized_span(const tjson *j, const int32_t *s, size_t n, int first, out_ids *o, int *no_unk) {
    int32_t *ns;
    size_t nn;
    if (tjson_normalize(j, s, n, &ns, &nn)) return -1;
    int rc = split_added(j, ns, nn, 1, first, model_span, o, no_unk);
    free(ns);
    return rc;
}

int tjson_tokenize(const tjson *j, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap,
                   bct_error *err) {
    if (len && !text) return bct_fail(err, BCT_EINVAL, "text is NULL");
    size_t bad = utf8_find_invalid((const uint8_t *)text, len, 0, NULL);
    if (bad < len)
        return bct_fail(err, BCT_EINVAL, "text is not valid UTF-8 (bad byte sequence at byte offset %zu)", bad);
    int32_t *cps = malloc((len ? len : 1) * sizeof(int32_t));
    if (!cps) return bct_fail(err, BCT_ENOMEM, "out of memory tokenizing a text of %zu bytes", len);
    size_t nc = 0;
    for (size_t p = 0; p < len;) {
        utf8proc_int32_t c;
        p += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)text + p, (utf8proc_ssize_t)(len - p), &c);
        cps[nc++] = c;
    }
    out_ids o = {ids, n, cap};
    int no_unk = 0;
    int rc = split_added(j, cps, nc, 0, 1, normalized_span, &o, &no_unk);
    free(cps);
    if (rc) return bct_fail(err, BCT_ENOMEM, "out of memory tokenizing a text of %zu bytes", len);
    if (no_unk) return bct_fail(err, BCT_EINVAL, "text has characters the vocab lacks, and the model has no unk_id");
    return BCT_OK;
}

/* -------------------------------------------- template and truncation */

/* Rust tokenizers' longest_first: with n1 <= n2 and budget m, the longer
 * side first gives up what the shorter does not need; if both are still
 * over, each gets half (the longer one the odd token). */
static void longest_first(size_t na, size_t nb, size_t m, size_t *ka, size_t *kb) {
    *ka = na;
    *kb = nb;
    if (na + nb <= m) return;
    int swap = na > nb;
    size_t n1 = swap ? nb : na, n2;
    n2 = n1 > m ? n1 : (n1 > m - n1 ? n1 : m - n1);
    if (n1 + n2 > m) {
        n1 = m / 2;
        n2 = n1 + m % 2;
    }
    size_t ta = swap ? n2 : n1, tb = swap ? n1 : n2;
    if (*ka > ta) *ka = ta;
    if (*kb > tb) *kb = tb;
}

int tjson_encode(const tjson *j, const char *a, size_t alen, const char *b, size_t blen, int max_len,
                 tok_encoding *out, bct_error *err) {
    const tj_item *tpl = b ? j->pair : j->single;
    int nt = b ? j->n_pair : j->n_single, specials = b ? j->specials_pair : j->specials_single;
    int budget = j->trunc_max && j->trunc_max < max_len ? j->trunc_max : max_len;
    if (budget < specials || budget < 1)
        return bct_fail(err, BCT_EINVAL, "max_len %d is too small (the template adds %d special tokens)", budget,
                        specials);
    if (!out->ids || !out->type_ids || out->cap < max_len)
        return bct_fail(err, BCT_EINVAL, "output arrays hold %d tokens, less than max_len %d", out->cap, max_len);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = tjson_tokenize(j, a, alen, &ids, &n, &cap, err);
    if (rc != BCT_OK && b) bct_fail_prefix(err, rc, "first text");
    size_t na = n;
    if (rc == BCT_OK && b) {
        rc = tjson_tokenize(j, b, blen, &ids, &n, &cap, err);
        if (rc != BCT_OK) bct_fail_prefix(err, rc, "second text");
    }
    if (rc != BCT_OK) goto done;
    size_t nb = n - na, total = n + (size_t)specials, m = (size_t)(budget - specials), ka = na, kb = nb;
    if (total > INT_MAX) {
        rc = bct_fail(err, BCT_ERANGE, "text has %zu tokens, too many to count", total);
        goto done;
    }
    out->untruncated = (int)total;
    if (!b) {
        if (ka > m) ka = m;
    } else if (j->trunc_strategy == TJT_LONGEST_FIRST) {
        longest_first(na, nb, m, &ka, &kb);
    } else if (na + nb > m) {
        size_t over = na + nb - m, *k = j->trunc_strategy == TJT_ONLY_FIRST ? &ka : &kb;
        if (*k <= over) {
            rc = bct_fail(err, BCT_EINVAL, "the %s text is too short to truncate to max_len %d",
                          k == &ka ? "first" : "second", budget);
            goto done;
        }
        *k -= over;
    }
    /* Right truncation keeps the first tokens of a side, left the last. */
    size_t from_a = j->trunc_left ? na - ka : 0, from_b = na + (j->trunc_left ? nb - kb : 0);
    int len = 0;
    for (int i = 0; i < nt; i++) {
        const tj_item *it = &tpl[i];
        if (it->seq == 0) {
            for (int x = 0; x < it->n_ids; x++) {
                out->ids[len] = it->ids[x];
                out->type_ids[len++] = (uint8_t)it->type_id;
            }
            continue;
        }
        size_t from = it->seq == 1 ? from_a : from_b, cnt = it->seq == 1 ? ka : kb;
        for (size_t x = 0; x < cnt; x++) {
            out->ids[len] = ids[from + x];
            out->type_ids[len++] = (uint8_t)it->type_id;
        }
    }
    out->len = len;
done:
    free(ids);
    return rc;
}
