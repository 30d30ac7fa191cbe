/*
 * checkpoint.c — saving and loading a trainer's state in the safetensors
 * format: an 8-byte little-endian header length N, N bytes of JSON header
 * (padded with spaces to a multiple of 8), then the raw little-endian
 * tensors. The header maps each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets into the data after the header) and
 * "__metadata__" to string pairs. Python's safetensors and numpy read it.
 *
 * Saving is atomic (temporary file, fsync, rename, fsync of the folder).
 * Loading reads the whole file, parses the header with a small strict JSON
 * reader that bounds every length, and checks every tensor against the model
 * before touching the trainer.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes host floats as little-endian; add byte swapping for this host"
#endif

#define HEADER_MAX (64L << 20)   /* 64 MiB of JSON is far beyond any model here */
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
        return sp_set_error(SP_ERR_INVALID_ARG, "metadata: key '%s' or its value is not short printable ASCII",
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

/* ---- the tensors of a trainer ------------------------------------------ */

struct entry {
    char name[128];
    int ndim;
    long shape[2];
    const float *data; /* saving: source; loading: where it lies in the file */
    float *dest;       /* loading: where it goes */
    size_t count;
    long begin, end;   /* loading: data offsets read from the header */
    int found;
};

/* Lists parameters then optimizer state, each pointing into params/state
 * (graph order). Returns the number of entries or -1. */
static int list_entries(const sp_trainer_t *t, int with_optimizer, float *params, float *state,
                        struct entry **out)
{
    const sp_graph_t *g = sp_trainer_graph(t);
    const int np = sp_graph_param_tensor_count(g);
    const int adam = sp_trainer_optimizer(t) == SP_OPTIMIZER_ADAMW;
    const int nopt = with_optimizer ? (adam ? 2 : 1) : 0;
    const size_t total = sp_graph_param_count(g);
    struct entry *e = calloc((size_t)np * (1 + nopt) + 1, sizeof(*e));
    if (!e)
        return -1;
    int k = 0;
    for (int part = 0; part <= nopt; part++)
        for (int i = 0; i < np; i++, k++) {
            sp_param_info p;
            sp_graph_param_tensor(g, i, &p);
            const char *sfx = !adam ? "momentum_buffer" : part == 1 ? "exp_avg" : "exp_avg_sq";
            if (part == 0)
                snprintf(e[k].name, sizeof(e[k].name), "%s", p.name);
            else
                snprintf(e[k].name, sizeof(e[k].name), "optimizer.%s.%s", p.name, sfx);
            e[k].ndim = p.ndim;
            e[k].shape[0] = p.shape[0];
            e[k].shape[1] = p.shape[1];
            e[k].count = p.count;
            float *base = part == 0 ? params : state + (size_t)(part - 1) * total;
            e[k].data = e[k].dest = base + p.offset;
        }
    *out = e;
    return k;
}

/* ---- saving ------------------------------------------------------------ */

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

static sp_status write_all(int fd, const void *p, size_t n, const char *tmp)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return sp_set_error(SP_ERR_IO, "%s: write failed (%s)", tmp, strerror(w < 0 ? errno : EIO));
        c += w;
        n -= (size_t)w;
    }
    return SP_OK;
}

