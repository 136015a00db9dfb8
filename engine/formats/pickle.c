/* pickle.c - a restricted unpickler for PyTorch state dicts (pickle.h).
 *
 * The machine keeps Python's model (a value stack, a mark stack, a memo)
 * but its values are a closed set of plain C records in one array: none,
 * bool, int, float, str, tuple, list, dict, one of the allowed globals, a
 * storage reference, a tensor.  Containers hold indices into that array,
 * so shared and even cyclic references cost nothing, and nothing walks the
 * graph recursively: the only walk is over the top-level dict at STOP.
 *
 * Strings are not copied: they point into the pickle buffer, which
 * outlives the run.  Only the final names are copied out.
 */
#include "pickle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* Every count the input controls, with room to spare: a BERT-large state
 * dict (~400 tensors) needs ~6,000 objects, ~3,000 slots, a stack of
 * ~2,000 (pickle batches SETITEMS by 1,000 pairs), 3 nested marks and
 * ~5,000 memo entries. */
#define PKL_MAX_OBJECTS (1u << 20) /* values created (~32 MB of records) */
#define PKL_MAX_SLOTS (1u << 22)   /* items in all containers together */
#define PKL_MAX_STACK (1u << 14)
#define PKL_MAX_MARKS 64u
#define PKL_MAX_MEMO (1u << 20)     /* highest memo index + 1 */
#define PKL_MAX_LONG_BYTES 8u       /* LONG1 payload: fits an int64 */
#define PKL_MAX_GLOBAL_LINE 256u    /* GLOBAL's module and name lines */

#define MEMO_EMPTY UINT32_MAX

/* Opcodes, as pickletools names them. */
enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1',
    OP_DUP = '2', OP_FLOAT = 'F', OP_INT = 'I', OP_BININT = 'J',
    OP_BININT1 = 'K', OP_LONG = 'L', OP_BININT2 = 'M', OP_NONE = 'N',
    OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_STRING = 'S',
    OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_UNICODE = 'V',
    OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c',
    OP_DICT = 'd', OP_EMPTY_DICT = '}', OP_APPENDS = 'e', OP_GET = 'g',
    OP_BINGET = 'h', OP_INST = 'i', OP_LONG_BINGET = 'j', OP_LIST = 'l',
    OP_EMPTY_LIST = ']', OP_OBJ = 'o', OP_PUT = 'p', OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't',
    OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
    OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82, OP_EXT2 = 0x83,
    OP_EXT4 = 0x84, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_LONG4 = 0x8b,
    OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e,
    OP_EMPTY_SET = 0x8f, OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91,
    OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94,
    OP_FRAME = 0x95, OP_BYTEARRAY8 = 0x96, OP_NEXT_BUFFER = 0x97,
    OP_READONLY_BUFFER = 0x98,
};

/* Names of the opcodes this reader refuses, for the error. */
static const char *refused_name(int op) {
    switch (op) {
    case OP_POP: return "POP";
    case OP_POP_MARK: return "POP_MARK";
    case OP_DUP: return "DUP";
    case OP_FLOAT: return "FLOAT";
    case OP_INT: return "INT";
    case OP_LONG: return "LONG";
    case OP_PERSID: return "PERSID";
    case OP_STRING: return "STRING";
    case OP_UNICODE: return "UNICODE";
    case OP_DICT: return "DICT";
    case OP_GET: return "GET";
    case OP_INST: return "INST";
    case OP_LIST: return "LIST";
    case OP_OBJ: return "OBJ";
    case OP_PUT: return "PUT";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_EXT1: return "EXT1";
    case OP_EXT2: return "EXT2";
    case OP_EXT4: return "EXT4";
    case OP_LONG4: return "LONG4";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_EMPTY_SET: return "EMPTY_SET";
    case OP_ADDITEMS: return "ADDITEMS";
    case OP_FROZENSET: return "FROZENSET";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_BYTEARRAY8: return "BYTEARRAY8";
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
    case OP_READONLY_BUFFER: return "READONLY_BUFFER";
    default: return NULL;
    }
}

typedef enum kind {
    K_NONE, K_BOOL, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT,
    K_GLOBAL, K_STORAGE, K_TENSOR,
} kind;

static const char *const kind_names[] = {
    "None", "a bool", "an int", "a float", "a str", "a tuple", "a list",
    "a dict", "a global", "a storage", "a tensor",
};

typedef enum global_id {
    G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE,
} global_id;

/* The allow-list.  Storage classes are plain data types (a dtype), never
 * called: they only name the dtype inside a persistent id. */
static const struct {
    const char *module, *name;
    global_id id;
    st_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, ST_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR, ST_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, ST_F32},
    {"torch", "FloatStorage", G_STORAGE, ST_F32},
    {"torch", "HalfStorage", G_STORAGE, ST_F16},
    {"torch", "BFloat16Storage", G_STORAGE, ST_BF16},
    {"torch", "DoubleStorage", G_STORAGE, ST_F64},
    /* Integer buffers such as bert.embeddings.position_ids, which many
     * checkpoints saved before transformers 4.31 still carry. */
    {"torch", "LongStorage", G_STORAGE, ST_I64},
    {"torch", "IntStorage", G_STORAGE, ST_I32},
    {"torch", "ShortStorage", G_STORAGE, ST_I16},
    {"torch", "CharStorage", G_STORAGE, ST_I8},
    {"torch", "ByteStorage", G_STORAGE, ST_U8},
    {"torch", "BoolStorage", G_STORAGE, ST_BOOL},
};

