/*
 * safetensors.c — the safetensors format (see safetensors.h): the metadata
 * map, a header writer, a strict reader for the header's JSON and the
 * tensor table. One concern, the file format, kept whole (a little over 450
 * lines, most of it the JSON reader). It does not know what a checkpoint
 * holds (checkpoint.c does) nor anything of trainers, StarPU or MPI.
 */
#include "safetensors.h"
#include "atomic_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes host numbers as little-endian; add byte swapping for this host"
#endif

#define HEADER_MAX (64L << 20) /* 64 MiB of JSON is far beyond any model here */
#define TENSORS_MAX 65536

/* ---- metadata ---------------------------------------------------------- */

static int printable(const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

sp_status sp_meta_set(sp_meta *m, const char *key, const char *value)
{
    if (!m || !key || !value || !*key || !printable(key, sizeof(m->key[0])) ||
        !printable(value, sizeof(m->value[0])))
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "metadata: key '%s' or its value is not short printable ASCII",
                            key ? key : "(null)");
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) {
            snprintf(m->value[i], sizeof(m->value[i]), "%s", value);
            return SP_OK;
        }
    if (m->n == SP_META_MAX)
        return sp_set_error(SP_ERR_INVALID_ARG, "metadata: more than %d keys", SP_META_MAX);
    snprintf(m->key[m->n], sizeof(m->key[0]), "%s", key);
    snprintf(m->value[m->n], sizeof(m->value[0]), "%s", value);
    m->n++;
    return SP_OK;
}

const char *sp_meta_get(const sp_meta *m, const char *key)
{
    for (int i = 0; m && i < m->n; i++)
        if (!strcmp(m->key[i], key))
            return m->value[i];
    return NULL;
}

size_t sp_safetensors_dtype_size(const char *dtype)
{
    static const struct {
        const char *name;
        size_t size;
    } sizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                 {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++)
        if (!strcmp(sizes[i].name, dtype))
            return sizes[i].size;
    return 0;
}

static size_t tensor_bytes(const sp_st_tensor *t)
{
    size_t n = sp_safetensors_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* ---- writing ----------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* JSON string; callers only pass printable ASCII, so escaping " and \ is enough. */
static void put_string(struct buf *b, const char *s)
{
    put(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(b, "\\", 1);
        put(b, s, 1);
    }
    put(b, "\"", 1);
}

/* {"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[..]},...}
 * padded with spaces to a multiple of 8 bytes */
static void put_header(struct buf *h, const sp_meta *m, const sp_st_tensor *t, int n)
{
    put(h, "{\"__metadata__\":{", 17);
    for (int i = 0; m && i < m->n; i++) {
        if (i)
            put(h, ",", 1);
        put_string(h, m->key[i]);
        put(h, ":", 1);
        put_string(h, m->value[i]);
    }
    put(h, "}", 1);
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        put(h, ",", 1);
        put_string(h, t[i].name);
        put(h, ":{\"dtype\":", 10);
        put_string(h, t[i].dtype);
        put(h, ",\"shape\":[", 10);
        for (int d = 0; d < t[i].ndim; d++)
            putf(h, "%s%ld", d ? "," : "", t[i].shape[d]);
        const size_t bytes = tensor_bytes(&t[i]);
        putf(h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        offset += bytes;
    }
    put(h, "}", 1);
    while (h->len % 8)
        put(h, " ", 1);
}

sp_status sp_safetensors_write(const char *path, const sp_meta *meta, const sp_st_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        if (!sp_safetensors_dtype_size(t[i].dtype) || t[i].ndim < 0 || t[i].ndim > SP_ST_NDIM_MAX)
            return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' has dtype '%s' and %d dimensions", path,
                                t[i].name, t[i].dtype, t[i].ndim);
    struct buf h = {0};
    put_header(&h, meta, t, n);
    if (h.oom) {
        free(h.p);
        return sp_set_error(SP_ERR_NOMEM, "%s: out of memory for the header", path);
    }
    sp_atomic_file f;
    sp_status s = sp_atomic_file_open(&f, path);
    if (s == SP_OK) {
        uint64_t hlen = h.len;
        sp_atomic_file_write(&f, &hlen, 8);
        sp_atomic_file_write(&f, h.p, h.len);
        for (int i = 0; i < n; i++)
            sp_atomic_file_write(&f, t[i].data, tensor_bytes(&t[i]));
        s = sp_atomic_file_commit(&f);
    }
    free(h.p);
    return s;
}

