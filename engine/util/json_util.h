/* json_util.h - cJSON helpers for validating the JSON header of a file.
 *
 * The safetensors and .bct readers both keep a JSON header inside a file
 * they do not trust.  cJSON accepts invalid UTF-8, raw control characters
 * and trailing garbage, silently keeps the first of two equal keys and
 * hands out numbers as doubles; these helpers close those gaps with error
 * messages that name the file offset or the field.
 */
#ifndef BCT_JSON_UTIL_H
#define BCT_JSON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

/* How a format words json_parse_header()'s messages. */
typedef struct json_header_words {
    const char *text;    /* what a cut-off UTF-8 sequence ends: "header" */
    const char *corrupt; /* after a parse error: "the file is corrupt" */
    const char *object;  /* what the root must be: "a JSON object with ..." */
    int digits;          /* json_describe() digits, for a root number */
} json_header_words;

/* Parses the n-byte header text found at file offset file_off into *root,
 * which must be a JSON object; the caller owns it (cJSON_Delete).  Fails
 * with BCT_EFORMAT ("header is not valid UTF-8 JSON text: ...", "header is
 * not valid JSON ...", "header has unexpected data after ...", "header is
 * <what>, expected <object>"); *root is then NULL. */
int json_parse_header(const char *text, size_t n, uint64_t file_off,
                      const json_header_words *words, cJSON **root,
                      bct_error *err);

/* Describes a JSON value for an error message: a number itself (with
 * `digits` significant digits), anything else by its kind ("a string"). */
void json_describe(const cJSON *item, int digits, char *buf, size_t cap);

/* 1 and *out set if item is a number that is an exact non-negative
 * integer <= 2^53 (where doubles stop being exact), else 0. */
int json_to_u64(const cJSON *item, uint64_t *out);

/* Finds the members of obj named keys[0..n) into slots[0..n) (NULL when
 * absent; unknown members are ignored).  A key that appears twice is
 * BCT_EFORMAT "<what>: field \"key\" appears twice". */
int json_pick_fields(const cJSON *obj, const char *const *keys,
                     const cJSON **slots, int n, const char *what,
                     bct_error *err);

/* Limits on a JSON text's structure, checked before cJSON builds a tree
 * (each value is a 64-byte node, so a 100 MB header of one 50M-entry
 * array took 3 GB).  `need` says in messages what the format needs. */
typedef struct json_budget {
    unsigned max_values; /* values, counted as separators + 1 */
    int max_array;       /* elements of one array */
    int max_depth;       /* nesting of objects and arrays, <= JSON_BUDGET_DEPTH */
    const char *need;    /* "a model of 16k tensors needs fewer" */
} json_budget;
#define JSON_BUDGET_DEPTH 32

/* Checks the n-byte text found at file offset file_off against b without
 * parsing it: strings are skipped, brackets, commas and colons counted.
 * Malformed text passes (json_parse_header() reports it).  BCT_EFORMAT
 * "header holds more than N values (...)", "header has an array of more
 * than N elements at byte B (...)", "header nests deeper than N levels at
 * byte B". */
int json_check_budget(const char *text, size_t n, uint64_t file_off, const json_budget *b,
                      bct_error *err);

/* A member name of obj that two members share (the smallest such name in
 * strcmp order), or NULL if all names differ.  O(n log n) by sorting the
 * names: a 1 MiB object of 96k keys costs milliseconds, where a pairwise
 * scan cost 25 s.  *oom is set to 1 (and NULL returned) when the name
 * list cannot be allocated, else to 0. */
const char *json_duplicate_key(const cJSON *obj, int *oom);

#endif
