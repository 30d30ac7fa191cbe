/*
 * safetensors.h — the safetensors file format, read and written: an 8-byte
 * little-endian header length N, N bytes of JSON header (padded with spaces
 * to a multiple of 8), then the raw little-endian tensor bytes. The header
 * maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets into the data after the header) and "__metadata__" to string
 * pairs (an sp_meta). Python's safetensors and numpy read what we write.
 *
 * Only the format: which tensors a checkpoint holds, their names and what
 * the metadata means are checkpoint.c's. Not installed.
 */
#ifndef SP_SAFETENSORS_H
#define SP_SAFETENSORS_H

#include "starpipe.h"

#define SP_ST_NAME_MAX 128
#define SP_ST_NDIM_MAX 8

/* One tensor of a file. */
typedef struct sp_st_tensor {
    char name[SP_ST_NAME_MAX];
    char dtype[16]; /* "F32", "I32", ... as the header spells it */
    int ndim;
    long shape[SP_ST_NDIM_MAX];
    long begin, end;  /* reading: byte offsets into the data section */
    const void *data; /* writing: the tensor's bytes (shape and dtype give their number) */
} sp_st_tensor;

/* Bytes per element of a dtype name ("F32" → 4), 0 for one we do not know. */
size_t sp_safetensors_dtype_size(const char *dtype);

/* Writes meta and the n tensors, in this order, to path atomically (see
 * atomic_file.h): on any failure path is left as it was. */
sp_status sp_safetensors_write(const char *path, const sp_meta *meta, const sp_st_tensor *t, int n);

/* A whole file in memory, its header parsed and checked: every tensor's
 * bytes lie inside the file. */
typedef struct sp_st_file {
    unsigned char *bytes;
    size_t size;
    size_t data_start; /* 8 + header length */
    sp_meta meta;
    sp_st_tensor *tensors;
    int n_tensors;
} sp_st_file;

/* Reads and parses path. The JSON reader is strict and bounds every length,
 * so a damaged file gives SP_ERR_IO and a message, never an overrun. */
sp_status sp_safetensors_read(const char *path, sp_st_file *f);
/* Where tensor t's bytes (t->end − t->begin of them) lie in f. */
const void *sp_safetensors_data(const sp_st_file *f, const sp_st_tensor *t);
void sp_safetensors_free(sp_st_file *f);

#endif /* SP_SAFETENSORS_H */
