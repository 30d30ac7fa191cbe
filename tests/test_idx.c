/*
 * test_idx.c — the IDX reader on small files this test writes itself:
 * a good pair loads with pixels scaled to [0, 1]; each kind of bad file
 * (missing, wrong magic, truncated, trailing bytes, counts that disagree,
 * absurd dimensions, label out of range, corrupt gzip) gives SP_ERR_IO and a
 * message naming the file and the problem, and leaves the data set empty.
 */
#include "starpipe_models.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/starpipe-idx-XXXXXX";

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* Writes an IDX file (gzip unless plain) with the given header and payload. */
static const char *write_idx(const char *name, int ndim, const uint32_t *dims, const unsigned char *payload,
                             size_t n, int plain, int magic_type)
{
    static char path[32][512]; /* more than this test writes: earlier paths stay valid */
    static int next;
    REQUIRE(next < 32, "too many files");
    char *p = path[next++];
    snprintf(p, 512, "%s/%s", dir, name);
    unsigned char h[16] = {0, 0, (unsigned char)magic_type, (unsigned char)ndim};
    for (int i = 0; i < ndim; i++)
        be32(h + 4 + 4 * i, dims[i]);
    if (plain) {
        FILE *f = fopen(p, "wb");
        REQUIRE(f, "cannot write %s", p);
        fwrite(h, 1, 4 + 4 * (size_t)ndim, f);
        fwrite(payload, 1, n, f);
        fclose(f);
    } else {
        gzFile f = gzopen(p, "wb");
        REQUIRE(f, "cannot write %s", p);
        gzwrite(f, h, 4 + 4 * (unsigned)ndim);
        if (n)
            gzwrite(f, payload, (unsigned)n);
        gzclose(f);
    }
    return p;
}

static void expect_fail(const char *images, const char *labels, const char *fragment, const char *what)
{
    sp_dataset d;
    sp_status s = sp_idx_load(images, labels, 10, &d);
    CHECK(s == SP_ERR_IO, "%s: status %s (%s), expected an I/O error", what, sp_strerror(s), sp_error_message());
    CHECK(strstr(sp_error_message(), fragment) != NULL, "%s: message '%s' should contain '%s'", what,
          sp_error_message(), fragment);
    CHECK(d.x == NULL && d.n == 0, "%s: a failed load must leave the data set empty", what);
}

int main(void)
{
    REQUIRE(mkdtemp(dir), "mkdtemp");
    enum { N = 3, R = 2, C = 3 };
    unsigned char pixels[N * R * C], labels[N] = {0, 9, 4};
    for (int i = 0; i < N * R * C; i++)
        pixels[i] = (unsigned char)(i * 15);
    uint32_t idims[3] = {N, R, C}, ldims[1] = {N};

    const char *img = write_idx("img.gz", 3, idims, pixels, sizeof(pixels), 0, 8);
    const char *lab = write_idx("lab.gz", 1, ldims, labels, sizeof(labels), 0, 8);
    sp_dataset d;
    sp_status s = sp_idx_load(img, lab, 10, &d);
    REQUIRE(s == SP_OK, "good files: %s", sp_error_message());
    CHECK(d.n == N && d.features == R * C && d.classes == 10, "shape %d x %d", d.n, d.features);
    CHECK(fabsf(d.x[1] - 15.0f / 255.0f) < 1e-7f && fabsf(d.x[N * R * C - 1] - (N * R * C - 1) * 15 / 255.0f) < 1e-7f,
          "pixels must be scaled to [0, 1]: %g", d.x[1]);
    CHECK(d.label[1] == 9 && d.label[2] == 4, "labels %d %d", d.label[1], d.label[2]);
    sp_dataset_destroy(&d);

    const char *img_plain = write_idx("img.raw", 3, idims, pixels, sizeof(pixels), 1, 8);
    CHECK(sp_idx_load(img_plain, lab, 10, &d) == SP_OK, "an uncompressed file loads too: %s", sp_error_message());
    sp_dataset_destroy(&d);

    char missing[600];
    snprintf(missing, sizeof(missing), "%s/nope.gz", dir);
    expect_fail(missing, lab, "nope.gz: cannot open", "missing file");
    expect_fail(write_idx("magic.gz", 3, idims, pixels, sizeof(pixels), 0, 9), lab, "not an IDX file", "wrong magic");
    expect_fail(img, write_idx("lab3d.gz", 3, idims, pixels, sizeof(pixels), 0, 8), "lab3d.gz: not an IDX file",
                "labels with image magic");
    expect_fail(write_idx("trunc.gz", 3, idims, pixels, sizeof(pixels) - 5, 0, 8), lab, "truncated", "truncated pixels");
    expect_fail(img, write_idx("ltrunc.gz", 1, ldims, labels, 2, 0, 8), "ltrunc.gz: truncated", "truncated labels");
    uint32_t more[1] = {N + 1};
    unsigned char four[N + 1] = {1, 2, 3, 4};
    expect_fail(img, write_idx("count.gz", 1, more, four, sizeof(four), 0, 8), "has 4 labels but", "count mismatch");
    uint32_t huge[3] = {4000000000u, 28, 28};
    expect_fail(write_idx("huge.gz", 3, huge, pixels, sizeof(pixels), 0, 8), lab, "beyond what this reader accepts",
                "absurd header");
    unsigned char extra[sizeof(pixels) + 1] = {0};
    expect_fail(write_idx("extra.gz", 3, idims, extra, sizeof(extra), 0, 8), lab, "trailing bytes", "trailing bytes");
    unsigned char bad_labels[N] = {0, 10, 4};
    expect_fail(img, write_idx("lrange.gz", 1, ldims, bad_labels, N, 0, 8), "label 10 of item 1", "label range");

    /* a gzip stream with its compressed body damaged */
    char corrupt[600];
    snprintf(corrupt, sizeof(corrupt), "%s/corrupt.gz", dir);
    {
        FILE *in = fopen(img, "rb");
        unsigned char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf), in);
        fclose(in);
        for (size_t i = 12; i < n - 8; i++)
            buf[i] ^= 0x5a;
        FILE *out = fopen(corrupt, "wb");
        fwrite(buf, 1, n, out);
        fclose(out);
    }
    expect_fail(corrupt, lab, "corrupt.gz", "corrupt gzip");

    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return test_result("test_idx");
}
