/* json_util.c - cJSON helpers for validating file headers (json_util.h). */
#include "json_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* JSON numbers arrive as doubles; above 2^53 integers stop being exact. */
#define MAX_EXACT_INT 9007199254740992.0

int json_parse_header(const char *text, size_t n, uint64_t file_off,
                      const json_header_words *words, cJSON **root,
                      bct_error *err) {
    *root = NULL;
    /* cJSON accepts both invalid UTF-8 and raw control characters. */
    utf8_problem why;
    size_t bad = utf8_find_invalid((const uint8_t *)text, n, UTF8_JSON, &why);
    if (bad < n) {
        char what[96];
        return bct_fail(err, BCT_EFORMAT,
                        "header is not valid UTF-8 JSON text: byte 0x%02x at "
                        "file offset %" PRIu64 " is %s",
                        (unsigned char)text[bad], file_off + bad,
                        utf8_describe(why, words->text, what, sizeof(what)));
    }

    /* cJSON_ParseWithLength() would accept trailing garbage, so ask for the
     * end of the parsed value and check that only whitespace follows. */
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    int end_ok = end && end >= text && end <= text + n;
    if (!doc)
        return bct_fail(err, BCT_EFORMAT,
                        "header is not valid JSON (parse error near file "
                        "offset %" PRIu64 "); %s",
                        file_off + (end_ok ? (uint64_t)(end - text) : 0),
                        words->corrupt);
    for (const char *p = end_ok ? end : text + n; p < text + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(doc);
            return bct_fail(err, BCT_EFORMAT,
                            "header has unexpected data after the JSON "
                            "object at file offset %" PRIu64,
                            file_off + (uint64_t)(p - text));
        }
    }
    if (!cJSON_IsObject(doc)) {
        char what[64];
        json_describe(doc, words->digits, what, sizeof(what));
        cJSON_Delete(doc);
        return bct_fail(err, BCT_EFORMAT, "header is %s, expected %s", what,
                        words->object);
    }
    *root = doc;
    return BCT_OK;
}

void json_describe(const cJSON *item, int digits, char *buf, size_t cap) {
    if (cJSON_IsNumber(item))
        snprintf(buf, cap, "%.*g", digits, item->valuedouble);
    else if (cJSON_IsString(item)) snprintf(buf, cap, "a string");
    else if (cJSON_IsArray(item)) snprintf(buf, cap, "an array");
    else if (cJSON_IsObject(item)) snprintf(buf, cap, "an object");
    else if (cJSON_IsBool(item)) snprintf(buf, cap, "a boolean");
    else if (cJSON_IsNull(item)) snprintf(buf, cap, "null");
    else snprintf(buf, cap, "an invalid value");
}

int json_to_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    /* !(d >= 0) also rejects NaN; the round trip rejects fractions. */
    if (!(d >= 0.0) || d > MAX_EXACT_INT) return 0;
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return 0;
    *out = v;
    return 1;
}

int json_pick_fields(const cJSON *obj, const char *const *keys,
                     const cJSON **slots, int n, const char *what,
                     bct_error *err) {
    for (int i = 0; i < n; i++) slots[i] = NULL;
    const cJSON *field;
    cJSON_ArrayForEach(field, obj) {
        for (int i = 0; i < n; i++) {
            if (strcmp(field->string, keys[i]) != 0) continue;
            if (slots[i])
                return bct_fail(err, BCT_EFORMAT,
                                "%s: field \"%s\" appears twice", what,
                                keys[i]);
            slots[i] = field;
        }
    }
    return BCT_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting, not hashing: names come from untrusted files, and a fixed hash
 * lets a crafted header put every key in one bucket (quadratic again). */
const char *json_duplicate_key(const cJSON *obj, int *oom) {
    *oom = 0;
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) n += it->string != NULL;
    if (n < 2) return NULL;
    const char **names = malloc(n * sizeof(*names));
    if (!names) {
        *oom = 1;
        return NULL;
    }
    size_t k = 0;
    cJSON_ArrayForEach(it, obj) if (it->string) names[k++] = it->string;
    qsort(names, n, sizeof(*names), by_name);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
    free(names);
    return dup;
}

int json_check_budget(const char *t, size_t n, uint64_t file_off, const json_budget *b,
                      bct_error *err) {
    char kind[JSON_BUDGET_DEPTH];
    size_t items[JSON_BUDGET_DEPTH];
    size_t values = 1;
    int depth = 0, max_depth = b->max_depth < JSON_BUDGET_DEPTH ? b->max_depth : JSON_BUDGET_DEPTH;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '"') {
            for (i++; i < n && t[i] != '"'; i++)
                if (t[i] == '\\') i++;
        } else if (c == '{' || c == '[') {
            if (depth == max_depth)
                return bct_fail(err, BCT_EFORMAT, "header nests deeper than %d levels at byte %" PRIu64,
                                max_depth, file_off + i);
            kind[depth] = c;
            items[depth++] = 0;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
        } else if (c == ',' || c == ':') {
            if (++values > b->max_values)
                return bct_fail(err, BCT_EFORMAT, "header holds more than %u values (%s)", b->max_values,
                                b->need);
            if (c == ',' && depth > 0 && kind[depth - 1] == '[' && ++items[depth - 1] >= (size_t)b->max_array)
                return bct_fail(err, BCT_EFORMAT,
                                "header has an array of more than %d elements at byte %" PRIu64 " (%s)",
                                b->max_array, file_off + i, b->need);
        }
    }
    return BCT_OK;
}
