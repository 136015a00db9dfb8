/* tok_json.c - tokenizer.json (Hugging Face `tokenizers` 1.0 layout) into
 * the step arrays of tok_json_priv.h.
 *
 * The file is untrusted: its size, nesting depth, vocabulary size and token
 * lengths are bounded (TJ_MAX_*), every field is type-checked, and every
 * error names the field ("model.merges[12]: ...").  Unknown keys are
 * ignored, as the Rust library does; unknown component types are refused
 * (BCT_EUNSUPPORTED) rather than silently skipped, since skipping a
 * normalizer would give wrong ids without any sign.
 */
#include "tok_json_priv.h"
#include "tokenizer.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util/utf8.h"

/* ------------------------------------------------------------------ map */

static uint32_t fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int map_grow(tj_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    size_t *off = realloc(m->off, cap * sizeof(*off));
    if (!off) return -1;
    m->off = off;
    uint32_t *len = realloc(m->len, cap * sizeof(*len));
    if (!len) return -1;
    m->len = len;
    int32_t *val = realloc(m->val, cap * sizeof(*val));
    if (!val) return -1;
    m->val = val;
    int32_t *slots = malloc(cap * 2 * sizeof(*slots)); /* load factor <= 0.5 */
    if (!slots) return -1;
    memset(slots, 0xff, cap * 2 * sizeof(*slots));
    m->mask = cap * 2 - 1;
    for (size_t e = 0; e < m->n; e++) {
        size_t s = fnv(m->pool + m->off[e], m->len[e]) & m->mask;
        while (slots[s] >= 0) s = (s + 1) & m->mask;
        slots[s] = (int32_t)e;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int32_t tj_map_get(const tj_map *m, const char *s, size_t len) {
    if (!m->n) return -1;
    for (size_t i = fnv(s, len) & m->mask;; i = (i + 1) & m->mask) {
        int32_t e = m->slots[i];
        if (e < 0) return -1;
        if (m->len[e] == len && memcmp(m->pool + m->off[e], s, len) == 0) return m->val[e];
    }
}

int tj_map_put(tj_map *m, const char *s, size_t len, int32_t val) {
    if (m->n && tj_map_get(m, s, len) >= 0) return 1;
    if (m->n == m->cap && map_grow(m)) return -1;
    if (m->pool_n + len > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap < m->pool_n + len) cap *= 2;
        char *p = realloc(m->pool, cap);
        if (!p) return -1;
        m->pool = p;
        m->pool_cap = cap;
    }
    if (len) memcpy(m->pool + m->pool_n, s, len);
    size_t e = m->n++;
    m->off[e] = m->pool_n;
    m->len[e] = (uint32_t)len;
    m->val[e] = val;
    m->pool_n += len;
    size_t i = fnv(s, len) & m->mask;
    while (m->slots[i] >= 0) i = (i + 1) & m->mask;
    m->slots[i] = (int32_t)e;
    return 0;
}

void tj_map_free(tj_map *m) {
    free(m->pool);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* --------------------------------------------------------------- fields */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* *out = bool field, def when absent or null. */
static int get_bool(const cJSON *o, const char *k, int def, int *out, const char *what, bct_error *err) {
    const cJSON *v = get(o, k);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return BCT_OK;
    }
    if (!cJSON_IsBool(v)) return bct_fail(err, BCT_EFORMAT, "%s.%s: expected true or false", what, k);
    *out = cJSON_IsTrue(v);
    return BCT_OK;
}

static int get_int(const cJSON *o, const char *k, int def, int lo, int hi, int *out, const char *what,
                   bct_error *err) {
    const cJSON *v = get(o, k);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return BCT_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return bct_fail(err, BCT_EFORMAT, "%s.%s: expected an integer in [%d, %d]", what, k, lo, hi);
    *out = (int)v->valuedouble;
    return BCT_OK;
}

/* String field (NULL when absent or null and optional). */
static int get_str(const cJSON *o, const char *k, int required, const char **out, const char *what,
                   bct_error *err) {
    const cJSON *v = get(o, k);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required) return bct_fail(err, BCT_EFORMAT, "%s.%s: missing", what, k);
        return BCT_OK;
    }
    if (!cJSON_IsString(v)) return bct_fail(err, BCT_EFORMAT, "%s.%s: expected a string", what, k);
    if (strlen(v->valuestring) > TJ_MAX_TOKEN_BYTES)
        return bct_fail(err, BCT_EFORMAT, "%s.%s: longer than %d bytes", what, k, TJ_MAX_TOKEN_BYTES);
    *out = v->valuestring;
    return BCT_OK;
}

/* UTF-8 (already validated with the whole document) -> code points. */
static int to_cps(const char *s, size_t n, int32_t **out, size_t *out_n) {
    int32_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v) return -1;
    size_t k = 0;
    for (size_t p = 0; p < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + p, (utf8proc_ssize_t)(n - p), &c);
        if (r <= 0) break;
        v[k++] = c;
        p += (size_t)r;
    }
    *out = v;
    *out_n = k;
    return 0;
}

#define NOMEM(err) bct_fail(err, BCT_ENOMEM, "out of memory reading tokenizer.json")

/* Every string the pipeline uses passes through here, so the document's
 * UTF-8 check also covers text decoded from \u escapes (cJSON 1.7.15
 * already refuses lone surrogates; this does not rely on it). */
static int check_utf8(const char *s, const char *what, const char *k, bct_error *err) {
    size_t n = strlen(s);
    if (utf8_find_invalid((const uint8_t *)s, n, 0, NULL) != n)
        return bct_fail(err, BCT_EFORMAT, "%s.%s: not valid UTF-8", what, k);
    return BCT_OK;
}

static int behavior_of(const cJSON *o, enum tj_split_behavior def, enum tj_split_behavior *out, const char *what,
                       bct_error *err) {
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                        "Contiguous"};
    const char *s;
    int rc = get_str(o, "behavior", 0, &s, what, err);
    if (rc) return rc;
    *out = def;
    if (!s) return BCT_OK;
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum tj_split_behavior)i;
            return BCT_OK;
        }
    return bct_fail(err, BCT_EFORMAT, "%s.behavior: unknown value \"%s\"", what, s);
}

/* A {"String": s} or {"Regex": r} pattern.  *is_regex tells which. */
static int pattern_of(const cJSON *o, const char **s, int *is_regex, const char *what, bct_error *err) {
    const cJSON *p = get(o, "pattern");
    const cJSON *str = cJSON_IsObject(p) ? get(p, "String") : NULL, *re = cJSON_IsObject(p) ? get(p, "Regex") : NULL;
    if (cJSON_IsString(str)) {
        *s = str->valuestring;
        *is_regex = 0;
    } else if (cJSON_IsString(re)) {
        *s = re->valuestring;
        *is_regex = 1;
    } else {
        return bct_fail(err, BCT_EFORMAT, "%s.pattern: expected {\"String\": ...} or {\"Regex\": ...}", what);
    }
    if (strlen(*s) > TJ_MAX_TOKEN_BYTES)
        return bct_fail(err, BCT_EFORMAT, "%s.pattern: longer than %d bytes", what, TJ_MAX_TOKEN_BYTES);
    return check_utf8(*s, what, "pattern", err);
}

