/* safetensors.h - read-only, validated view of a .safetensors file.
 *
 * Layout (https://github.com/huggingface/safetensors): 8-byte little-endian
 * header length N, N bytes of JSON header, then the data region.  The header
 * maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the data region) plus an optional "__metadata__"
 * object of string values.
 *
 * st_open() maps the file and validates everything before returning: header
 * length inside the file, valid UTF-8 JSON object, known dtype, shape
 * product x dtype size == end - begin (no overflow), ranges inside the data
 * region and not overlapping.  Any violation is an error naming the tensor;
 * no later access can read out of bounds.
 *
 * Tensor data may be unaligned (the header length is arbitrary), so read it
 * with memcpy or st_tensor_to_f32(), never through a cast pointer.
 */
#ifndef BCT_SAFETENSORS_H
#define BCT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64,
    ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
} st_dtype;

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; /* inside the mapping; possibly unaligned */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Maps and validates `path`. On success *out owns the mapping. */
int st_open(const char *path, st_file **out, bct_error *err);
/* Validates an in-memory image (not copied: buf must outlive the st_file). */
int st_open_buffer(const void *buf, size_t len, st_file **out, bct_error *err);
void st_close(st_file *f);

struct mapped_file;
/* Wraps tensors another reader has already validated (torch_bin.h), so
 * the model binders see one kind of file.  Takes ownership of the mapping
 * (NULL: the data lives in a caller's buffer), of the array and of its
 * malloc'd names, whatever it returns.  Rejects a name given twice;
 * unlike st_open(), tensors may share bytes (views of one storage). */
int st_adopt(struct mapped_file *map, st_tensor *tensors, size_t count,
             st_file **out, bct_error *err);

size_t st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, size_t i); /* header order */
const st_tensor *st_find(const st_file *f, const char *name);
/* Value of a "__metadata__" string entry, or NULL. */
const char *st_metadata(const st_file *f, const char *key);

const char *st_dtype_name(st_dtype dt);
size_t st_dtype_size(st_dtype dt);
/* 1 for F32/F16/BF16: the dtypes a model weight may have. */
int st_dtype_is_float(st_dtype dt);

/* Converts a float tensor (F32, F16, BF16) to numel fp32 values in dst.
 * Returns BCT_EUNSUPPORTED for other dtypes. */
int st_tensor_to_f32(const st_tensor *t, float *dst, bct_error *err);

#endif