#define N_ALLOWED (sizeof(allowed) / sizeof(allowed[0]))

typedef struct obj {
    uint8_t kind;
    uint8_t global; /* K_GLOBAL: index into allowed[] */
    uint8_t dtype;  /* K_STORAGE */
    uint32_t n, cap; /* containers: items used / allocated */
    union {
        int64_t i;
        double f;
        struct {
            const uint8_t *p;
            size_t len;
        } s;
        uint32_t *items; /* a dict holds key, value, key, value, ... */
        uint32_t tensor; /* index into vm.tens */
        struct {
            uint32_t key; /* a K_STR */
            int64_t numel;
        } storage;
    } u;
} obj;

typedef struct tens {
    uint32_t storage; /* a K_STORAGE */
    int64_t offset, numel;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} tens;

typedef struct vm {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    obj *objs;
    size_t nobj, cap_obj, slots;
    uint32_t *stack;
    size_t sp, cap_stack;
    size_t marks[PKL_MAX_MARKS];
    size_t nmark;
    uint32_t *memo;
    size_t nmemo, cap_memo;
    tens *tens;
    size_t ntens, cap_tens;
    bct_error *err;
} vm;

/* ------------------------------------------------------------------------ */
/* errors and allocation                                                    */
/* ------------------------------------------------------------------------ */

static int fail(vm *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "MESSAGE (opcode at byte N)". */
static int fail(vm *m, int code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return bct_fail(m->err, code, "%s (opcode at byte %zu)", msg, m->op_pos);
}

/* Copies untrusted bytes into buf for a message: printable ASCII kept,
 * anything else shown as '?', at most cap - 1 bytes. */
static const char *printable(const uint8_t *p, size_t n, char *buf,
                             size_t cap) {
    size_t k = 0;
    for (; k < n && k + 1 < cap; k++)
        buf[k] = p[k] >= 0x20 && p[k] < 0x7f ? (char)p[k] : '?';
    buf[k] = '\0';
    return buf;
}

/* Makes room for one more element of size `size` in *arr (capacity *cap,
 * `used` in use); doubles.  The callers' limits keep sizes small. */
static int reserve(void **arr, size_t *cap, size_t used, size_t size) {
    if (used < *cap) return BCT_OK;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * size);
    if (!p) return BCT_ENOMEM;
    *arr = p;
    *cap = ncap;
    return BCT_OK;
}

static int oom(vm *m) {
    return fail(m, BCT_ENOMEM, "out of memory");
}

/* A new value; its index in *out. */
static int new_obj(vm *m, kind k, uint32_t *out) {
    if (m->nobj >= PKL_MAX_OBJECTS)
        return fail(m, BCT_ERANGE,
                    "the pickle creates more than %u values (limit "
                    "PKL_MAX_OBJECTS); a state dict needs far fewer",
                    PKL_MAX_OBJECTS);
    if (reserve((void **)&m->objs, &m->cap_obj, m->nobj, sizeof(obj)))
        return oom(m);
    obj *o = &m->objs[m->nobj];
    memset(o, 0, sizeof(*o));
    o->kind = (uint8_t)k;
    *out = (uint32_t)m->nobj++;
    return BCT_OK;
}

static int is_container(kind k) {
    return k == K_TUPLE || k == K_LIST || k == K_DICT;
}

static int add_item(vm *m, uint32_t c, uint32_t item) {
    if (m->slots >= PKL_MAX_SLOTS)
        return fail(m, BCT_ERANGE,
                    "the pickle's containers hold more than %u items "
                    "(limit PKL_MAX_SLOTS)",
                    PKL_MAX_SLOTS);
    obj *o = &m->objs[c];
    if (o->n == o->cap) {
        uint32_t ncap = o->cap ? o->cap * 2 : 4;
        uint32_t *p = realloc(o->u.items, ncap * sizeof(uint32_t));
        if (!p) return oom(m);
        o->u.items = p;
        o->cap = ncap;
    }
    o->u.items[o->n++] = item;
    m->slots++;
    return BCT_OK;
}

/* ------------------------------------------------------------------------ */
/* stack                                                                    */
/* ------------------------------------------------------------------------ */

static int push(vm *m, uint32_t v) {
    if (m->sp >= PKL_MAX_STACK)
        return fail(m, BCT_ERANGE,
                    "the pickle's stack grows past %u values (limit "
                    "PKL_MAX_STACK)",
                    PKL_MAX_STACK);
    if (reserve((void **)&m->stack, &m->cap_stack, m->sp, sizeof(uint32_t)))
        return oom(m);
    m->stack[m->sp++] = v;
    return BCT_OK;
}