/* ---- reading: a strict reader for the header's JSON ---------------------- */

struct reader {
    const char *p, *end;
    const char *path;
    sp_status s;
};

static int fail_at(struct reader *r, const char *what)
{
    if (r->s == SP_OK)
        r->s = sp_set_error(SP_ERR_IO, "%s: corrupt safetensors header: %s", r->path, what);
    return -1;
}

static void ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int expect_char(struct reader *r, char c)
{
    ws(r);
    if (r->p >= r->end || *r->p != c) {
        char what[48];
        snprintf(what, sizeof(what), "expected '%c'", c);
        return fail_at(r, what);
    }
    r->p++;
    return 0;
}

/* Reads a string into out (cap bytes); escapes \" \\ \/ only. */
static int read_string(struct reader *r, char *out, size_t cap)
{
    if (expect_char(r, '"'))
        return -1;
    size_t n = 0;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c == '\\') {
            if (r->p >= r->end || (*r->p != '"' && *r->p != '\\' && *r->p != '/'))
                return fail_at(r, "unsupported escape in a string");
            c = *r->p++;
        } else if ((unsigned char)c < 0x20) {
            return fail_at(r, "control character in a string");
        }
        if (n + 1 >= cap)
            return fail_at(r, "string too long");
        out[n++] = c;
    }
    if (r->p >= r->end)
        return fail_at(r, "unterminated string");
    r->p++;
    out[n] = '\0';
    return 0;
}

static int read_long(struct reader *r, long *v)
{
    ws(r);
    long x = 0;
    int digits = 0;
    if (r->p + 1 < r->end && r->p[0] == '0' && r->p[1] >= '0' && r->p[1] <= '9')
        return fail_at(r, "number with a leading zero");
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        if (x > (1L << 50))
            return fail_at(r, "number too large");
        x = x * 10 + (*r->p++ - '0');
        digits++;
    }
    if (!digits)
        return fail_at(r, "expected a non-negative integer");
    *v = x;
    return 0;
}

/* Right after an opening bracket: 1 (and the closing one consumed) when the
 * container is empty, else 0. */
static int empty_container(struct reader *r, char close)
{
    ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 1;
    }
    return 0;
}

/* After an item: 1 when a comma announces another, 0 when the closing
 * bracket ends the container, -1 on anything else. */
static int more_items(struct reader *r, char close)
{
    ws(r);
    if (r->p < r->end && *r->p == ',') {
        r->p++;
        return 1;
    }
    return expect_char(r, close) ? -1 : 0;
}

/* [a, b, ...] of at most max integers */
static int read_longs(struct reader *r, long *v, int max, int *n)
{
    *n = 0;
    if (expect_char(r, '['))
        return -1;
    if (empty_container(r, ']'))
        return 0;
    int more;
    do {
        if (*n == max)
            return fail_at(r, "array too long");
        if (read_long(r, &v[(*n)++]))
            return -1;
    } while ((more = more_items(r, ']')) == 1);
    return more;
}

/* {"key": "value", ...} into meta */
static int read_metadata(struct reader *r, sp_meta *meta)
{
    if (expect_char(r, '{'))
        return -1;
    if (empty_container(r, '}'))
        return 0;
    int more;
    do {
        char k[sizeof(meta->key[0])], v[sizeof(meta->value[0])];
        if (read_string(r, k, sizeof(k)) || expect_char(r, ':') || read_string(r, v, sizeof(v)))
            return -1;
        if (sp_meta_get(meta, k)) {
            char what[sizeof(k) + 32];
            snprintf(what, sizeof(what), "metadata key '%s' appears twice", k);
            return fail_at(r, what);
        }
        if (sp_meta_set(meta, k, v) != SP_OK)
            return fail_at(r, "bad metadata entry");
    } while ((more = more_items(r, '}')) == 1);
    return more;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} */
