#include "glue_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int glue_task_parse(const char *name) {
    if (strcmp(name, "sst2") == 0) return GLUE_SST2;
    if (strcmp(name, "mrpc") == 0) return GLUE_MRPC;
    if (strcmp(name, "rte") == 0) return GLUE_RTE;
    if (strcmp(name, "generic") == 0) return GLUE_GENERIC;
    return -1;
}

const char *glue_task_name(glue_task task) {
    static const char *names[] = {"sst2", "mrpc", "rte", "generic"};
    return names[task];
}

static char *read_all(const char *path, size_t *len, bct_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *p = realloc(buf, cap * 2 + 1);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        bct_fail(err, buf ? BCT_EIO : BCT_ENOMEM, "%s: cannot read", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Python's str.strip() on ASCII-only checks is enough to find blank lines:
 * a line of only Unicode spaces is not a GLUE example either way. */
static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\v' && *s != '\f' && *s != '\r') return 0;
    return 1;
}

static int map_label(const char *s, const bert_config *cfg, int *out) {
    if (cfg) {
        int id = bert_config_label_id(cfg, s);
        if (id >= 0) {
            *out = id;
            return BCT_OK;
        }
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000) return BCT_EFORMAT;
    *out = (int)v;
    return BCT_OK;
}

static int parse_line(char *line, glue_task task, const bert_config *cfg, glue_example *ex) {
    char *f[8];
    int nf = 0;
    for (char *p = line; nf < 8;) {
        f[nf++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
    const char *label;
    switch (task) {
    case GLUE_SST2:
        if (nf < 2) return BCT_EFORMAT;
        ex->a = f[0], ex->b = NULL, label = f[1];
        break;
    case GLUE_MRPC:
        if (nf < 5) return BCT_EFORMAT;
        ex->a = f[3], ex->b = f[4], label = f[0];
        break;
    case GLUE_RTE:
        if (nf < 4) return BCT_EFORMAT;
        ex->a = f[1], ex->b = f[2], label = f[3];
        break;
    default: /* generic: the last field is the label */
        if (nf < 2 || nf > 3) return BCT_EFORMAT;
        ex->a = f[0], ex->b = nf == 3 ? f[1] : NULL, label = f[nf - 1];
        break;
    }
    return map_label(label, cfg, &ex->label);
}

int glue_load(const char *path, glue_task task, const bert_config *labels, int max_rows,
              glue_set *out, bct_error *err) {
    size_t len;
    memset(out, 0, sizeof(*out));
    char *text = read_all(path, &len, err);
    if (!text) return BCT_EIO;
    char *p = text;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    out->ex = calloc(lines, sizeof(glue_example));
    out->text = text;
    if (!out->ex) {
        glue_free(out);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    int seen_header = task == GLUE_GENERIC, lineno = 0; /* generic files have no header */
    while (p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        lineno++;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = '\0';
        if (!is_blank(p)) {
            if (!seen_header) {
                seen_header = 1;
            } else if (max_rows > 0 && out->n == max_rows) {
                glue_free(out);
                return bct_fail(err, BCT_ERANGE, "%s: more than %d examples", path, max_rows);
            } else if (parse_line(p, task, labels, &out->ex[out->n]) != BCT_OK) {
                glue_free(out);
                return bct_fail(err, BCT_EFORMAT,
                                "%s:%d: not a %s example (wrong number of fields, or a label "
                                "that is neither a label name nor an integer id)", path,
                                lineno, glue_task_name(task));
            } else {
                out->n++;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    return BCT_OK;
}

void glue_free(glue_set *set) {
    free(set->ex);
    free(set->text);
    memset(set, 0, sizeof(*set));
}