/* The GPT-2 split regex as tokenizers writes it in Split pre-tokenizers. */
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ----------------------------------------------------------- normalizer */

/* Standard base64 (RFC 4648, '=' padding) of s into a malloc'd buffer. */
static int base64_decode(const char *s, uint8_t **out, size_t *out_n) {
    size_t n = strlen(s);
    if (n % 4) return -1;
    uint8_t *b = malloc(n / 4 * 3 + 1);
    if (!b) return -2;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + j];
            int x = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
                    : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
            if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || s[i + 3] == '=')) {
                pad++;
                x = 0;
            } else if (x < 0 || pad) {
                free(b);
                return -1;
            }
            v = v << 6 | (uint32_t)x;
        }
        b[k++] = (uint8_t)(v >> 16);
        if (pad < 2) b[k++] = (uint8_t)(v >> 8);
        if (pad < 1) b[k++] = (uint8_t)v;
    }
    *out = b;
    *out_n = k;
    return 0;
}

/* precompiled_charsmap = u32 LE trie size, the darts-clone units (u32 LE),
 * then the pool of NUL-terminated UTF-8 replacements.  Every leaf value
 * (a unit with bit 31 set) must point at a terminated string in the pool,
 * so lookups need no checks beyond the unit index. */
static int read_charsmap(tj_norm *n, const char *b64, const char *what, bct_error *err) {
    uint8_t *blob;
    size_t len;
    int r = base64_decode(b64, &blob, &len);
    if (r == -2) return NOMEM(err);
    if (r) return bct_fail(err, BCT_EFORMAT, "%s.precompiled_charsmap: not valid base64", what);
    uint32_t trie = len >= 4 ? (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 |
                                   (uint32_t)blob[3] << 24
                             : 0;
    if (len <= 4 || trie == 0 || trie % 4 || trie > len - 4) {
        free(blob);
        return bct_fail(err, BCT_EFORMAT, "%s.precompiled_charsmap: bad trie size", what);
    }
    n->n_units = trie / 4;
    n->pool_n = len - 4 - trie;
    n->units = malloc(trie);
    n->pool = malloc(n->pool_n + 1);
    if (!n->units || !n->pool) {
        free(blob);
        return NOMEM(err);
    }
    for (size_t i = 0; i < n->n_units; i++) {
        const uint8_t *p = blob + 4 + 4 * i;
        n->units[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    memcpy(n->pool, blob + 4 + trie, n->pool_n);
    free(blob);
    for (size_t i = 0; i < n->n_units; i++) {
        uint32_t u = n->units[i];
        if (!(u >> 31)) continue;
        size_t v = u & 0x7FFFFFFF;
        if (v >= n->pool_n || !memchr(n->pool + v, 0, n->pool_n - v))
            return bct_fail(err, BCT_EFORMAT, "%s.precompiled_charsmap: unit %zu points outside the strings", what, i);
        size_t sl = strlen(n->pool + v);
        if (utf8_find_invalid((const uint8_t *)n->pool + v, sl, 0, NULL) != sl)
            return bct_fail(err, BCT_EFORMAT, "%s.precompiled_charsmap: replacement %zu is not valid UTF-8", what, v);
    }
    return BCT_OK;
}

static int add_norm(tjson *j, const cJSON *o, const char *what, bct_error *err);

static int push_norm(tjson *j, tj_norm n, const char *what, bct_error *err) {
    if (j->n_norm >= TJ_MAX_STEPS)
        return bct_fail(err, BCT_EFORMAT, "%s: more than %d normalizer steps", what, TJ_MAX_STEPS);
    j->norm[j->n_norm++] = n;
    return BCT_OK;
}

static int add_norm(tjson *j, const cJSON *o, const char *what, bct_error *err) {
    if (!cJSON_IsObject(o)) return bct_fail(err, BCT_EFORMAT, "%s: expected an object", what);
    const char *type;
    int rc = get_str(o, "type", 1, &type, what, err);
    if (rc) return rc;
    tj_norm n = {0};
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = get(o, "normalizers");
        if (!cJSON_IsArray(list)) return bct_fail(err, BCT_EFORMAT, "%s.normalizers: expected an array", what);
        int i = 0;
        for (const cJSON *e = list->child; e; e = e->next, i++) {
            char sub[160];
            snprintf(sub, sizeof(sub), "%s.normalizers[%d]", what, i);
            if ((rc = add_norm(j, e, sub, err))) return rc;
        }
        return BCT_OK;
    }
    if (strcmp(type, "BertNormalizer") == 0) {
        n.kind = TJN_BERT;
        int strip = -1;
        if ((rc = get_bool(o, "clean_text", 1, &n.clean, what, err)) ||
            (rc = get_bool(o, "handle_chinese_chars", 1, &n.chinese, what, err)) ||
            (rc = get_bool(o, "lowercase", 1, &n.lower, what, err)) ||
            (rc = get_bool(o, "strip_accents", -1, &strip, what, err)))
            return rc;
        n.strip_accents = strip < 0 ? n.lower : strip; /* null follows lowercase */
    } else if (strcmp(type, "NFC") == 0) {
        n.kind = TJN_NFC;
    } else if (strcmp(type, "NFD") == 0) {
        n.kind = TJN_NFD;
    } else if (strcmp(type, "NFKC") == 0) {
        n.kind = TJN_NFKC;
    } else if (strcmp(type, "NFKD") == 0) {
        n.kind = TJN_NFKD;
    } else if (strcmp(type, "Lowercase") == 0) {
        n.kind = TJN_LOWER;
    } else if (strcmp(type, "StripAccents") == 0) {
        n.kind = TJN_STRIP_ACCENTS;
    } else if (strcmp(type, "Strip") == 0) {
        n.kind = TJN_STRIP;
        if ((rc = get_bool(o, "strip_left", 1, &n.left, what, err)) ||
            (rc = get_bool(o, "strip_right", 1, &n.right, what, err)))
            return rc;
    } else if (strcmp(type, "Precompiled") == 0) {
        const cJSON *map = get(o, "precompiled_charsmap");
        if (map && !cJSON_IsNull(map) && !cJSON_IsString(map))
            return bct_fail(err, BCT_EFORMAT, "%s.precompiled_charsmap: expected a base64 string", what);
        n.kind = TJN_PRECOMPILED;
        if (cJSON_IsString(map) && *map->valuestring && (rc = read_charsmap(&n, map->valuestring, what, err))) {
            free(n.units);
            free(n.pool);
            return rc;
        }
    } else if (strcmp(type, "Replace") == 0 || strcmp(type, "Prepend") == 0) {
        int replace = type[0] == 'R', is_regex = 0;
        const char *pat = NULL, *content;
        if ((replace && (rc = pattern_of(o, &pat, &is_regex, what, err))) ||
            (rc = get_str(o, replace ? "content" : "prepend", 1, &content, what, err)) ||
            (rc = check_utf8(content, what, replace ? "content" : "prepend", err)))
            return rc;
        n.kind = replace ? TJN_REPLACE : TJN_PREPEND;
        if (is_regex) {
            /* Only "X{k,}" (a run of at least k of one literal character,
             * as in XLM-R's " {2,}"): no regex engine here. */
            size_t pl = strlen(pat);
            unsigned k = 0;
            char tail;
            utf8proc_int32_t c;
            utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)pat, (utf8proc_ssize_t)pl, &c);
            if (cl <= 0 || strchr(".*+?()[]{}|^$\\", (int)c) || sscanf(pat + cl, "{%u,%c", &k, &tail) != 2 ||
                tail != '}' || k < 1 || k > 1000 || pat[pl - 1] != '}' || strchr(pat + cl, '}') != pat + pl - 1)
                return bct_fail(err, BCT_EUNSUPPORTED,
                                "%s.pattern: regex \"%s\" is not supported (only literal strings and \"X{k,}\")",
                                what, pat);
            n.left = (int)k;
            n.pat_n = 1;
            if (!(n.pat = malloc(sizeof(int32_t)))) return NOMEM(err);
            n.pat[0] = c;
        } else if (replace) {
            if (!*pat) return bct_fail(err, BCT_EFORMAT, "%s.pattern: empty", what);
            if (to_cps(pat, strlen(pat), &n.pat, &n.pat_n)) return NOMEM(err);
        }
        if (to_cps(content, strlen(content), &n.rep, &n.rep_n)) {
            free(n.pat);
            return NOMEM(err);
        }
        if ((rc = push_norm(j, n, what, err))) {
            free(n.pat);
            free(n.rep);
        }
        return rc;
    } else {
        return bct_fail(err, BCT_EUNSUPPORTED, "%s.type: normalizer \"%s\" is not supported", what, type);
    }
    return push_norm(j, n, what, err);
}