static int read_tensor(struct reader *r, sp_st_tensor *t)
{
    int have = 0, n_off = 0, more;
    long off[2];
    if (expect_char(r, '{'))
        return -1;
    do {
        char field[32];
        if (read_string(r, field, sizeof(field)) || expect_char(r, ':'))
            return -1;
        if (!strcmp(field, "dtype")) {
            if (read_string(r, t->dtype, sizeof(t->dtype)))
                return -1;
            have |= 1;
        } else if (!strcmp(field, "shape")) {
            if (read_longs(r, t->shape, SP_ST_NDIM_MAX, &t->ndim))
                return -1;
            have |= 2;
        } else if (!strcmp(field, "data_offsets")) {
            if (read_longs(r, off, 2, &n_off))
                return -1;
            if (n_off != 2)
                return fail_at(r, "data_offsets needs two numbers");
            t->begin = off[0];
            t->end = off[1];
            have |= 4;
        } else {
            return fail_at(r, "unknown field in a tensor entry");
        }
    } while ((more = more_items(r, '}')) == 1);
    if (more < 0)
        return -1;
    return have == 7 ? 0 : fail_at(r, "a tensor entry lacks dtype, shape or data_offsets");
}

/* Parses the whole header: metadata into meta, tensors into *tensors. */
static int parse_header(struct reader *r, sp_meta *meta, sp_st_tensor **tensors, int *count)
{
    int cap = 16, more = 0;
    *count = 0;
    *tensors = malloc(sizeof(**tensors) * cap);
    if (!*tensors)
        return fail_at(r, "out of memory");
    memset(meta, 0, sizeof(*meta));
    if (expect_char(r, '{'))
        return -1;
    if (!empty_container(r, '}'))
        do {
            char key[SP_ST_NAME_MAX];
            if (read_string(r, key, sizeof(key)) || expect_char(r, ':'))
                return -1;
            if (!strcmp(key, "__metadata__")) {
                if (read_metadata(r, meta))
                    return -1;
                continue;
            }
            if (*count == TENSORS_MAX)
                return fail_at(r, "too many tensors");
            if (*count == cap) {
                cap *= 2;
                void *p = realloc(*tensors, sizeof(**tensors) * cap);
                if (!p)
                    return fail_at(r, "out of memory");
                *tensors = p;
            }
            sp_st_tensor *t = &(*tensors)[(*count)++];
            memset(t, 0, sizeof(*t));
            snprintf(t->name, sizeof(t->name), "%s", key);
            if (read_tensor(r, t))
                return -1;
        } while ((more = more_items(r, '}')) == 1);
    if (more < 0)
        return -1;
    ws(r);
    return r->p == r->end ? 0 : fail_at(r, "bytes after the header object");
}

/* ---- reading: the tensor table --------------------------------------------- */

struct span {
    long begin, end;
    int i;
};