static sp_status write_atomically(const char *path, const struct buf *header, const struct entry *e, int n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    char *dir_copy = strdup(path);
    if (!tmp || !dir_copy) {
        free(tmp), free(dir_copy);
        return sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        sp_status s = sp_set_error(SP_ERR_IO, "%s: cannot create a temporary file beside it (%s)", path,
                                   strerror(errno));
        free(tmp), free(dir_copy);
        return s;
    }
    uint64_t hlen = header->len;
    sp_status s = write_all(fd, &hlen, 8, tmp);
    if (s == SP_OK)
        s = write_all(fd, header->p, header->len, tmp);
    for (int i = 0; i < n && s == SP_OK; i++)
        s = write_all(fd, e[i].data, e[i].count * sizeof(float), tmp);
    /* mkstemp makes the file 0600; a checkpoint gets the usual 0666 & ~umask */
    mode_t um = umask(0);
    umask(um);
    if (s == SP_OK && fchmod(fd, 0666 & ~um) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: chmod failed (%s)", tmp, strerror(errno));
    if (s == SP_OK && fsync(fd) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: fsync failed (%s)", tmp, strerror(errno));
    if (close(fd) != 0 && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: close failed (%s)", tmp, strerror(errno));
    if (s == SP_OK && rename(tmp, path) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: cannot rename the temporary file into place (%s)", path,
                         strerror(errno));
    if (s != SP_OK) {
        unlink(tmp);
    } else {
        /* make the rename itself durable */
        int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(tmp), free(dir_copy);
    return s;
}

sp_status sp_checkpoint_save(sp_trainer_t *t, const char *path, const sp_meta *meta)
{
    sp_clear_error();
    if (!t || !path || !*path)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL trainer or empty path");
    const sp_graph_t *g = sp_trainer_graph(t);
    const size_t np = sp_graph_param_count(g);
    float *params = malloc(sizeof(float) * (np ? np : 1));
    float *state = malloc(sizeof(float) * (sp_trainer_opt_state_count(t) + 1));
    struct entry *e = NULL;
    struct buf h = {0};
    sp_status s = SP_OK;
    if (!params || !state) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((s = sp_trainer_get_params(t, params)) != SP_OK || (s = sp_trainer_get_opt_state(t, state)) != SP_OK)
        goto out;
    int n = list_entries(t, 1, params, state, &e);
    if (n < 0) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }

    sp_meta m = {0};
    if (meta)
        m = *meta;
    char step[32];
    snprintf(step, sizeof(step), "%ld", sp_trainer_step_count(t));
    if ((s = sp_meta_set(&m, "starpipe.step", step)) != SP_OK ||
        (s = sp_meta_set(&m, "starpipe.optimizer",
                         sp_trainer_optimizer(t) == SP_OPTIMIZER_ADAMW ? "adamw" : "sgd")) != SP_OK)
        goto out;
    put(&h, "{\"__metadata__\":{", 17);
    for (int i = 0; i < m.n; i++) {
        if (i)
            put(&h, ",", 1);
        put_string(&h, m.key[i]);
        put(&h, ":", 1);
        put_string(&h, m.value[i]);
    }
    put(&h, "}", 1);
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        put(&h, ",", 1);
        put_string(&h, e[i].name);
        if (e[i].ndim == 2)
            putf(&h, ":{\"dtype\":\"F32\",\"shape\":[%ld,%ld],", e[i].shape[0], e[i].shape[1]);
        else
            putf(&h, ":{\"dtype\":\"F32\",\"shape\":[%ld],", e[i].shape[0]);
        putf(&h, "\"data_offsets\":[%zu,%zu]}", offset, offset + e[i].count * sizeof(float));
        offset += e[i].count * sizeof(float);
    }
    put(&h, "}", 1);
    while (h.len % 8)
        put(&h, " ", 1);
    if (h.oom) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory for the header", path);
        goto out;
    }
    if (sp_mpi_rank() == 0) /* under MPI every rank gathered the values; rank 0 writes them */
        s = write_atomically(path, &h, e, n);
out:
    free(params), free(state), free(e), free(h.p);
    if (t->mpi && sp_mpi_max_int(s != SP_OK) && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: another rank could not save the checkpoint (see its message)", path);
    return s;
}

/* ---- loading: a strict reader for the header's JSON ---------------------- */

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

struct header_tensor {
    char name[128];
    char dtype[16];
    long shape[8];
    int ndim;
    long offsets[2];
};

/* {"key": "value", ...} into meta */
static int read_metadata(struct reader *r, sp_meta *meta)
{
    if (expect_char(r, '{'))
        return -1;
    if (empty_container(r, '}'))
        return 0;
    int more;
    do {
        char k[64], v[256];
        if (read_string(r, k, sizeof(k)) || expect_char(r, ':') || read_string(r, v, sizeof(v)))
            return -1;
        if (sp_meta_set(meta, k, v) != SP_OK)
            return fail_at(r, "bad metadata entry");
    } while ((more = more_items(r, '}')) == 1);
    return more;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]} */
static int read_tensor(struct reader *r, struct header_tensor *t)
{
    int have = 0, n_off = 0, more;
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
            if (read_longs(r, t->shape, 8, &t->ndim))
                return -1;
            have |= 2;
        } else if (!strcmp(field, "data_offsets")) {
            if (read_longs(r, t->offsets, 2, &n_off))
                return -1;
            if (n_off != 2)
                return fail_at(r, "data_offsets needs two numbers");
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
static int parse_header(struct reader *r, sp_meta *meta, struct header_tensor **tensors, int *count)
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
            char key[128];
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
            struct header_tensor *t = &(*tensors)[(*count)++];
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

struct ckpt_file {
    unsigned char *bytes;
    size_t size;
    size_t data_start; /* 8 + header length */
    sp_meta meta;
    struct header_tensor *tensors;
    int n_tensors;
};

static void ckpt_free(struct ckpt_file *f)
{
    free(f->bytes);
    free(f->tensors);
    memset(f, 0, sizeof(*f));
}

/* Reads and parses path; checks that every tensor's bytes lie in the file. */
static sp_status ckpt_read(const char *path, struct ckpt_file *f)
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
        ckpt_free(f);
        return sp_set_error(SP_ERR_IO, "%s: read %zu of %zu bytes", path, got, (size_t)st.st_size);
    }
    uint64_t hlen;
    memcpy(&hlen, f->bytes, 8);
    if (hlen < 2 || hlen > (uint64_t)HEADER_MAX || hlen > f->size - 8) {
        ckpt_free(f);
        return sp_set_error(SP_ERR_IO,
                            "%s: header length %llu does not fit the file (%zu bytes); not a "
                            "safetensors file or truncated",
                            path, (unsigned long long)hlen, f->size);
    }
    f->data_start = 8 + (size_t)hlen;
    struct reader r = {.p = (const char *)f->bytes + 8, .end = (const char *)f->bytes + f->data_start,
                       .path = path, .s = SP_OK};
    if (parse_header(&r, &f->meta, &f->tensors, &f->n_tensors)) {
        sp_status s = r.s;
        ckpt_free(f);
        return s;
    }
    const size_t data_size = f->size - f->data_start;
    for (int i = 0; i < f->n_tensors; i++) {
        struct header_tensor *t = &f->tensors[i];
        if (t->offsets[0] > t->offsets[1] || (size_t)t->offsets[1] > data_size) {
            sp_status s = sp_set_error(SP_ERR_IO,
                                       "%s: tensor '%s' claims bytes [%ld, %ld) but the data holds %zu "
                                       "(truncated file?)",
                                       path, t->name, t->offsets[0], t->offsets[1], data_size);
            ckpt_free(f);
            return s;
        }
    }
    return SP_OK;
}