/* -------------------------------------------------------- pre-tokenizer */

static int push_pre(tjson *j, tj_pre p, const char *what, bct_error *err) {
    if (j->n_pre >= TJ_MAX_STEPS) {
        free(p.pat);
        return bct_fail(err, BCT_EFORMAT, "%s: more than %d pre-tokenizer steps", what, TJ_MAX_STEPS);
    }
    j->pre[j->n_pre++] = p;
    return BCT_OK;
}

static int add_pre(tjson *j, const cJSON *o, const char *what, bct_error *err) {
    if (!cJSON_IsObject(o)) return bct_fail(err, BCT_EFORMAT, "%s: expected an object", what);
    const char *type;
    int rc = get_str(o, "type", 1, &type, what, err);
    if (rc) return rc;
    tj_pre p = {0};
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = get(o, "pretokenizers");
        if (!cJSON_IsArray(list)) return bct_fail(err, BCT_EFORMAT, "%s.pretokenizers: expected an array", what);
        int i = 0;
        for (const cJSON *e = list->child; e; e = e->next, i++) {
            char sub[160];
            snprintf(sub, sizeof(sub), "%s.pretokenizers[%d]", what, i);
            if ((rc = add_pre(j, e, sub, err))) return rc;
        }
        return BCT_OK;
    }
    if (strcmp(type, "BertPreTokenizer") == 0) {
        p.kind = TJP_BERT;
    } else if (strcmp(type, "ByteLevel") == 0) {
        p.kind = TJP_BYTELEVEL;
        if ((rc = get_bool(o, "add_prefix_space", 1, &p.add_prefix_space, what, err)) ||
            (rc = get_bool(o, "use_regex", 1, &p.use_regex, what, err)))
            return rc;
    } else if (strcmp(type, "Metaspace") == 0) {
        p.kind = TJP_METASPACE;
        const char *rep, *scheme;
        int aps = 1;
        if ((rc = get_str(o, "replacement", 0, &rep, what, err)) ||
            (rc = get_str(o, "prepend_scheme", 0, &scheme, what, err)) ||
            (rc = get_bool(o, "add_prefix_space", 1, &aps, what, err)) ||
            (rc = get_bool(o, "split", 1, &p.split, what, err)))
            return rc;
        p.replacement = 0x2581; /* ▁ */
        if (rep) {
            utf8proc_int32_t c;
            size_t rl = strlen(rep);
            utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)rep, (utf8proc_ssize_t)rl, &c);
            if (cl <= 0 || (size_t)cl != rl)
                return bct_fail(err, BCT_EFORMAT, "%s.replacement: expected one character", what);
            p.replacement = c;
        }
        if (!scheme)
            p.prepend = aps ? TJ_PREPEND_ALWAYS : TJ_PREPEND_NEVER; /* legacy files */
        else if (strcmp(scheme, "always") == 0)
            p.prepend = TJ_PREPEND_ALWAYS;
        else if (strcmp(scheme, "first") == 0)
            p.prepend = TJ_PREPEND_FIRST;
        else if (strcmp(scheme, "never") == 0)
            p.prepend = TJ_PREPEND_NEVER;
        else
            return bct_fail(err, BCT_EFORMAT, "%s.prepend_scheme: unknown value \"%s\"", what, scheme);
    } else if (strcmp(type, "Whitespace") == 0) {
        p.kind = TJP_WHITESPACE;
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p.kind = TJP_WS_SPLIT;
    } else if (strcmp(type, "Punctuation") == 0) {
        p.kind = TJP_PUNCT;
        if ((rc = behavior_of(o, TJB_ISOLATED, &p.behavior, what, err))) return rc;
    } else if (strcmp(type, "Digits") == 0) {
        p.kind = TJP_DIGITS;
        if ((rc = get_bool(o, "individual_digits", 0, &p.split, what, err))) return rc;
    } else if (strcmp(type, "Split") == 0) {
        const char *pat;
        int is_regex = 0, invert = 0;
        if ((rc = pattern_of(o, &pat, &is_regex, what, err)) ||
            (rc = behavior_of(o, TJB_REMOVED, &p.behavior, what, err)) ||
            (rc = get_bool(o, "invert", 0, &invert, what, err)))
            return rc;
        if (invert) return bct_fail(err, BCT_EUNSUPPORTED, "%s.invert: true is not supported", what);
        if (is_regex) {
            if (strcmp(pat, GPT2_REGEX) != 0)
                return bct_fail(err, BCT_EUNSUPPORTED,
                                "%s.pattern: regex \"%.60s\" is not supported (only the GPT-2 one)", what, pat);
            p.kind = TJP_GPT2;
        } else {
            if (!*pat) return bct_fail(err, BCT_EFORMAT, "%s.pattern: empty", what);
            p.kind = TJP_SPLIT;
            if (to_cps(pat, strlen(pat), &p.pat, &p.pat_n)) return NOMEM(err);
        }
    } else {
        return bct_fail(err, BCT_EUNSUPPORTED, "%s.type: pre-tokenizer \"%s\" is not supported", what, type);
    }
    return push_pre(j, p, what, err);
}