/* Values above the innermost mark: they start at stack[base]. */
static size_t mark_base(const vm *m) {
    return m->nmark ? m->marks[m->nmark - 1] : 0;
}

/* Pops one value (never below the innermost mark). */
static int pop(vm *m, const char *opname, uint32_t *out) {
    if (m->sp <= mark_base(m))
        return fail(m, BCT_EFORMAT, "%s needs a value but the stack is "
                    "empty", opname);
    *out = m->stack[--m->sp];
    return BCT_OK;
}

static int top(vm *m, const char *opname, uint32_t *out) {
    if (m->sp <= mark_base(m))
        return fail(m, BCT_EFORMAT, "%s needs a value but the stack is "
                    "empty", opname);
    *out = m->stack[m->sp - 1];
    return BCT_OK;
}

/* Pops the innermost mark; the values above it start at *base. */
static int pop_mark(vm *m, const char *opname, size_t *base) {
    if (!m->nmark)
        return fail(m, BCT_EFORMAT, "%s without a MARK", opname);
    *base = m->marks[--m->nmark];
    return BCT_OK;
}

/* ------------------------------------------------------------------------ */
/* reading operands                                                         */
/* ------------------------------------------------------------------------ */

static int need(vm *m, size_t n, const char *opname) {
    if (n > m->len - m->pos)
        return fail(m, BCT_EFORMAT,
                    "%s needs %zu more bytes but the pickle ends after "
                    "%zu (truncated)",
                    opname, n, m->len - m->pos);
    return BCT_OK;
}

static uint64_t read_le(vm *m, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)m->buf[m->pos + i] << (8 * i);
    m->pos += n;
    return v;
}

/* ------------------------------------------------------------------------ */
/* opcodes                                                                  */
/* ------------------------------------------------------------------------ */

static int push_int(vm *m, int64_t v) {
    uint32_t o = 0;
    int rc = new_obj(m, K_INT, &o);
    if (rc) return rc;
    m->objs[o].u.i = v;
    return push(m, o);
}

static int push_simple(vm *m, kind k, int64_t v) {
    uint32_t o = 0;
    int rc = new_obj(m, k, &o);
    if (rc) return rc;
    m->objs[o].u.i = v;
    return push(m, o);
}

/* A string of n bytes at the current position. */
static int push_str(vm *m, uint64_t n, const char *opname) {
    if (n > m->len - m->pos) /* also catches n >= 2^63 */
        return fail(m, BCT_EFORMAT,
                    "%s of %" PRIu64 " bytes runs past the end of the "
                    "pickle (%zu bytes left)",
                    opname, n, m->len - m->pos);
    uint32_t o = 0;
    int rc = new_obj(m, K_STR, &o);
    if (rc) return rc;
    m->objs[o].u.s.p = m->buf + m->pos;
    m->objs[o].u.s.len = (size_t)n;
    m->pos += (size_t)n;
    return push(m, o);
}

/* Resolves module.name against the allow-list and pushes the global. */
static int push_global(vm *m, const uint8_t *mod, size_t mlen,
                       const uint8_t *name, size_t nlen) {
    for (size_t i = 0; i < N_ALLOWED; i++) {
        if (strlen(allowed[i].module) == mlen &&
            !memcmp(allowed[i].module, mod, mlen) &&
            strlen(allowed[i].name) == nlen &&
            !memcmp(allowed[i].name, name, nlen)) {
            uint32_t o = 0;
            int rc = new_obj(m, K_GLOBAL, &o);
            if (rc) return rc;
            m->objs[o].global = (uint8_t)i;
            return push(m, o);
        }
    }
    char a[120], b[120];
    printable(mod, mlen, a, sizeof(a));
    printable(name, nlen, b, sizeof(b));
    static const char suffix[] = "Storage";
    size_t sl = sizeof(suffix) - 1;
    if (!strcmp(a, "torch") && nlen > sl && !memcmp(name + nlen - sl, suffix, sl))
        return fail(m, BCT_EUNSUPPORTED,
                    "storage type torch.%s is not supported (supported: "
                    "Float, Half, BFloat16, Double, Long, Int, Short, Char, "
                    "Byte and Bool storages)",
                    b);
    return fail(m, BCT_EUNSUPPORTED,
                "global %s.%s is not allowed (a state dict may only use "
                "collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                "torch._utils._rebuild_parameter and torch storage types)",
                a, b);
}

/* GLOBAL: "module\nname\n". */
static int op_global(vm *m) {
    const uint8_t *line[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        size_t left = m->len - m->pos;
        size_t span = left < PKL_MAX_GLOBAL_LINE ? left : PKL_MAX_GLOBAL_LINE;
        const uint8_t *nl = memchr(m->buf + m->pos, '\n', span);
        if (!nl)
            return fail(m, BCT_EFORMAT,
                        "GLOBAL's %s is not a newline-terminated line of "
                        "at most %u bytes (limit PKL_MAX_GLOBAL_LINE)",
                        k ? "name" : "module", PKL_MAX_GLOBAL_LINE);
        line[k] = m->buf + m->pos;
        len[k] = (size_t)(nl - line[k]);
        m->pos += len[k] + 1;
    }
    return push_global(m, line[0], len[0], line[1], len[1]);
}

