/*
 * idx.c — reader of the IDX format of MNIST and Fashion-MNIST, gzip-compressed
 * or not (zlib reads both).
 *
 * An IDX file is a big-endian header — magic 0x0000 0x08 (unsigned bytes) and
 * the number of dimensions, then one u32 per dimension — followed by the
 * values. Images are 3-D (n, rows, cols), labels 1-D (n). Every check that can
 * fail names the file: missing, not IDX, wrong dimensions, sizes that would
 * need absurd memory, truncated, trailing bytes, image and label counts that
 * disagree, labels out of range.
 */
#include "starpipe_models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_ITEMS 10000000L /* ten million samples */
#define IDX_MAX_SIDE 4096       /* pixels per image side */
#define IDX_MAX_BYTES (1L << 31) /* of pixel data */

static sp_status read_exact(gzFile f, const char *path, void *buf, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r < 0) {
            int err;
            const char *msg = gzerror(f, &err);
            return sp_set_error(SP_ERR_IO, "%s: corrupt gzip data while reading %s (%s)", path, what, msg);
        }
        if (r == 0)
            return sp_set_error(SP_ERR_IO, "%s: truncated: %s needs %zu bytes, the file ends after %zu",
                                path, what, n, got);
        got += (size_t)r;
    }
    return SP_OK;
}

/* n bytes into a new buffer (*out, the caller frees) that grows as the data
 * arrives, so that a header promising more than the file holds costs no
 * more memory than the file's own bytes before the truncation is reported
 * (a 46-byte file claiming 1.7 GB of pixels made the reader ask for 6.6 GB
 * at once: fuzz_idx). */
static sp_status read_growing(gzFile f, const char *path, size_t n, const char *what, unsigned char **out)
{
    size_t cap = n < ((size_t)1 << 20) ? n : ((size_t)1 << 20), got = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return sp_set_error(SP_ERR_NOMEM, "%s: cannot allocate %s", path, what);
    while (got < n) {
        if (got == cap) {
            const size_t grown = 2 * cap < n ? 2 * cap : n;
            unsigned char *p = realloc(buf, grown);
            if (!p) {
                free(buf);
                return sp_set_error(SP_ERR_NOMEM, "%s: cannot allocate %zu bytes for %s", path, grown, what);
            }
            buf = p, cap = grown;
        }
        const size_t want = cap - got;
        int r = gzread(f, buf + got, want > (1u << 30) ? (1u << 30) : (unsigned)want);
        if (r <= 0) {
            int err;
            const char *msg = r < 0 ? gzerror(f, &err) : NULL;
            free(buf);
            return r < 0 ? sp_set_error(SP_ERR_IO, "%s: corrupt gzip data while reading %s (%s)", path, what, msg)
                         : sp_set_error(SP_ERR_IO, "%s: truncated: %s needs %zu bytes, the file ends after %zu",
                                        path, what, n, got);
        }
        got += (size_t)r;
    }
    *out = buf;
    return SP_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Opens path and reads its header; dims[] gets ndim sizes. */
static sp_status open_idx(const char *path, int ndim, uint32_t *dims, gzFile *out)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return sp_set_error(SP_ERR_IO, "%s: cannot open (%s)", path, errno ? strerror(errno) : "gzopen failed");
    unsigned char h[16];
    sp_status s = read_exact(f, path, h, 4, "the IDX magic number");
    if (s == SP_OK && (h[0] != 0 || h[1] != 0 || h[2] != 0x08 || h[3] != ndim))
        s = sp_set_error(SP_ERR_IO,
                         "%s: not an IDX file of %d-D unsigned bytes (magic %02x %02x %02x %02x, "
                         "expected 00 00 08 %02x)",
                         path, ndim, h[0], h[1], h[2], h[3], ndim);
    if (s == SP_OK)
        s = read_exact(f, path, h + 4, 4 * (size_t)ndim, "the IDX dimensions");
    if (s != SP_OK) {
        gzclose(f);
        return s;
    }
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    *out = f;
    return SP_OK;
}

/* The end of the data, and of a gzip member its whole trailer: zlib reports
 * a member cut before its CRC-32 and length (or with a wrong CRC) only as an
 * error state after the last byte, so that state is asked for too. */
static sp_status expect_end(gzFile f, const char *path)
{
    char extra;
    int r = gzread(f, &extra, 1), err = Z_OK;
    const char *msg = gzerror(f, &err);
    if (r > 0)
        return sp_set_error(SP_ERR_IO, "%s: trailing bytes after the last item", path);
    if (r < 0 || err != Z_OK)
        return sp_set_error(SP_ERR_IO, "%s: corrupt gzip data at the end (%s)", path, msg && *msg ? msg : "truncated");
    return SP_OK;
}

/* with_images = 0 reads the images' header only (their count and size are
 * still checked against the labels) and leaves d->x NULL. */