/* ---------------------------------------------------------------- model */

static int note_id(tj_model *m, double id_d, const char *what, const char *tok, bct_error *err, int32_t *id) {
    if (id_d != floor(id_d) || id_d < 0 || id_d >= TJ_MAX_VOCAB)
        return bct_fail(err, BCT_EFORMAT, "%s: token \"%.40s\" has a bad id", what, tok);
    *id = (int32_t)id_d;
    if (*id + 1 > m->n_ids) m->n_ids = *id + 1;
    return BCT_OK;
}

static int put_token(tj_model *m, const char *s, int32_t id, const char *what, bct_error *err) {
    size_t n = strlen(s);
    if (n > TJ_MAX_TOKEN_BYTES)
        return bct_fail(err, BCT_EFORMAT, "%s: token \"%.40s...\" is longer than %d bytes", what, s,
                        TJ_MAX_TOKEN_BYTES);
    int rc = check_utf8(s, what, "vocab", err);
    if (rc) return rc;
    int r = tj_map_put(&m->vocab, s, n, id);
    if (r < 0) return NOMEM(err);
    if (r > 0) return bct_fail(err, BCT_EFORMAT, "%s: token \"%.40s\" appears twice", what, s);
    if (n > m->max_piece_bytes) m->max_piece_bytes = n;
    return BCT_OK;
}

/* vocab object {token: id} (WordPiece, BPE). */
static int read_vocab_object(tj_model *m, const cJSON *v, const char *what, bct_error *err) {
    if (!cJSON_IsObject(v)) return bct_fail(err, BCT_EFORMAT, "%s: expected an object {token: id}", what);
    int count = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (++count > TJ_MAX_VOCAB)
            return bct_fail(err, BCT_EFORMAT, "%s: more than %d entries", what, TJ_MAX_VOCAB);
        if (!cJSON_IsNumber(e)) return bct_fail(err, BCT_EFORMAT, "%s: token \"%.40s\": id is not a number", what, e->string);
        int32_t id = 0;
        int rc = note_id(m, e->valuedouble, what, e->string, err, &id);
        if (!rc) rc = put_token(m, e->string, id, what, err);
        if (rc) return rc;
    }
    if (!count) return bct_fail(err, BCT_EFORMAT, "%s: empty", what);
    return BCT_OK;
}

static int unk_of(tj_model *m, const cJSON *o, int required, bct_error *err) {
    const char *unk;
    int rc = get_str(o, "unk_token", required, &unk, "model", err);
    if (rc) return rc;
    m->unk = -1;
    if (unk && (m->unk = tj_map_get(&m->vocab, unk, strlen(unk))) < 0)
        return bct_fail(err, BCT_EFORMAT, "model.unk_token: \"%.40s\" is not in the vocab", unk);
    return BCT_OK;
}

static int dup_str(const char *s, char **out, size_t *n, bct_error *err) {
    *out = NULL;
    *n = 0;
    if (!s || !*s) return BCT_OK;
    *n = strlen(s);
    if (!(*out = malloc(*n + 1))) return NOMEM(err);
    memcpy(*out, s, *n + 1);
    return BCT_OK;
}

static int merge_put(tj_model *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = tj_merge_key(a, b); /* never 0 */
    size_t i = tj_merge_slot(key, m->merge_mask);
    while (m->merges[i].key && m->merges[i].key != key) i = (i + 1) & m->merge_mask;
    m->merges[i] = (tj_merge){key, rank, id}; /* a repeated pair takes its later rank */
    return 0;
}

static int read_bpe(tj_model *m, const cJSON *o, bct_error *err) {
    int rc;
    const char *prefix, *suffix;
    if ((rc = read_vocab_object(m, get(o, "vocab"), "model.vocab", err)) || (rc = unk_of(m, o, 0, err)) ||
        (rc = get_str(o, "continuing_subword_prefix", 0, &prefix, "model", err)) ||
        (rc = get_str(o, "end_of_word_suffix", 0, &suffix, "model", err)) ||
        (rc = get_bool(o, "fuse_unk", 0, &m->fuse_unk, "model", err)) ||
        (rc = get_bool(o, "byte_fallback", 0, &m->byte_fallback, "model", err)) ||
        (rc = get_bool(o, "ignore_merges", 0, &m->ignore_merges, "model", err)) ||
        (rc = dup_str(prefix, &m->prefix, &m->prefix_n, err)) || (rc = dup_str(suffix, &m->suffix, &m->suffix_n, err)))
        return rc;
    const cJSON *dropout = get(o, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return bct_fail(err, BCT_EUNSUPPORTED, "model.dropout: BPE dropout is random, not supported for inference");
    const cJSON *merges = get(o, "merges");
    if (!cJSON_IsArray(merges)) return bct_fail(err, BCT_EFORMAT, "model.merges: expected an array");
    int n = cJSON_GetArraySize(merges);
    if (n > TJ_MAX_VOCAB) return bct_fail(err, BCT_EFORMAT, "model.merges: more than %d entries", TJ_MAX_VOCAB);
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    if (!(m->merges = calloc(cap, sizeof(*m->merges)))) return NOMEM(err);
    m->merge_mask = cap - 1;
    char buf[2 * TJ_MAX_TOKEN_BYTES + 2];
    int rank = 0;
    for (const cJSON *e = merges->child; e; e = e->next, rank++) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(e)) { /* legacy "a b" */
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return bct_fail(err, BCT_EFORMAT, "model.merges[%d]: expected \"left right\"", rank);
            a = e->valuestring;
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring;
            al = strlen(a);
            b = e->child->next->valuestring;
            bl = strlen(b);
        } else {
            return bct_fail(err, BCT_EFORMAT, "model.merges[%d]: expected \"left right\" or [left, right]", rank);
        }
        if (al > TJ_MAX_TOKEN_BYTES || bl > TJ_MAX_TOKEN_BYTES)
            return bct_fail(err, BCT_EFORMAT, "model.merges[%d]: token longer than %d bytes", rank,
                            TJ_MAX_TOKEN_BYTES);
        int32_t ia = tj_map_get(&m->vocab, a, al), ib = tj_map_get(&m->vocab, b, bl);
        size_t skip = m->prefix_n && bl >= m->prefix_n && memcmp(b, m->prefix, m->prefix_n) == 0 ? m->prefix_n : 0;
        memcpy(buf, a, al);
        memcpy(buf + al, b + skip, bl - skip);
        int32_t im = tj_map_get(&m->vocab, buf, al + bl - skip);
        if (ia < 0 || ib < 0 || im < 0)
            return bct_fail(err, BCT_EFORMAT, "model.merges[%d]: \"%.*s\" is not in the vocab", rank,
                            (int)(ia < 0 ? (al > 60 ? 60 : al) : ib < 0 ? (bl > 60 ? 60 : bl) : (al + bl - skip > 60 ? 60 : al + bl - skip)),
                            ia < 0 ? a : ib < 0 ? b : buf);
        merge_put(m, ia, ib, rank, im);
    }
    return BCT_OK;
}