static int op_stack_global(vm *m) {
    uint32_t name = 0, mod = 0;
    int rc;
    if ((rc = pop(m, "STACK_GLOBAL", &name)) ||
        (rc = pop(m, "STACK_GLOBAL", &mod)))
        return rc;
    const obj *n = &m->objs[name], *d = &m->objs[mod];
    if (n->kind != K_STR || d->kind != K_STR)
        return fail(m, BCT_EFORMAT,
                    "STACK_GLOBAL needs two strings, got %s and %s",
                    kind_names[d->kind], kind_names[n->kind]);
    return push_global(m, d->u.s.p, d->u.s.len, n->u.s.p, n->u.s.len);
}

static int memo_put(vm *m, uint64_t idx) {
    if (idx >= PKL_MAX_MEMO)
        return fail(m, BCT_ERANGE,
                    "memo index %" PRIu64 " is over the limit of %u "
                    "entries (PKL_MAX_MEMO)",
                    idx, PKL_MAX_MEMO);
    uint32_t v = 0;
    int rc = top(m, "memo store", &v);
    if (rc) return rc;
    if (idx >= m->cap_memo) {
        size_t ncap = m->cap_memo ? m->cap_memo : 64;
        while (ncap <= idx) ncap *= 2;
        uint32_t *p = realloc(m->memo, ncap * sizeof(uint32_t));
        if (!p) return oom(m);
        m->memo = p;
        m->cap_memo = ncap;
    }
    while (m->nmemo <= idx) m->memo[m->nmemo++] = MEMO_EMPTY;
    m->memo[idx] = v;
    return BCT_OK;
}

static int memo_get(vm *m, uint64_t idx) {
    if (idx >= m->nmemo || m->memo[idx] == MEMO_EMPTY)
        return fail(m, BCT_EFORMAT, "memo index %" PRIu64 " was never "
                    "stored", idx);
    return push(m, m->memo[idx]);
}

/* A tuple of the values stack[base, sp), which are popped. */
static int make_tuple(vm *m, size_t base) {
    uint32_t t = 0;
    int rc = new_obj(m, K_TUPLE, &t);
    for (size_t i = base; i < m->sp && !rc; i++)
        rc = add_item(m, t, m->stack[i]);
    if (rc) return rc;
    m->sp = base;
    return push(m, t);
}

static int op_setitems(vm *m, size_t base, const char *opname) {
    if (base == 0 || base <= mark_base(m))
        return fail(m, BCT_EFORMAT, "%s has no dict below its items",
                    opname);
    uint32_t d = m->stack[base - 1];
    if (m->objs[d].kind != K_DICT)
        return fail(m, BCT_EFORMAT, "%s on %s; only dicts take items",
                    opname, kind_names[m->objs[d].kind]);
    if ((m->sp - base) % 2)
        return fail(m, BCT_EFORMAT, "%s with an odd number of values (%zu)",
                    opname, m->sp - base);
    int rc = BCT_OK;
    for (size_t i = base; i < m->sp && !rc; i++)
        rc = add_item(m, d, m->stack[i]);
    m->sp = base;
    return rc;
}

static int op_appends(vm *m, size_t base, const char *opname) {
    if (base == 0 || base <= mark_base(m))
        return fail(m, BCT_EFORMAT, "%s has no list below its items",
                    opname);
    uint32_t l = m->stack[base - 1];
    if (m->objs[l].kind != K_LIST)
        return fail(m, BCT_EFORMAT, "%s on %s; only lists take items",
                    opname, kind_names[m->objs[l].kind]);
    int rc = BCT_OK;
    for (size_t i = base; i < m->sp && !rc; i++)
        rc = add_item(m, l, m->stack[i]);
    m->sp = base;
    return rc;
}

static const char *global_name(const obj *o, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", allowed[o->global].module,
             allowed[o->global].name);
    return buf;
}

/* BINPERSID: ('storage', storage class, key, location, numel). */
static int op_binpersid(vm *m) {
    uint32_t pid = 0;
    int rc = pop(m, "BINPERSID", &pid);
    if (rc) return rc;
    const obj *t = &m->objs[pid];
    if (t->kind != K_TUPLE || t->n != 5)
        return fail(m, BCT_EFORMAT,
                    "persistent id is %s%s, expected ('storage', storage "
                    "type, key, location, numel)",
                    kind_names[t->kind], t->kind == K_TUPLE ? " of another length" : "");
    const obj *tag = &m->objs[t->u.items[0]], *cls = &m->objs[t->u.items[1]],
              *key = &m->objs[t->u.items[2]], *loc = &m->objs[t->u.items[3]],
              *num = &m->objs[t->u.items[4]];
    if (tag->kind != K_STR || tag->u.s.len != 7 ||
        memcmp(tag->u.s.p, "storage", 7))
        return fail(m, BCT_EUNSUPPORTED,
                    "persistent id does not start with 'storage'; only "
                    "tensor storages are supported");
    if (cls->kind != K_GLOBAL || allowed[cls->global].id != G_STORAGE)
        return fail(m, BCT_EFORMAT,
                    "persistent id's storage type is %s, not a torch "
                    "storage class",
                    kind_names[cls->kind]);
    if (key->kind != K_STR || loc->kind != K_STR || num->kind != K_INT ||
        num->u.i < 0)
        return fail(m, BCT_EFORMAT,
                    "persistent id needs a str key, a str location and a "
                    "non-negative int numel");
    uint32_t s = 0;
    st_dtype dt = allowed[cls->global].dtype;
    uint32_t key_idx = t->u.items[2];
    int64_t numel = num->u.i;
    if ((rc = new_obj(m, K_STORAGE, &s))) return rc;
    m->objs[s].dtype = (uint8_t)dt;
    m->objs[s].u.storage.key = key_idx;
    m->objs[s].u.storage.numel = numel;
    return push(m, s);
}

