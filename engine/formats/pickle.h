/* pickle.h - a restricted unpickler for PyTorch state dicts.
 *
 * torch.save() writes a state dict as a Python pickle (protocol 2; newer
 * pickles may use 4 or 5) whose tensors refer to raw storages stored
 * beside it.  A pickle is a program for a stack machine that may import
 * and call any Python callable, so this reader is not an unpickler: it runs
 * only the opcodes a state dict needs and knows, by name, the few globals
 * it may meet:
 *
 *   collections.OrderedDict        called with () -> an empty dict
 *   torch._utils._rebuild_tensor_v2 (storage, offset, size, stride,
 *                                   requires_grad, hooks[, metadata])
 *   torch._utils._rebuild_parameter (tensor, requires_grad, hooks)
 *   torch.<T>Storage               only inside a persistent id
 *                                   ('storage', class, key, location, numel)
 *
 * Nothing else is imported or called: any other global (GLOBAL or
 * STACK_GLOBAL), a REDUCE of anything not listed, BUILD on anything but a
 * dict, INST/OBJ/NEWOBJ, EXT1/2/4 and every opcode not listed in pickle.c
 * is an error naming the opcode or the global.  Every count the input
 * controls (objects, container slots, stack depth, marks, memo size) has a
 * named limit in pickle.c; the interpreter never recurses.
 *
 * Tensors must be contiguous row-major views inside their storage
 * (storage_offset + numel <= storage numel).  The result is the top-level
 * dict's (name, tensor) pairs in pickle order.
 */
#ifndef BCT_PICKLE_H
#define BCT_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "util/status.h"

typedef struct pkl_tensor {
    char *name;        /* state-dict key (malloc'd, NUL-free UTF-8) */
    char *storage_key; /* the storage's record: <prefix>/data/<key> */
    st_dtype dtype;    /* from the storage class */
    int64_t storage_numel;
    int64_t offset; /* in elements */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
} pkl_tensor;

typedef struct pkl_state_dict {
    pkl_tensor *tensors;
    size_t count;
} pkl_state_dict;

/* Interprets the pickle buf[0, len).  On success *out holds the tensors
 * (free with pkl_state_dict_free); on failure *out is empty and err says
 * which opcode, global or value was refused and at which byte offset. */
int pkl_load_state_dict(const uint8_t *buf, size_t len, pkl_state_dict *out,
                        bct_error *err);

/* Frees the names and the array; a zeroed pkl_state_dict is a no-op. */
void pkl_state_dict_free(pkl_state_dict *sd);

#endif