static int read_wordpiece(tj_model *m, const cJSON *o, bct_error *err) {
    const char *prefix;
    int rc;
    if ((rc = read_vocab_object(m, get(o, "vocab"), "model.vocab", err)) || (rc = unk_of(m, o, 1, err)) ||
        (rc = get_int(o, "max_input_chars_per_word", 100, 1, 1 << 20, &m->max_word_chars, "model", err)))
        return rc;
    const cJSON *pv = get(o, "continuing_subword_prefix");
    if ((rc = get_str(o, "continuing_subword_prefix", 0, &prefix, "model", err))) return rc;
    return dup_str(pv ? prefix : "##", &m->prefix, &m->prefix_n, err);
}

static int read_unigram(tj_model *m, const cJSON *o, bct_error *err) {
    const cJSON *v = get(o, "vocab");
    if (!cJSON_IsArray(v)) return bct_fail(err, BCT_EFORMAT, "model.vocab: expected an array of [piece, score]");
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > TJ_MAX_VOCAB)
        return bct_fail(err, BCT_EFORMAT, "model.vocab: %d entries (need 1 to %d)", n, TJ_MAX_VOCAB);
    if (!(m->scores = malloc((size_t)n * sizeof(double)))) return NOMEM(err);
    double min = INFINITY;
    int32_t id = 0;
    for (const cJSON *e = v->child; e; e = e->next, id++) {
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(e->child) ||
            !cJSON_IsNumber(e->child->next) || !isfinite(e->child->next->valuedouble))
            return bct_fail(err, BCT_EFORMAT, "model.vocab[%d]: expected [piece, finite score]", id);
        char what[64];
        snprintf(what, sizeof(what), "model.vocab[%d]", id);
        int rc = put_token(m, e->child->valuestring, id, what, err);
        if (rc) return rc;
        m->scores[id] = e->child->next->valuedouble;
        if (m->scores[id] < min) min = m->scores[id];
    }
    m->n_ids = n;
    m->unk_score = min - 10.0; /* kUnkPenalty of sentencepiece */
    int rc, unk = -1;
    if ((rc = get_int(o, "unk_id", -1, 0, n - 1, &unk, "model", err)) ||
        (rc = get_bool(o, "byte_fallback", 0, &m->byte_fallback, "model", err)))
        return rc;
    m->unk = unk;
    m->fuse_unk = 1;
    return BCT_OK;
}

static int read_model(tjson *j, const cJSON *o, bct_error *err) {
    tj_model *m = &j->model;
    m->unk = -1;
    for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
    if (!cJSON_IsObject(o)) return bct_fail(err, BCT_EFORMAT, "model: missing or not an object");
    const char *type;
    int rc = get_str(o, "type", 0, &type, "model", err);
    if (rc) return rc;
    if (!type) /* files from before the tag: tell the models apart by their fields */
        type = cJSON_IsArray(get(o, "vocab")) ? "Unigram" : get(o, "merges") ? "BPE" : "WordPiece";
    if (strcmp(type, "WordPiece") == 0) {
        m->kind = TJM_WORDPIECE;
        rc = read_wordpiece(m, o, err);
    } else if (strcmp(type, "BPE") == 0) {
        m->kind = TJM_BPE;
        rc = read_bpe(m, o, err);
    } else if (strcmp(type, "Unigram") == 0) {
        m->kind = TJM_UNIGRAM;
        rc = read_unigram(m, o, err);
    } else {
        return bct_fail(err, BCT_EUNSUPPORTED, "model.type: \"%s\" is not supported (WordPiece, BPE, Unigram)", type);
    }
    if (rc) return rc;
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof(name), "<0x%02X>", b);
            m->byte_ids[b] = tj_map_get(&m->vocab, name, 6);
        }
    return BCT_OK;
}

/* -------------------------------------------------------- added tokens */

static int read_added(tjson *j, const cJSON *list, bct_error *err) {
    if (!list || cJSON_IsNull(list)) return BCT_OK;
    if (!cJSON_IsArray(list)) return bct_fail(err, BCT_EFORMAT, "added_tokens: expected an array");
    int n = cJSON_GetArraySize(list);
    if (n > TJ_MAX_VOCAB) return bct_fail(err, BCT_EFORMAT, "added_tokens: more than %d entries", TJ_MAX_VOCAB);
    if (n && !(j->added = calloc((size_t)n, sizeof(*j->added)))) return NOMEM(err);
    int i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        char what[48];
        snprintf(what, sizeof(what), "added_tokens[%d]", i);
        if (!cJSON_IsObject(e)) return bct_fail(err, BCT_EFORMAT, "%s: expected an object", what);
        tj_added *a = &j->added[j->n_added];
        const char *content;
        int id = -1, rc;
        if ((rc = get_str(e, "content", 1, &content, what, err)) || (rc = check_utf8(content, what, "content", err)) ||
            (rc = get_int(e, "id", -1, 0, TJ_MAX_VOCAB - 1, &id, what, err)) ||
            (rc = get_bool(e, "special", 0, &a->special, what, err)) ||
            (rc = get_bool(e, "single_word", 0, &a->single_word, what, err)) ||
            (rc = get_bool(e, "lstrip", 0, &a->lstrip, what, err)) ||
            (rc = get_bool(e, "rstrip", 0, &a->rstrip, what, err)) ||
            (rc = get_bool(e, "normalized", !a->special, &a->normalized, what, err)))
            return rc;
        if (id < 0) return bct_fail(err, BCT_EFORMAT, "%s.id: missing", what);
        if (!*content) return bct_fail(err, BCT_EFORMAT, "%s.content: empty", what);
        a->id = id;
        if (id + 1 > j->model.n_ids) j->model.n_ids = id + 1;
        int32_t *cps;
        size_t nc;
        if (to_cps(content, strlen(content), &cps, &nc)) return NOMEM(err);
        j->n_added++;
        if (a->normalized && j->n_norm) {
            rc = tjson_normalize(j, cps, nc, &a->cps, &a->n);
            free(cps);
            if (rc) return NOMEM(err);
            if (!a->n) { /* normalizes to nothing: can never match */
                free(a->cps);
                a->cps = NULL;
                j->n_added--;
            }
        } else {
            a->cps = cps;
            a->n = nc;
        }
    }
    return BCT_OK;
}

/* -------------------------------------------------------- post-processor */