static void format_dims(const int64_t *d, int n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 1 < cap; i++) {
        int k = snprintf(buf + used, cap - used, "%s%" PRId64, i ? ", " : "",
                         d[i]);
        if (k < 0) return;
        used += (size_t)k;
    }
}

/* Reads a tuple of ints (a size or a stride). */
static int int_tuple(vm *m, uint32_t idx, const char *what, int64_t *out,
                     int *n) {
    const obj *t = &m->objs[idx];
    if (t->kind != K_TUPLE)
        return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: %s is %s, "
                    "expected a tuple of ints", what, kind_names[t->kind]);
    if (t->n > ST_MAX_DIMS)
        return fail(m, BCT_EUNSUPPORTED, "_rebuild_tensor_v2: %s has %u "
                    "dimensions, more than the supported %d",
                    what, t->n, ST_MAX_DIMS);
    for (uint32_t i = 0; i < t->n; i++) {
        const obj *e = &m->objs[t->u.items[i]];
        if (e->kind != K_INT)
            return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: %s[%u] is %s, "
                        "expected an int", what, i, kind_names[e->kind]);
        out[i] = e->u.i;
    }
    *n = (int)t->n;
    return BCT_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks
 * [, metadata]): a contiguous row-major view inside the storage. */
static int rebuild_tensor(vm *m, const obj *args) {
    if (args->n != 6 && args->n != 7)
        return fail(m, BCT_EFORMAT,
                    "_rebuild_tensor_v2 called with %u arguments, expected "
                    "6 or 7",
                    args->n);
    const uint32_t *a = args->u.items;
    const obj *st = &m->objs[a[0]], *off = &m->objs[a[1]];
    if (st->kind != K_STORAGE)
        return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: storage is %s",
                    kind_names[st->kind]);
    if (off->kind != K_INT || off->u.i < 0)
        return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: storage offset "
                    "must be a non-negative int");
    tens t = {.storage = a[0], .offset = off->u.i};
    int64_t stride[ST_MAX_DIMS];
    int nstride, rc;
    if ((rc = int_tuple(m, a[2], "size", t.shape, &t.ndim)) ||
        (rc = int_tuple(m, a[3], "stride", stride, &nstride)))
        return rc;
    char sz[160], sd[160];
    format_dims(t.shape, t.ndim, sz, sizeof(sz));
    format_dims(stride, nstride, sd, sizeof(sd));
    if (nstride != t.ndim)
        return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: size (%s) and "
                    "stride (%s) differ in length", sz, sd);
    t.numel = 1;
    for (int i = 0; i < t.ndim; i++) {
        if (t.shape[i] < 0 ||
            __builtin_mul_overflow(t.numel, t.shape[i], &t.numel))
            return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: size (%s) is "
                        "negative or overflows", sz);
    }
    /* Row-major contiguity; a dimension of size 1 may have any stride. */
    int64_t expect = 1;
    for (int i = t.ndim - 1; i >= 0; i--) {
        if (t.shape[i] != 1 && stride[i] != expect)
            return fail(m, BCT_EUNSUPPORTED,
                        "_rebuild_tensor_v2: stride (%s) of size (%s) is not "
                        "contiguous row-major; save the tensor with "
                        ".contiguous()",
                        sd, sz);
        if (__builtin_mul_overflow(expect, t.shape[i], &expect))
            return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: size (%s) "
                        "overflows", sz);
    }
    int64_t end;
    if (__builtin_add_overflow(t.offset, t.numel, &end) ||
        end > st->u.storage.numel) {
        char key[80];
        const obj *k = &m->objs[st->u.storage.key];
        return fail(m, BCT_EFORMAT,
                    "_rebuild_tensor_v2: size (%s) at storage offset %" PRId64
                    " ends past the %" PRId64 " elements of storage \"%s\"",
                    sz, t.offset, st->u.storage.numel,
                    printable(k->u.s.p, k->u.s.len, key, sizeof(key)));
    }
    const obj *rg = &m->objs[a[4]], *hooks = &m->objs[a[5]];
    if (rg->kind != K_BOOL)
        return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: requires_grad is "
                    "%s, expected a bool", kind_names[rg->kind]);
    if (hooks->kind != K_DICT || hooks->n)
        return fail(m, BCT_EUNSUPPORTED, "_rebuild_tensor_v2: backward "
                    "hooks must be an empty dict");
    if (args->n == 7 && m->objs[a[6]].kind != K_NONE &&
        m->objs[a[6]].kind != K_DICT)
        return fail(m, BCT_EFORMAT, "_rebuild_tensor_v2: metadata is %s, "
                    "expected None or a dict", kind_names[m->objs[a[6]].kind]);

    if (reserve((void **)&m->tens, &m->cap_tens, m->ntens, sizeof(tens)))
        return oom(m);
    uint32_t o = 0;
    if ((rc = new_obj(m, K_TENSOR, &o))) return rc;
    m->tens[m->ntens] = t;
    m->objs[o].u.tensor = (uint32_t)m->ntens++;
    return push(m, o);
}

