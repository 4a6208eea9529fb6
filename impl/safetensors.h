/* safetensors.h — reading and writing the safetensors tensor file format.
 *
 * Owns: the format (https://github.com/huggingface/safetensors): an unsigned 64-bit
 * little-endian header length N, then N bytes of UTF-8 JSON
 *     {"__metadata__": {"key": "value", ...},            (optional; string values only)
 *      "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * then the data section; offsets are relative to the start of the data section, row-major,
 * little-endian. Also the f16/bf16 <-> f32 conversions that checkpoints and fixtures need.
 *
 * Reading validates everything before anything is handed out: the header length against the
 * file size and a 100 MB cap, the JSON (kernels/json.h), every entry's fields, dtype, shape
 * (non-negative, no overflow of numel × element size), that end − begin equals that size, that
 * every range lies inside the data section, and that the ranges tile the data section exactly:
 * no overlap, no hole, nothing after the last tensor. The reference implementation rejects
 * holes and trailing bytes the same way (its validate(): each tensor must start where the
 * previous ended, and the last end must equal the buffer size), so a file this reader accepts
 * loads everywhere. The file is mapped read-only and tensor data pointers point into the
 * mapping. Files written here align every tensor to its element size; other writers need not,
 * so read through safetensors_read_f32/_i64 (which copy with memcpy) rather than casting.
 *
 * Writing is atomic: PATH.tmp in the same directory, every write checked, fflush + fsync,
 * rename over PATH, then fsync of the directory; on any failure the temporary is removed and an
 * existing PATH is left untouched. Tensors are written sorted by element size (largest first)
 * then name, so every tensor is aligned to its element size, and the header is padded with
 * spaces so the data section starts at a multiple of 8 (as the reference implementation does).
 *
 * Errors: functions return NULL/false and write one message naming the file and the problem
 * into err[err_cap] (err may be NULL).
 */
#ifndef FOCUSBENCH_SAFETENSORS_H
#define FOCUSBENCH_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/tensor.h"

enum {
    SAFETENSORS_MAX_DIMS = 8,                    /* more dims than any tensor here; a sanity bound */
};
#define SAFETENSORS_MAX_HEADER_BYTES 100000000ull /* the reference implementation's cap */

/* Every byte-sized dtype of the format; sub-byte types (F4, F6_*) are not supported. */
typedef enum {
    SAFETENSORS_BOOL = 0,
    SAFETENSORS_U8,
    SAFETENSORS_I8,
    SAFETENSORS_F8_E5M2,
    SAFETENSORS_F8_E4M3,
    SAFETENSORS_F8_E8M0,
    SAFETENSORS_I16,
    SAFETENSORS_U16,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I32,
    SAFETENSORS_U32,
    SAFETENSORS_F32,
    SAFETENSORS_F64,
    SAFETENSORS_I64,
    SAFETENSORS_U64,
    SAFETENSORS_DTYPE_COUNT
} SafetensorsDtype;

const char *safetensors_dtype_name(SafetensorsDtype dtype); /* "F32", "BF16", ... */
size_t safetensors_dtype_size(SafetensorsDtype dtype);      /* bytes per element */
/* Parses a dtype string as written in headers; false when unknown. */
bool safetensors_dtype_parse(const char *name, SafetensorsDtype *out);
/* The project's dtype <-> the file dtype. from_dtype always succeeds; to_dtype is false for
 * file dtypes that have no project dtype (BOOL, I8, F64, ...). */
SafetensorsDtype safetensors_from_dtype(DType dtype);
bool safetensors_to_dtype(SafetensorsDtype dtype, DType *out);

/* One tensor of an open file. */
typedef struct {
    const char *name;
    SafetensorsDtype dtype;
    int ndim;                               /* 0 for a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS];
    int64_t numel;                          /* product of shape (1 for a scalar) */
    uint64_t begin, end;                    /* data_offsets: [begin, end) in the data section */
    const void *data;                       /* end − begin bytes; possibly unaligned; read-only */
} SafetensorsTensor;

typedef struct SafetensorsFile SafetensorsFile;

/* Opens, maps and validates a file. */
SafetensorsFile *safetensors_open(const char *path, char *err, size_t err_cap);
/* Validates a file image already in memory (len bytes, borrowed: it must outlive the result).
 * `label` names it in messages. */
SafetensorsFile *safetensors_open_memory(const void *bytes, size_t len, const char *label, char *err,
                                         size_t err_cap);
void safetensors_close(SafetensorsFile *f);

const char *safetensors_path(const SafetensorsFile *f);   /* the path or label given at open */
int safetensors_count(const SafetensorsFile *f);          /* number of tensors */
/* Tensors in header order (a file written here: sorted as described above). */
const SafetensorsTensor *safetensors_tensor_at(const SafetensorsFile *f, int i);
const SafetensorsTensor *safetensors_find(const SafetensorsFile *f, const char *name);
int safetensors_metadata_count(const SafetensorsFile *f);
/* The i-th __metadata__ entry (header order); false when out of range. */
bool safetensors_metadata_at(const SafetensorsFile *f, int i, const char **key, const char **value);
const char *safetensors_metadata_get(const SafetensorsFile *f, const char *key); /* NULL if absent */

/* "(2, 3, 224, 224)" into buf; returns buf. */
char *safetensors_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* Copies a tensor's elements into out[n] as f32, converting from F32, F16, BF16 or F64
 * (exactly, except F64 → f32 which rounds to nearest). false with a message when n differs
 * from numel or the dtype is not a float type. */
bool safetensors_read_f32(const SafetensorsTensor *t, float *out, int64_t n, char *err, size_t err_cap);
/* The same for integer tensors into int64 (I64, I32, I16, I8, U8, U16, U32, BOOL; U64 values
 * above INT64_MAX are an error). */
bool safetensors_read_i64(const SafetensorsTensor *t, int64_t *out, int64_t n, char *err, size_t err_cap);

/* Exact widening conversions (every f16/bf16 value, subnormals, ±0, ±inf, and NaN with its
 * payload and sign are represented exactly in f32). */
float safetensors_f16_to_f32(uint16_t bits);
float safetensors_bf16_to_f32(uint16_t bits);
/* Narrowing with round-to-nearest-even; overflow gives ±inf, NaN stays NaN (quiet). */
uint16_t safetensors_f32_to_f16(float value);
uint16_t safetensors_f32_to_bf16(float value);

/* ---- writing ---- */

typedef struct {
    const char *name;
    SafetensorsDtype dtype;
    int ndim;
    const int64_t *shape;  /* [ndim]; every dim >= 0 */
    const void *data;      /* numel × element size bytes, host memory, little-endian */
} SafetensorsWriteTensor;

typedef struct {
    const char *key;
    const char *value;
} SafetensorsMeta;

/* Writes the tensors and metadata to path atomically (see the header comment). Names and
 * metadata keys must be unique and non-empty; "__metadata__" is not a valid tensor name. */
bool safetensors_write(const char *path, const SafetensorsWriteTensor *tensors, int n_tensors,
                       const SafetensorsMeta *meta, int n_meta, char *err, size_t err_cap);
/* The same file image in memory (malloc'd; *len_out bytes), for tests and small fixtures. */
void *safetensors_serialize(const SafetensorsWriteTensor *tensors, int n_tensors, const SafetensorsMeta *meta,
                            int n_meta, size_t *len_out, char *err, size_t err_cap);

#endif