static int by_begin(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What the writer guarantees, checked: each tensor's dtype is known and its
 * bytes are exactly what its shape needs; names are unique; the tensors
 * tile the data section from its first byte to its last, without overlap,
 * gap or trailing bytes (so a header length off by one, or bytes glued on
 * the end, cannot go unnoticed). */
static sp_status check_table(const char *path, const sp_st_file *f)
{
    const size_t data_size = f->size - f->data_start;
    const int n = f->n_tensors;
    for (int i = 0; i < n; i++) {
        const sp_st_tensor *t = &f->tensors[i];
        size_t need = sp_safetensors_dtype_size(t->dtype);
        if (!need)
            return sp_set_error(SP_ERR_IO, "%s: tensor '%s' has dtype '%s', which this reader does not know", path,
                                t->name, t->dtype);
        for (int d = 0; d < t->ndim; d++)
            if (__builtin_mul_overflow(need, (size_t)t->shape[d], &need))
                return sp_set_error(SP_ERR_IO, "%s: tensor '%s' has an absurd shape", path, t->name);
        if (t->begin > t->end || (size_t)t->end > data_size)
            return sp_set_error(SP_ERR_IO,
                                "%s: tensor '%s' claims bytes [%ld, %ld) but the data holds %zu (truncated file?)",
                                path, t->name, t->begin, t->end, data_size);
        if ((size_t)(t->end - t->begin) != need)
            return sp_set_error(SP_ERR_IO, "%s: tensor '%s' holds %ld bytes, its dtype and shape need %zu", path,
                                t->name, t->end - t->begin, need);
    }
    struct span *sp = malloc(sizeof(*sp) * (size_t)(n ? n : 1));
    const char **names = malloc(sizeof(*names) * (size_t)(n ? n : 1));
    sp_status s = SP_OK;
    if (!sp || !names)
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; s == SP_OK && i < n; i++) {
        sp[i] = (struct span){f->tensors[i].begin, f->tensors[i].end, i};
        names[i] = f->tensors[i].name;
    }
    if (s == SP_OK) {
        qsort(names, (size_t)n, sizeof(*names), by_name);
        for (int i = 1; i < n && s == SP_OK; i++)
            if (!strcmp(names[i - 1], names[i]))
                s = sp_set_error(SP_ERR_IO, "%s: corrupt safetensors header: tensor '%s' appears twice", path,
                                 names[i]);
    }
    if (s == SP_OK) {
        qsort(sp, (size_t)n, sizeof(*sp), by_begin);
        long at = 0;
        for (int i = 0; i < n && s == SP_OK; i++) {
            const char *name = f->tensors[sp[i].i].name;
            if (sp[i].begin < at)
                s = sp_set_error(SP_ERR_IO, "%s: tensor '%s' starts at byte %ld, inside the tensor before it", path,
                                 name, sp[i].begin);
            else if (sp[i].begin > at)
                s = sp_set_error(SP_ERR_IO, "%s: tensor '%s' starts at byte %ld, after a gap (the one before ends "
                                            "at %ld)", path, name, sp[i].begin, at);
            at = sp[i].end;
        }
        if (s == SP_OK && (size_t)at != data_size)
            s = sp_set_error(SP_ERR_IO, "%s: %zu bytes after the last tensor (a wrong header length, or bytes "
                                        "added to the file)", path, data_size - (size_t)at);
    }
    free(sp);
    free(names);
    return s;
}

/* ---- reading: the file --------------------------------------------------- */

void sp_safetensors_free(sp_st_file *f)
{
    free(f->bytes);
    free(f->tensors);
    memset(f, 0, sizeof(*f));
}

const void *sp_safetensors_data(const sp_st_file *f, const sp_st_tensor *t)
{
    return f->bytes + f->data_start + t->begin;
}

sp_status sp_safetensors_read(const char *path, sp_st_file *f)
{
    memset(f, 0, sizeof(*f));
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sp_set_error(SP_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return sp_set_error(SP_ERR_IO, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8 + 2) {
        fclose(fp);
        return sp_set_error(SP_ERR_IO, "%s: too short to be a safetensors file (%zu bytes)", path, f->size);
    }
    f->bytes = malloc(f->size);
    if (!f->bytes) {
        fclose(fp);
        return sp_set_error(SP_ERR_NOMEM, "%s: cannot hold %zu bytes", path, f->size);
    }
    size_t got = fread(f->bytes, 1, f->size, fp);
    fclose(fp);
    if (got != f->size) {
        sp_safetensors_free(f);
        return sp_set_error(SP_ERR_IO, "%s: read %zu of %zu bytes", path, got, (size_t)st.st_size);
    }
    uint64_t hlen;
    memcpy(&hlen, f->bytes, 8);
    if (hlen < 2 || hlen > (uint64_t)HEADER_MAX || hlen > f->size - 8) {
        sp_safetensors_free(f);
        return sp_set_error(SP_ERR_IO,
                            "%s: header length %llu does not fit the file (%zu bytes); not a "
                            "safetensors file or truncated",
                            path, (unsigned long long)hlen, f->size);
    }
    f->data_start = 8 + (size_t)hlen;
    struct reader r = {.p = (const char *)f->bytes + 8,
                       .end = (const char *)f->bytes + f->data_start,
                       .path = path,
                       .s = SP_OK};
    if (parse_header(&r, &f->meta, &f->tensors, &f->n_tensors)) {
        sp_status s = r.s;
        sp_safetensors_free(f);
        return s;
    }
    sp_status s = check_table(path, f);
    if (s != SP_OK)
        sp_safetensors_free(f);
    return s;
}