static int op_reduce(vm *m) {
    uint32_t args_i = 0, fn_i = 0;
    int rc;
    if ((rc = pop(m, "REDUCE", &args_i)) || (rc = pop(m, "REDUCE", &fn_i)))
        return rc;
    const obj *fn = &m->objs[fn_i], *args = &m->objs[args_i];
    char name[80];
    if (fn->kind != K_GLOBAL)
        return fail(m, BCT_EUNSUPPORTED,
                    "REDUCE of %s is not allowed; only "
                    "collections.OrderedDict and torch._utils._rebuild_* "
                    "may be called",
                    kind_names[fn->kind]);
    global_name(fn, name, sizeof(name));
    if (args->kind != K_TUPLE)
        return fail(m, BCT_EFORMAT, "REDUCE of %s with %s arguments, "
                    "expected a tuple", name, kind_names[args->kind]);
    switch (allowed[fn->global].id) {
    case G_ORDERED_DICT: {
        if (args->n)
            return fail(m, BCT_EUNSUPPORTED, "REDUCE: %s called with %u "
                        "arguments; only OrderedDict() is allowed",
                        name, args->n);
        uint32_t d = 0;
        if ((rc = new_obj(m, K_DICT, &d))) return rc;
        return push(m, d);
    }
    case G_REBUILD_TENSOR:
        return rebuild_tensor(m, args);
    case G_REBUILD_PARAMETER:
        if (args->n != 3 || m->objs[args->u.items[0]].kind != K_TENSOR)
            return fail(m, BCT_EFORMAT, "REDUCE: %s needs (tensor, "
                        "requires_grad, hooks)", name);
        return push(m, args->u.items[0]);
    case G_STORAGE:
        break;
    }
    return fail(m, BCT_EUNSUPPORTED,
                "REDUCE of %s is not allowed (storage types appear only "
                "inside persistent ids)",
                name);
}

/* BUILD sets attributes; a state dict uses it only to attach _metadata to
 * its OrderedDict, which is ignored. */
static int op_build(vm *m) {
    uint32_t state = 0, target = 0;
    int rc;
    if ((rc = pop(m, "BUILD", &state)) || (rc = top(m, "BUILD", &target)))
        return rc;
    kind tk = m->objs[target].kind, sk = m->objs[state].kind;
    if (tk != K_DICT)
        return fail(m, BCT_EUNSUPPORTED,
                    "BUILD on %s is not allowed (only a dict's _metadata "
                    "may be set)",
                    kind_names[tk]);
    if (sk != K_DICT)
        return fail(m, BCT_EFORMAT, "BUILD with %s state, expected a dict",
                    kind_names[sk]);
    return BCT_OK;
}

/* ------------------------------------------------------------------------ */
/* the result                                                               */
/* ------------------------------------------------------------------------ */

/* A string value as a C string: valid UTF-8 without NUL bytes. */
static int copy_name(vm *m, const obj *s, const char *what, char **out) {
    char shown[80], why_buf[80];
    utf8_problem why = UTF8_OK;
    if (memchr(s->u.s.p, '\0', s->u.s.len))
        return fail(m, BCT_EFORMAT, "%s \"%s\" contains a NUL byte", what,
                    printable(s->u.s.p, s->u.s.len, shown, sizeof(shown)));
    if (utf8_find_invalid(s->u.s.p, s->u.s.len, 0, &why) != s->u.s.len)
        return fail(m, BCT_EFORMAT, "%s \"%s\" is not UTF-8: %s", what,
                    printable(s->u.s.p, s->u.s.len, shown, sizeof(shown)),
                    utf8_describe(why, "name", why_buf, sizeof(why_buf)));
    char *c = malloc(s->u.s.len + 1);
    if (!c) return oom(m);
    memcpy(c, s->u.s.p, s->u.s.len);
    c[s->u.s.len] = '\0';
    *out = c;
    return BCT_OK;
}