static int special_pair(const cJSON *o, const char *k, int32_t *id, const char *what, bct_error *err) {
    const cJSON *v = get(o, k);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(v->child) ||
        !cJSON_IsNumber(v->child->next) || v->child->next->valuedouble < 0 ||
        v->child->next->valuedouble >= TJ_MAX_VOCAB || v->child->next->valuedouble != floor(v->child->next->valuedouble))
        return bct_fail(err, BCT_EFORMAT, "%s.%s: expected [token, id]", what, k);
    *id = (int32_t)v->child->next->valuedouble;
    return BCT_OK;
}

static int add_item(tj_item *list, int *n, int seq, int type_id, const int32_t *ids, int n_ids, const char *what,
                    bct_error *err) {
    if (*n >= TJ_MAX_TEMPLATE) return bct_fail(err, BCT_EFORMAT, "%s: more than %d items", what, TJ_MAX_TEMPLATE);
    tj_item *it = &list[(*n)++];
    it->seq = seq;
    it->type_id = type_id;
    if (n_ids) {
        if (!(it->ids = malloc((size_t)n_ids * sizeof(int32_t)))) return NOMEM(err);
        memcpy(it->ids, ids, (size_t)n_ids * sizeof(int32_t));
        it->n_ids = n_ids;
    }
    return BCT_OK;
}

static int read_template(tjson *j, const cJSON *o, const char *k, tj_item *list, int *n, bct_error *err) {
    const cJSON *t = get(o, k), *specials = get(o, "special_tokens");
    char what[64];
    snprintf(what, sizeof(what), "post_processor.%s", k);
    if (!cJSON_IsArray(t)) return bct_fail(err, BCT_EFORMAT, "%s: expected an array", what);
    int i = 0;
    for (const cJSON *e = t->child; e; e = e->next, i++) {
        const cJSON *sp = get(e, "SpecialToken"), *sq = get(e, "Sequence");
        const cJSON *body = sp ? sp : sq;
        int type_id = 0, rc;
        const char *id = NULL;
        char iw[96];
        snprintf(iw, sizeof(iw), "%s[%d]", what, i);
        if (!cJSON_IsObject(body))
            return bct_fail(err, BCT_EFORMAT, "%s: expected {\"SpecialToken\": ...} or {\"Sequence\": ...}", iw);
        if ((rc = get_str(body, "id", 1, &id, iw, err)) || (rc = get_int(body, "type_id", 0, 0, 255, &type_id, iw, err)))
            return rc;
        if (sq) {
            int seq = strcmp(id, "A") == 0 ? 1 : strcmp(id, "B") == 0 ? 2 : 0;
            if (!seq) return bct_fail(err, BCT_EFORMAT, "%s.id: sequence \"%s\" is not A or B", iw, id);
            if ((rc = add_item(list, n, seq, type_id, NULL, 0, what, err))) return rc;
            continue;
        }
        const cJSON *st = cJSON_IsObject(specials) ? get(specials, id) : NULL, *ids = st ? get(st, "ids") : NULL;
        if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) < 1 || cJSON_GetArraySize(ids) > TJ_MAX_TEMPLATE)
            return bct_fail(err, BCT_EFORMAT, "post_processor.special_tokens: \"%.40s\" missing or without ids", id);
        int32_t v[TJ_MAX_TEMPLATE];
        int nv = 0;
        for (const cJSON *x = ids->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= TJ_MAX_VOCAB ||
                x->valuedouble != floor(x->valuedouble))
                return bct_fail(err, BCT_EFORMAT, "post_processor.special_tokens.%.40s.ids: bad id", id);
            v[nv++] = (int32_t)x->valuedouble;
        }
        if ((rc = add_item(list, n, 0, type_id, v, nv, what, err))) return rc;
    }
    (void)j;
    return BCT_OK;
}

static int read_post(tjson *j, const cJSON *o, bct_error *err) {
    if (!o || cJSON_IsNull(o)) { /* just the sequences */
        j->single[0].seq = 1;
        j->pair[0].seq = 1;
        j->pair[1].seq = 2;
        j->n_single = 1;
        j->n_pair = 2;
        return BCT_OK;
    }
    if (!cJSON_IsObject(o)) return bct_fail(err, BCT_EFORMAT, "post_processor: expected an object");
    const char *type;
    int rc = get_str(o, "type", 1, &type, "post_processor", err);
    if (rc) return rc;
    if (strcmp(type, "Sequence") == 0) { /* only one of them may add tokens */
        const cJSON *list = get(o, "processors"), *pick = NULL;
        if (!cJSON_IsArray(list)) return bct_fail(err, BCT_EFORMAT, "post_processor.processors: expected an array");
        for (const cJSON *e = list->child; e; e = e->next) {
            const cJSON *t = get(e, "type");
            if (cJSON_IsString(t) && strcmp(t->valuestring, "ByteLevel") == 0) continue; /* offsets only */
            if (pick) return bct_fail(err, BCT_EUNSUPPORTED, "post_processor.processors: more than one adds tokens");
            pick = e;
        }
        return read_post(j, pick, err);
    }
    if (strcmp(type, "ByteLevel") == 0) return read_post(j, NULL, err);
    if (strcmp(type, "TemplateProcessing") == 0) {
        if ((rc = read_template(j, o, "single", j->single, &j->n_single, err)) ||
            (rc = read_template(j, o, "pair", j->pair, &j->n_pair, err)))
            return rc;
    } else if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        int32_t cls, sep;
        int bert = type[0] == 'B';
        if ((rc = special_pair(o, "cls", &cls, "post_processor", err)) ||
            (rc = special_pair(o, "sep", &sep, "post_processor", err)))
            return rc;
        /* BERT: [CLS] A [SEP] B:1 [SEP]:1.  RoBERTa: <s> A </s> </s> B </s>,
         * all type 0 (its models have a single token type). */
        const char *w = "post_processor";
        if ((rc = add_item(j->single, &j->n_single, 0, 0, &cls, 1, w, err)) ||
            (rc = add_item(j->single, &j->n_single, 1, 0, NULL, 0, w, err)) ||
            (rc = add_item(j->single, &j->n_single, 0, 0, &sep, 1, w, err)) ||
            (rc = add_item(j->pair, &j->n_pair, 0, 0, &cls, 1, w, err)) ||
            (rc = add_item(j->pair, &j->n_pair, 1, 0, NULL, 0, w, err)) ||
            (rc = add_item(j->pair, &j->n_pair, 0, 0, &sep, 1, w, err)) ||
            (!bert && (rc = add_item(j->pair, &j->n_pair, 0, 0, &sep, 1, w, err))) ||
            (rc = add_item(j->pair, &j->n_pair, 2, !bert ? 0 : 1, NULL, 0, w, err)) ||
            (rc = add_item(j->pair, &j->n_pair, 0, !bert ? 0 : 1, &sep, 1, w, err)))
            return rc;
    } else {
        return bct_fail(err, BCT_EUNSUPPORTED, "post_processor.type: \"%s\" is not supported", type);
    }
    return BCT_OK;
}