sp_status sp_checkpoint_read_meta(const char *path, sp_meta *meta)
{
    sp_clear_error();
    if (!path || !meta)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    struct ckpt_file f;
    sp_status s = ckpt_read(path, &f);
    if (s == SP_OK)
        *meta = f.meta;
    ckpt_free(&f);
    return s;
}

static void shape_text(char *out, size_t cap, const long *shape, int ndim)
{
    int n = snprintf(out, cap, "(");
    for (int i = 0; i < ndim && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - n, "%s%ld", i ? ", " : "", shape[i]);
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - n, ")");
}

sp_status sp_checkpoint_load(sp_trainer_t *t, const char *path, int with_optimizer)
{
    sp_clear_error();
    if (!t || !path)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    struct ckpt_file f;
    const sp_graph_t *g = sp_trainer_graph(t);
    const size_t np = sp_graph_param_count(g);
    float *params = malloc(sizeof(float) * (np ? np : 1));
    float *state = malloc(sizeof(float) * (sp_trainer_opt_state_count(t) + 1));
    struct entry *e = NULL;
    int n = -1;
    long step = 0; /* with_optimizer: from the metadata */
    sp_status s = ckpt_read(path, &f);
    if (s != SP_OK)
        goto out;
    if (params && state)
        n = list_entries(t, with_optimizer, params, state, &e);
    if (n < 0) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    const char *opt = sp_meta_get(&f.meta, "starpipe.optimizer");
    const char *want_opt = sp_trainer_optimizer(t) == SP_OPTIMIZER_ADAMW ? "adamw" : "sgd";
    if (with_optimizer && (!opt || strcmp(opt, want_opt))) {
        s = sp_set_error(SP_ERR_INVALID_ARG, "%s: holds optimizer state of '%s', this run uses '%s'", path,
                         opt ? opt : "none", want_opt);
        goto out;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const struct header_tensor *ht = &f.tensors[i];
        int k = 0;
        while (k < n && strcmp(e[k].name, ht->name))
            k++;
        if (k == n) {
            if (!with_optimizer && !strncmp(ht->name, "optimizer.", 10))
                continue; /* weights only: optimizer state is not needed */
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' is not part of this model", path, ht->name);
            goto out;
        }
        char have[64], want[64];
        shape_text(have, sizeof(have), ht->shape, ht->ndim);
        shape_text(want, sizeof(want), e[k].shape, e[k].ndim);
        if (strcmp(have, want)) {
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' has shape %s, the model expects %s", path,
                             ht->name, have, want);
            goto out;
        }
        if (strcmp(ht->dtype, "F32")) {
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' is %s, expected F32", path, ht->name, ht->dtype);
            goto out;
        }
        if ((size_t)(ht->offsets[1] - ht->offsets[0]) != e[k].count * sizeof(float)) {
            s = sp_set_error(SP_ERR_IO, "%s: tensor '%s' holds %ld bytes, its shape needs %zu", path, ht->name,
                             ht->offsets[1] - ht->offsets[0], e[k].count * sizeof(float));
            goto out;
        }
        memcpy(e[k].dest, f.bytes + f.data_start + ht->offsets[0], e[k].count * sizeof(float));
        e[k].found = 1;
    }
    for (int k = 0; k < n; k++)
        if (!e[k].found) {
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' of the model is missing", path, e[k].name);
            goto out;
        }
    if (with_optimizer) {
        const char *v = sp_meta_get(&f.meta, "starpipe.step");
        char *end;
        step = v ? strtol(v, &end, 10) : -1;
        if (!v || *end || step < 0) {
            s = sp_set_error(SP_ERR_IO, "%s: metadata 'starpipe.step' is missing or not a count", path);
            goto out;
        }
    }
out:
    /* under MPI every rank read the file itself: all go on, or none does */
    if (t->mpi && sp_mpi_max_int(s != SP_OK) && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: another rank could not load the checkpoint (see its message)", path);
    /* everything checked: now change the trainer */
    if (s == SP_OK)
        s = sp_trainer_set_params(t, params);
    if (s == SP_OK && with_optimizer)
        s = sp_trainer_set_opt_state(t, state);
    if (s == SP_OK && with_optimizer)
        s = sp_trainer_set_step_count(t, step);
    free(params), free(state), free(e);
    ckpt_free(&f);
    return s;
}