static int collect(vm *m, uint32_t root, pkl_state_dict *out) {
    const obj *d = &m->objs[root];
    if (d->kind != K_DICT)
        return fail(m, BCT_EUNSUPPORTED, "the pickle holds %s, not a state "
                    "dict (a dict of tensors)", kind_names[d->kind]);
    size_t n = d->n / 2;
    out->tensors = calloc(n ? n : 1, sizeof(pkl_tensor));
    if (!out->tensors) return oom(m);
    for (size_t i = 0; i < n; i++) {
        const obj *k = &m->objs[d->u.items[2 * i]];
        const obj *v = &m->objs[d->u.items[2 * i + 1]];
        char buf[80];
        if (k->kind != K_STR)
            return fail(m, BCT_EFORMAT, "state dict key %zu is %s, "
                        "expected a str", i, kind_names[k->kind]);
        if (v->kind != K_TENSOR)
            return fail(m, BCT_EUNSUPPORTED, "state dict entry \"%s\" is "
                        "%s, expected a tensor",
                        printable(k->u.s.p, k->u.s.len, buf, sizeof(buf)),
                        kind_names[v->kind]);
        const tens *t = &m->tens[v->u.tensor];
        const obj *st = &m->objs[t->storage];
        pkl_tensor *p = &out->tensors[out->count++];
        int rc;
        if ((rc = copy_name(m, k, "state dict key", &p->name)) ||
            (rc = copy_name(m, &m->objs[st->u.storage.key], "storage key",
                            &p->storage_key)))
            return rc;
        p->dtype = (st_dtype)st->dtype;
        p->storage_numel = st->u.storage.numel;
        p->offset = t->offset;
        p->ndim = t->ndim;
        memcpy(p->shape, t->shape, sizeof(p->shape));
        p->numel = t->numel;
    }
    return BCT_OK;
}

/* ------------------------------------------------------------------------ */
/* the loop                                                                 */
/* ------------------------------------------------------------------------ */