static int check_template(const tj_item *t, int n, int pair, int *specials, const char *what, bct_error *err) {
    int a = 0, b = 0;
    *specials = 0;
    for (int i = 0; i < n; i++) {
        a += t[i].seq == 1;
        b += t[i].seq == 2;
        *specials += t[i].n_ids;
    }
    if (a != 1 || b != (pair ? 1 : 0))
        return bct_fail(err, BCT_EFORMAT, "post_processor.%s: must hold sequence A once%s", what,
                        pair ? " and B once" : " and no B");
    return BCT_OK;
}

static int read_truncation(tjson *j, const cJSON *o, bct_error *err) {
    if (!o || cJSON_IsNull(o)) return BCT_OK;
    if (!cJSON_IsObject(o)) return bct_fail(err, BCT_EFORMAT, "truncation: expected an object or null");
    const char *dir, *strategy;
    int rc;
    if ((rc = get_int(o, "max_length", 0, 1, 1 << 24, &j->trunc_max, "truncation", err)) ||
        (rc = get_str(o, "direction", 0, &dir, "truncation", err)) ||
        (rc = get_str(o, "strategy", 0, &strategy, "truncation", err)))
        return rc;
    if (dir && strcmp(dir, "Left") && strcmp(dir, "Right"))
        return bct_fail(err, BCT_EFORMAT, "truncation.direction: unknown value \"%s\"", dir);
    j->trunc_left = dir && strcmp(dir, "Left") == 0;
    if (!strategy || strcmp(strategy, "LongestFirst") == 0)
        j->trunc_strategy = TJT_LONGEST_FIRST;
    else if (strcmp(strategy, "OnlyFirst") == 0)
        j->trunc_strategy = TJT_ONLY_FIRST;
    else if (strcmp(strategy, "OnlySecond") == 0)
        j->trunc_strategy = TJT_ONLY_SECOND;
    else
        return bct_fail(err, BCT_EFORMAT, "truncation.strategy: unknown value \"%s\"", strategy);
    return BCT_OK;
}

/* ------------------------------------------------------------- document */

/* Nesting depth of JSON text, checked before cJSON recurses into it. */
static int check_depth(const char *s, size_t n, bct_error *err) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > TJ_MAX_DEPTH)
                return bct_fail(err, BCT_EFORMAT, "tokenizer.json nests deeper than %d levels (byte %zu)",
                                TJ_MAX_DEPTH, i);
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return BCT_OK;
}

/* Id of a token text among the added tokens, then the vocab; -1. */
static int32_t find_token(const tjson *j, const char *s) {
    int32_t *cps;
    size_t n;
    if (to_cps(s, strlen(s), &cps, &n)) return -1;
    for (int i = 0; i < j->n_added; i++)
        if (j->added[i].n == n && memcmp(j->added[i].cps, cps, n * sizeof(int32_t)) == 0) {
            free(cps);
            return j->added[i].id;
        }
    free(cps);
    return tj_map_get(&j->model.vocab, s, strlen(s));
}

static int by_first_cp(const void *a, const void *b) {
    int32_t x = ((const tj_added *)a)->cps[0], y = ((const tj_added *)b)->cps[0];
    return (x > y) - (x < y);
}

static int build(tjson *j, const cJSON *root, bct_error *err) {
    int rc;
    const cJSON *norm = get(root, "normalizer"), *pre = get(root, "pre_tokenizer");
    if (!(j->norm = calloc(TJ_MAX_STEPS, sizeof(*j->norm))) || !(j->pre = calloc(TJ_MAX_STEPS, sizeof(*j->pre))))
        return NOMEM(err);
    if ((norm && !cJSON_IsNull(norm) && (rc = add_norm(j, norm, "normalizer", err))) ||
        (pre && !cJSON_IsNull(pre) && (rc = add_pre(j, pre, "pre_tokenizer", err))) ||
        (rc = read_model(j, get(root, "model"), err)) || (rc = read_added(j, get(root, "added_tokens"), err)) ||
        (rc = read_post(j, get(root, "post_processor"), err)) ||
        (rc = check_template(j->single, j->n_single, 0, &j->specials_single, "single", err)) ||
        (rc = check_template(j->pair, j->n_pair, 1, &j->specials_pair, "pair", err)) ||
        (rc = read_truncation(j, get(root, "truncation"), err)))
        return rc;
    /* Sorted by first character, so matching looks only at candidates. */
    if (j->n_added) qsort(j->added, (size_t)j->n_added, sizeof(*j->added), by_first_cp);
    const cJSON *ver = get(root, "version");
    if (ver && !(cJSON_IsString(ver) && strcmp(ver->valuestring, "1.0") == 0))
        return bct_fail(err, BCT_EUNSUPPORTED, "version: expected \"1.0\"");
    j->unk = j->model.unk;
    j->cls = j->sep = -1;
    for (int i = 0; i < j->n_single; i++)
        if (j->single[i].n_ids) {
            if (j->cls < 0) j->cls = j->single[i].ids[0];
            j->sep = j->single[i].ids[j->single[i].n_ids - 1];
        }
    const cJSON *pad = get(root, "padding");
    int pad_id = -1;
    if (cJSON_IsObject(pad) && (rc = get_int(pad, "pad_id", -1, 0, TJ_MAX_VOCAB - 1, &pad_id, "padding", err)))
        return rc;
    if (pad_id < 0) pad_id = find_token(j, "[PAD]");
    if (pad_id < 0) pad_id = find_token(j, "<pad>");
    j->pad = pad_id < 0 ? 0 : pad_id;
    return BCT_OK;
}

void tjson_free(tjson *j) {
    if (!j) return;
    free(j->doc);
    for (int i = 0; j->norm && i < j->n_norm; i++) {
        free(j->norm[i].pat);
        free(j->norm[i].rep);
        free(j->norm[i].units);
        free(j->norm[i].pool);
    }
    for (int i = 0; j->pre && i < j->n_pre; i++) free(j->pre[i].pat);
    free(j->norm);
    free(j->pre);
    tj_map_free(&j->model.vocab);
    free(j->model.prefix);
    free(j->model.suffix);
    free(j->model.merges);
    free(j->model.scores);
    for (int i = 0; i < j->n_added; i++) free(j->added[i].cps);
    free(j->added);
    for (int i = 0; i < TJ_MAX_TEMPLATE; i++) {
        free(j->single[i].ids);
        free(j->pair[i].ids);
    }
    free(j);
}