static sp_status idx_load(const char *images_path, const char *labels_path, int classes, int with_images,
                          int side_px, sp_dataset *d)
{
    memset(d, 0, sizeof(*d));
    uint32_t idim[3], ldim[1];
    gzFile fi = NULL, fl = NULL;
    unsigned char *pixels = NULL, *labels = NULL;
    sp_status s = open_idx(images_path, 3, idim, &fi);
    if (s != SP_OK)
        return s;
    if (idim[0] < 1 || idim[0] > IDX_MAX_ITEMS || idim[1] < 1 || idim[1] > IDX_MAX_SIDE ||
        idim[2] < 1 || idim[2] > IDX_MAX_SIDE ||
        (uint64_t)idim[0] * idim[1] * idim[2] > (uint64_t)IDX_MAX_BYTES) {
        s = sp_set_error(SP_ERR_IO,
                         "%s: header says %u images of %u x %u pixels, beyond what this reader "
                         "accepts (at most %ld images, %d pixels a side, %ld bytes)",
                         images_path, idim[0], idim[1], idim[2], IDX_MAX_ITEMS, IDX_MAX_SIDE,
                         IDX_MAX_BYTES);
        goto out;
    }
    if (side_px && (idim[1] != (uint32_t)side_px || idim[2] != (uint32_t)side_px)) {
        s = sp_set_error(SP_ERR_IO, "%s: images are %u x %u, not %d x %d", images_path, idim[1], idim[2], side_px,
                         side_px);
        goto out;
    }
    s = open_idx(labels_path, 1, ldim, &fl);
    if (s != SP_OK)
        goto out;
    if (ldim[0] != idim[0]) {
        s = sp_set_error(SP_ERR_IO, "%s has %u labels but %s has %u images", labels_path, ldim[0],
                         images_path, idim[0]);
        goto out;
    }
    const size_t n = idim[0], side = (size_t)idim[1] * idim[2];
    /* the bytes first (as many as the files hold), the floats once they are all there */
    if ((with_images && ((s = read_growing(fi, images_path, n * side, "the pixels", &pixels)) != SP_OK ||
                         (s = expect_end(fi, images_path)) != SP_OK)) ||
        (s = read_growing(fl, labels_path, n, "the labels", &labels)) != SP_OK ||
        (s = expect_end(fl, labels_path)) != SP_OK)
        goto out;
    d->label = malloc(sizeof(int32_t) * n);
    d->x = with_images ? malloc(sizeof(float) * n * side) : NULL;
    if (!d->label || (with_images && !d->x)) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: cannot allocate %zu images", images_path, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (labels[i] >= classes) {
            s = sp_set_error(SP_ERR_IO, "%s: label %u of item %zu is outside [0, %d)", labels_path,
                             labels[i], i, classes);
            goto out;
        }
        d->label[i] = labels[i];
    }
    for (size_t i = 0; with_images && i < n * side; i++)
        d->x[i] = pixels[i] * (1.0f / 255.0f); /* pixels scaled to [0, 1] */
    d->n = (int)n;
    d->features = (int)side;
    d->classes = classes;
out:
    if (fi)
        gzclose(fi);
    if (fl)
        gzclose(fl);
    free(pixels);
    free(labels);
    if (s != SP_OK)
        sp_dataset_destroy(d);
    return s;
}

sp_status sp_idx_load(const char *images_path, const char *labels_path, int classes, sp_dataset *d)
{
    return idx_load(images_path, labels_path, classes, 1, 0, d);
}

sp_status sp_fashion_mnist_load(const char *dir, int train, int with_images, sp_dataset *d)
{
    char images[4096], labels[4096];
    const char *prefix = train ? "train" : "t10k";
    snprintf(images, sizeof(images), "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(labels, sizeof(labels), "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    return idx_load(images, labels, 10, with_images, 28, d); /* Fashion-MNIST's images are 28 x 28 */
}

void sp_dataset_destroy(sp_dataset *d)
{
    free(d->x);
    free(d->label);
    memset(d, 0, sizeof(*d));
}

sp_status sp_fashion_mnist_count(const char *dir, int train, int *n)
{
    char images[4096];
    snprintf(images, sizeof(images), "%s/%s-images-idx3-ubyte.gz", dir, train ? "train" : "t10k");
    uint32_t dims[3];
    gzFile f;
    sp_status s = open_idx(images, 3, dims, &f);
    if (s != SP_OK)
        return s;
    gzclose(f);
    if (dims[0] < 1 || dims[0] > IDX_MAX_ITEMS)
        return sp_set_error(SP_ERR_IO, "%s: header says %u images", images, dims[0]);
    if (dims[1] != 28 || dims[2] != 28)
        return sp_set_error(SP_ERR_IO, "%s: images are %u x %u, not 28 x 28", images, dims[1], dims[2]);
    *n = (int)dims[0];
    return SP_OK;
}