static int step(vm *m, int op, int *stop, uint32_t *result) {
    int rc;
    uint32_t v = 0;
    size_t base = 0;
    switch (op) {
    case OP_PROTO:
        if ((rc = need(m, 1, "PROTO"))) return rc;
        v = (uint32_t)read_le(m, 1);
        if (v < 2 || v > 5)
            return fail(m, BCT_EUNSUPPORTED, "pickle protocol %u is not "
                        "supported (torch.save writes 2; 2 to 5 are read)", v);
        return BCT_OK;
    case OP_FRAME: {
        if ((rc = need(m, 8, "FRAME"))) return rc;
        uint64_t n = read_le(m, 8);
        if (n > m->len - m->pos)
            return fail(m, BCT_EFORMAT, "FRAME of %" PRIu64 " bytes runs "
                        "past the end of the pickle", n);
        return BCT_OK; /* frames only group opcodes */
    }
    case OP_STOP:
        if ((rc = pop(m, "STOP", result))) return rc;
        *stop = 1;
        return BCT_OK;
    case OP_MARK:
        if (m->nmark >= PKL_MAX_MARKS)
            return fail(m, BCT_ERANGE, "MARKs nest deeper than %u (limit "
                        "PKL_MAX_MARKS)", PKL_MAX_MARKS);
        m->marks[m->nmark++] = m->sp;
        return BCT_OK;
    case OP_GLOBAL:
        return op_global(m);
    case OP_STACK_GLOBAL:
        return op_stack_global(m);
    case OP_BINPUT:
        if ((rc = need(m, 1, "BINPUT"))) return rc;
        return memo_put(m, read_le(m, 1));
    case OP_LONG_BINPUT:
        if ((rc = need(m, 4, "LONG_BINPUT"))) return rc;
        return memo_put(m, read_le(m, 4));
    case OP_MEMOIZE:
        return memo_put(m, m->nmemo);
    case OP_BINGET:
        if ((rc = need(m, 1, "BINGET"))) return rc;
        return memo_get(m, read_le(m, 1));
    case OP_LONG_BINGET:
        if ((rc = need(m, 4, "LONG_BINGET"))) return rc;
        return memo_get(m, read_le(m, 4));
    case OP_EMPTY_TUPLE:
        return make_tuple(m, m->sp);
    case OP_TUPLE:
        if ((rc = pop_mark(m, "TUPLE", &base))) return rc;
        return make_tuple(m, base);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3: {
        size_t k = (size_t)(op - OP_TUPLE1 + 1);
        if (m->sp - mark_base(m) < k)
            return fail(m, BCT_EFORMAT, "TUPLE%zu needs %zu values on the "
                        "stack", k, k);
        return make_tuple(m, m->sp - k);
    }
    case OP_EMPTY_DICT:
        if ((rc = new_obj(m, K_DICT, &v))) return rc;
        return push(m, v);
    case OP_EMPTY_LIST:
        if ((rc = new_obj(m, K_LIST, &v))) return rc;
        return push(m, v);
    case OP_SETITEM:
        if (m->sp - mark_base(m) < 3)
            return fail(m, BCT_EFORMAT, "SETITEM needs a dict, a key and "
                        "a value on the stack");
        return op_setitems(m, m->sp - 2, "SETITEM");
    case OP_SETITEMS:
        if ((rc = pop_mark(m, "SETITEMS", &base))) return rc;
        return op_setitems(m, base, "SETITEMS");
    case OP_APPEND:
        if (m->sp - mark_base(m) < 2)
            return fail(m, BCT_EFORMAT, "APPEND needs a list and a value on "
                        "the stack");
        return op_appends(m, m->sp - 1, "APPEND");
    case OP_APPENDS:
        if ((rc = pop_mark(m, "APPENDS", &base))) return rc;
        return op_appends(m, base, "APPENDS");
    case OP_BININT:
        if ((rc = need(m, 4, "BININT"))) return rc;
        return push_int(m, (int32_t)(uint32_t)read_le(m, 4));
    case OP_BININT1:
        if ((rc = need(m, 1, "BININT1"))) return rc;
        return push_int(m, (int64_t)read_le(m, 1));
    case OP_BININT2:
        if ((rc = need(m, 2, "BININT2"))) return rc;
        return push_int(m, (int64_t)read_le(m, 2));
    case OP_LONG1: {
        if ((rc = need(m, 1, "LONG1"))) return rc;
        size_t n = (size_t)read_le(m, 1);
        if (n > PKL_MAX_LONG_BYTES)
            return fail(m, BCT_EUNSUPPORTED, "LONG1 of %zu bytes does not "
                        "fit in 64 bits (limit PKL_MAX_LONG_BYTES)", n);
        if ((rc = need(m, n, "LONG1"))) return rc;
        uint64_t u = read_le(m, n);
        if (n && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~0ull << (8 * n);
        return push_int(m, (int64_t)u);
    }
    case OP_BINFLOAT: {
        if ((rc = need(m, 8, "BINFLOAT"))) return rc;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | m->buf[m->pos + (size_t)i];
        m->pos += 8;
        if ((rc = new_obj(m, K_FLOAT, &v))) return rc;
        memcpy(&m->objs[v].u.f, &u, sizeof(double));
        return push(m, v);
    }
    case OP_NONE:
        return push_simple(m, K_NONE, 0);
    case OP_NEWTRUE:
        return push_simple(m, K_BOOL, 1);
    case OP_NEWFALSE:
        return push_simple(m, K_BOOL, 0);
    case OP_BINUNICODE:
        if ((rc = need(m, 4, "BINUNICODE"))) return rc;
        return push_str(m, read_le(m, 4), "BINUNICODE");
    case OP_SHORT_BINUNICODE:
        if ((rc = need(m, 1, "SHORT_BINUNICODE"))) return rc;
        return push_str(m, read_le(m, 1), "SHORT_BINUNICODE");
    case OP_BINUNICODE8:
        if ((rc = need(m, 8, "BINUNICODE8"))) return rc;
        return push_str(m, read_le(m, 8), "BINUNICODE8");
    case OP_SHORT_BINSTRING:
        if ((rc = need(m, 1, "SHORT_BINSTRING"))) return rc;
        return push_str(m, read_le(m, 1), "SHORT_BINSTRING");
    case OP_BINSTRING: {
        if ((rc = need(m, 4, "BINSTRING"))) return rc;
        int32_t n = (int32_t)(uint32_t)read_le(m, 4);
        if (n < 0)
            return fail(m, BCT_EFORMAT, "BINSTRING of negative length %d",
                        n);
        return push_str(m, (uint64_t)n, "BINSTRING");
    }
    case OP_REDUCE:
        return op_reduce(m);
    case OP_BUILD:
        return op_build(m);
    case OP_BINPERSID:
        return op_binpersid(m);
    default: {
        const char *name = refused_name(op);
        if (name)
            return fail(m, BCT_EUNSUPPORTED, "opcode %s (0x%02x) is not "
                        "allowed in a state dict", name, op);
        return fail(m, BCT_EFORMAT, "unknown opcode 0x%02x", op);
    }
    }
}

static void vm_free(vm *m) {
    for (size_t i = 0; i < m->nobj; i++)
        if (is_container((kind)m->objs[i].kind)) free(m->objs[i].u.items);
    free(m->objs);
    free(m->stack);
    free(m->memo);
    free(m->tens);
}

void pkl_state_dict_free(pkl_state_dict *sd) {
    if (!sd) return;
    for (size_t i = 0; i < sd->count; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage_key);
    }
    free(sd->tensors);
    sd->tensors = NULL;
    sd->count = 0;
}

int pkl_load_state_dict(const uint8_t *buf, size_t len, pkl_state_dict *out,
                        bct_error *err) {
    memset(out, 0, sizeof(*out));
    vm m = {.buf = buf, .len = len, .err = err};
    int rc = BCT_OK, stop = 0;
    uint32_t result = 0;
    while (!stop && rc == BCT_OK) {
        m.op_pos = m.pos;
        if (m.pos >= m.len) {
            rc = fail(&m, BCT_EFORMAT, "the pickle ends without STOP "
                      "(truncated)");
            break;
        }
        rc = step(&m, m.buf[m.pos++], &stop, &result);
    }
    if (rc == BCT_OK) rc = collect(&m, result, out);
    vm_free(&m);
    if (rc != BCT_OK) pkl_state_dict_free(out);
    return rc;
}