int tjson_build(const char *doc, size_t len, tjson **out, bct_error *err) {
    *out = NULL;
    if (!doc && len) return bct_fail(err, BCT_EINVAL, "tokenizer.json: NULL text");
    if (len > TOK_JSON_MAX_BYTES)
        return bct_fail(err, BCT_ERANGE, "tokenizer.json is %zu bytes, more than the limit of %u (TOK_JSON_MAX_BYTES)", len,
                        TOK_JSON_MAX_BYTES);
    utf8_problem why;
    size_t bad = utf8_find_invalid((const uint8_t *)doc, len, UTF8_JSON, &why);
    if (bad < len) {
        char buf[96];
        return bct_fail(err, BCT_EFORMAT, "tokenizer.json is not valid UTF-8 JSON text: %s at byte %zu",
                        utf8_describe(why, "file", buf, sizeof(buf)), bad);
    }
    int rc = check_depth(doc, len, err);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(doc, len, &end, 0);
    if (!root) {
        size_t at = end && end >= doc ? (size_t)(end - doc) : 0;
        return bct_fail(err, BCT_EFORMAT, "tokenizer.json is not valid JSON (near byte %zu)", at);
    }
    for (; end && (size_t)(end - doc) < len && strchr(" \t\r\n", *end); end++) {}
    if (end && (size_t)(end - doc) < len) {
        cJSON_Delete(root);
        return bct_fail(err, BCT_EFORMAT, "tokenizer.json has unexpected data after the JSON value (byte %zu)",
                        (size_t)(end - doc));
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bct_fail(err, BCT_EFORMAT, "tokenizer.json is not a JSON object");
    }
    tjson *j = calloc(1, sizeof(*j));
    if (!j || !(j->doc = malloc(len + 1))) {
        free(j);
        cJSON_Delete(root);
        return NOMEM(err);
    }
    memcpy(j->doc, doc, len);
    j->doc[len] = '\0';
    j->doc_len = len;
    rc = build(j, root, err);
    cJSON_Delete(root);
    if (rc) {
        bct_fail_prefix(err, rc, "tokenizer.json");
        tjson_free(j);
        return rc;
    }
    *out = j;
    return BCT_OK;
}

/* ------------------------------------------- vocab.json + merges.txt */

static cJSON *special_json(const char *content, int32_t id, int lstrip) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", lstrip);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 0);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

static cJSON *pair_json(const char *tok, int32_t id) {
    cJSON *a = cJSON_CreateArray();
    if (a) {
        cJSON_AddItemToArray(a, cJSON_CreateString(tok));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(id));
    }
    return a;
}

int tjson_from_bpe_files(const char *vocab_json, size_t vlen, const char *merges, size_t mlen, tjson **out,
                         bct_error *err) {
    *out = NULL;
    if (vlen > TOK_JSON_MAX_BYTES || mlen > TOK_JSON_MAX_BYTES)
        return bct_fail(err, BCT_ERANGE, "vocab.json or merges.txt is larger than %u bytes (TOK_JSON_MAX_BYTES)",
                        TOK_JSON_MAX_BYTES);
    utf8_problem why;
    size_t bad = utf8_find_invalid((const uint8_t *)vocab_json, vlen, UTF8_JSON, &why);
    if (bad < vlen) return bct_fail(err, BCT_EFORMAT, "vocab.json is not valid UTF-8 JSON text (byte %zu)", bad);
    if ((bad = utf8_find_invalid((const uint8_t *)merges, mlen, 0, &why)) < mlen)
        return bct_fail(err, BCT_EFORMAT, "merges.txt is not valid UTF-8 (byte %zu)", bad);
    int rc = check_depth(vocab_json, vlen, err);
    if (rc) return bct_fail_prefix(err, rc, "vocab.json");
    cJSON *vj = cJSON_ParseWithLength(vocab_json, vlen);
    if (!cJSON_IsObject(vj)) {
        cJSON_Delete(vj);
        return bct_fail(err, BCT_EFORMAT, "vocab.json is not a JSON object {token: id}");
    }
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *list = cJSON_CreateArray(),
          *added = cJSON_CreateArray(), *pre = cJSON_CreateObject(), *post = cJSON_CreateObject();
    char *doc = NULL;
    rc = BCT_ENOMEM;
    if (!root || !model || !list || !added || !pre || !post) {
        cJSON_Delete(vj);
        cJSON_Delete(model);
        cJSON_Delete(list);
        cJSON_Delete(added);
        cJSON_Delete(pre);
        cJSON_Delete(post);
        cJSON_Delete(root);
        return NOMEM(err);
    }
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddItemToObject(root, "post_processor", post);
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    cJSON_AddBoolToObject(pre, "use_regex", 1);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vj);
    cJSON_AddItemToObject(model, "merges", list);
    /* RoBERTa's special tokens, where the vocab has them; <mask> takes the
     * space before it (lstrip), as in the checkpoints' tokenizer.json. */
    static const char *const names[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    int32_t ids[5];
    for (int i = 0; i < 5; i++) {
        const cJSON *v = get(vj, names[i]);
        ids[i] = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < TJ_MAX_VOCAB ? (int32_t)v->valuedouble : -1;
        if (ids[i] >= 0) cJSON_AddItemToArray(added, special_json(names[i], ids[i], i == 4));
    }
    if (ids[3] >= 0) cJSON_AddStringToObject(model, "unk_token", "<unk>");
    if (ids[0] < 0 || ids[2] < 0) {
        rc = bct_fail(err, BCT_EFORMAT, "vocab.json has no %s token", ids[0] < 0 ? "<s>" : "</s>");
        goto done;
    }
    cJSON_AddStringToObject(post, "type", "RobertaProcessing");
    cJSON_AddItemToObject(post, "sep", pair_json("</s>", ids[2]));
    cJSON_AddItemToObject(post, "cls", pair_json("<s>", ids[0]));
    /* merges.txt: "#version" header, then "left right" per line. */
    size_t line_no = 0;
    for (size_t p = 0; p < mlen;) {
        size_t e = p;
        while (e < mlen && merges[e] != '\n') e++;
        size_t l = e;
        if (l > p && merges[l - 1] == '\r') l--;
        line_no++;
        if (l > p && !(line_no == 1 && l - p >= 8 && memcmp(merges + p, "#version", 8) == 0)) {
            if (l - p > 2 * TJ_MAX_TOKEN_BYTES + 1) {
                rc = bct_fail(err, BCT_EFORMAT, "merges.txt line %zu is too long", line_no);
                goto done;
            }
            char buf[2 * TJ_MAX_TOKEN_BYTES + 2];
            memcpy(buf, merges + p, l - p);
            buf[l - p] = '\0';
            if (memchr(buf, '\0', l - p)) {
                rc = bct_fail(err, BCT_EFORMAT, "merges.txt line %zu holds a NUL byte", line_no);
                goto done;
            }
            cJSON *s = cJSON_CreateString(buf);
            if (!s) goto done;
            cJSON_AddItemToArray(list, s);
        }
        p = e + 1;
    }
    doc = cJSON_PrintUnformatted(root);
    if (!doc) goto done;
    rc = tjson_build(doc, strlen(doc), out, err);
    if (rc) bct_fail_prefix(err, rc, "vocab.json + merges.txt");
    free(doc);
    cJSON_Delete(root);
    return rc;
done: /* everything hangs from root by now */
    cJSON_Delete(root);
    return rc == BCT_ENOMEM ? NOMEM(err) : rc;
}
