/* load.c - bert_model_load*: a directory is a Hugging Face checkpoint,
 * anything else a .bct file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bert_model.h"
#include "bert_model_priv.h"

int bert_model_load_mode(const char *path, const bert_mode *mode, bert_model **out, bct_error *err) {
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return bert_model_load_bct_mode(path, mode, out, err);
    if (mode && mode->act_int8 > 0)
        return bct_fail(err, BCT_EINVAL, "%s: int8 activations need a compressed .bct model", path);
    int rc = bert_model_load_hf(path, out, err);
    if (rc != BCT_OK || !mode) return rc;
    bert_mode_apply(&(*out)->mode, mode);
    if ((*out)->mode.int_layernorm && (rc = bert_model_init_int_norms(*out, err)) != BCT_OK) {
        bert_model_free(*out);
        *out = NULL;
    }
    return rc;
}

int bert_model_load(const char *path, bert_model **out, bct_error *err) {
    return bert_model_load_mode(path, NULL, out, err);
}

