/*
 * text.c — a character-level text data set: any UTF-8 file, its vocabulary
 * (the distinct code points, sorted), the text as int32 ids, the last 10%
 * held out for validation, and batches of windows for a language model
 * (inputs: T ids, targets: the next T ids).
 *
 * Refused with the file named: a missing or unreadable file, an empty one,
 * one that is not UTF-8 text (invalid sequences, NUL bytes), a vocabulary
 * above SP_TEXT_MAX_VOCAB, a text too short for one window in each split.
 * Encoding text against a saved vocabulary names the first character that
 * is not in it.
 */
#include "starpipe_models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX_BYTES (1L << 30)

/* The next code point of s[0..n), or -1 for an invalid UTF-8 sequence;
 * *len is its byte length. */
static long utf8_next(const unsigned char *s, size_t n, int *len)
{
    const unsigned char c = s[0];
    long cp;
    int k;
    if (c < 0x80)
        return *len = 1, c;
    if ((c & 0xe0) == 0xc0)
        cp = c & 0x1f, k = 2;
    else if ((c & 0xf0) == 0xe0)
        cp = c & 0x0f, k = 3;
    else if ((c & 0xf8) == 0xf0)
        cp = c & 0x07, k = 4;
    else
        return -1;
    if ((size_t)k > n)
        return -1;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const long min[5] = {0, 0, 0x80, 0x800, 0x10000}; /* overlong forms are invalid */
    if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = k;
    return cp;
}

static int utf8_put(long cp, char *out)
{
    if (cp < 0x80)
        return out[0] = (char)cp, 1;
    if (cp < 0x800)
        return out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xe0 | (cp >> 12)), out[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
               out[2] = (char)(0x80 | (cp & 0x3f)), 3;
    out[0] = (char)(0xf0 | (cp >> 18)), out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static int vocab_index(const sp_text *d, long cp)
{
    int lo = 0, hi = d->vocab - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (d->chars[mid] == cp)
            return mid;
        if (d->chars[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* The file's code points into *cps (count *n). */
static sp_status read_code_points(const char *path, long **cps, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sp_set_error(SP_ERR_IO, "%s: cannot open the text file (%s)", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 20;
            unsigned char *p = cap <= TEXT_MAX_BYTES ? realloc(buf, cap) : NULL;
            if (!p) {
                free(buf), fclose(f);
                return cap > TEXT_MAX_BYTES
                           ? sp_set_error(SP_ERR_IO, "%s: larger than %ld bytes", path, TEXT_MAX_BYTES)
                           : sp_set_error(SP_ERR_NOMEM, "%s: out of memory reading the text", path);
            }
            buf = p;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return sp_set_error(SP_ERR_IO, "%s: read error", path);
    }
    if (len == 0) {
        free(buf);
        return sp_set_error(SP_ERR_IO, "%s: the text file is empty", path);
    }
    *cps = malloc(sizeof(long) * len);
    if (!*cps) {
        free(buf);
        return sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    }
    long count = 0;
    for (size_t i = 0; i < len;) {
        int k;
        long cp = utf8_next(buf + i, len - i, &k);
        if (cp <= 0) {
            free(buf), free(*cps);
            return sp_set_error(SP_ERR_IO, "%s: not UTF-8 text (%s at byte %zu)", path,
                                cp == 0 ? "a NUL byte" : "an invalid sequence", i);
        }
        (*cps)[count++] = cp;
        i += (size_t)k;
    }
    free(buf);
    *n = count;
    return SP_OK;
}

sp_status sp_text_load(const char *path, int context, const char *vocabulary, sp_text *d)
{
    memset(d, 0, sizeof(*d));
    long *cps = NULL, n = 0;
    sp_status s = read_code_points(path, &cps, &n);
    if (s != SP_OK)
        return s;
    if (vocabulary) { /* a saved model's */
        s = sp_text_vocab_parse(vocabulary, d);
    } else {
        long *sorted = malloc(sizeof(long) * (size_t)n);
        if (!sorted) {
            free(cps);
            return sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(sorted, cps, sizeof(long) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof(long), cmp_long);
        long v = 0;
        for (long i = 0; i < n; i++)
            if (!i || sorted[i] != sorted[i - 1])
                sorted[v++] = sorted[i];
        if (v > SP_TEXT_MAX_VOCAB)
            s = sp_set_error(SP_ERR_IO, "%s: %ld distinct characters, more than the %d a vocabulary may hold", path, v,
                             SP_TEXT_MAX_VOCAB);
        else if (v < 2)
            s = sp_set_error(SP_ERR_IO, "%s: a vocabulary needs at least 2 distinct characters, found %ld", path, v);
        else {
            d->vocab = (int)v;
            memcpy(d->chars, sorted, sizeof(long) * (size_t)v);
        }
        free(sorted);
    }
    if (s == SP_OK)
        d->ids = malloc(sizeof(int32_t) * (size_t)n);
    if (s == SP_OK && !d->ids)
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    for (long i = 0; s == SP_OK && i < n; i++) {
        int id = vocab_index(d, cps[i]);
        if (id < 0) {
            char c[5] = {0};
            utf8_put(cps[i], c);
            s = sp_set_error(SP_ERR_IO, "%s: character '%s' (U+%04lX) at position %ld is not in the model's vocabulary",
                             path, cps[i] == '\n' ? "\\n" : c, cps[i], i);
        } else
            d->ids[i] = id;
    }
    free(cps);
    d->n = n;
    d->n_train = n - n / 10;
    if (s == SP_OK && (d->n_train < context + 1 || n - d->n_train < context + 1))
        s = sp_set_error(SP_ERR_IO,
                         "%s: %ld characters are too few: training (90%%) and validation (10%%) need %d each for one "
                         "window of --context %d",
                         path, n, context + 1, context);
    if (s != SP_OK)
        sp_text_destroy(d);
    return s;
}

void sp_text_destroy(sp_text *d)
{
    free(d->ids);
    memset(d, 0, sizeof(*d));
}

sp_status sp_text_vocab_string(const sp_text *d, char *out, size_t cap)
{
    size_t used = 0;
    for (int i = 0; i < d->vocab; i++) {
        int w = snprintf(out + used, cap - used, "%s%ld", i ? "," : "", d->chars[i]);
        if (w < 0 || (size_t)w >= cap - used)
            return sp_set_error(SP_ERR_INVALID_ARG, "text: the vocabulary does not fit in %zu bytes", cap);
        used += (size_t)w;
    }
    return SP_OK;
}

sp_status sp_text_vocab_parse(const char *s, sp_text *d)
{
    d->vocab = 0;
    const char *p = s;
    while (p && *p) {
        char *end;
        errno = 0;
        long cp = strtol(p, &end, 10);
        if (end == p || errno || cp <= 0 || cp > 0x10ffff || (*end && *end != ',') || d->vocab == SP_TEXT_MAX_VOCAB ||
            (d->vocab && cp <= d->chars[d->vocab - 1]))
            return sp_set_error(SP_ERR_IO, "text: a malformed vocabulary (code points in increasing order expected)");
        d->chars[d->vocab++] = cp;
        p = *end ? end + 1 : end;
    }
    if (d->vocab < 2)
        return sp_set_error(SP_ERR_IO, "text: a vocabulary needs at least 2 characters");
    return SP_OK;
}

sp_status sp_text_encode(const sp_text *d, const char *utf8, int32_t *ids, int cap, int *n)
{
    const unsigned char *s = (const unsigned char *)utf8;
    size_t len = strlen(utf8);
    int count = 0;
    for (size_t i = 0; i < len;) {
        int k;
        long cp = utf8_next(s + i, len - i, &k);
        if (cp <= 0)
            return sp_set_error(SP_ERR_INVALID_ARG, "the text is not valid UTF-8 at byte %zu", i);
        int id = vocab_index(d, cp);
        if (id < 0) {
            char c[5] = {0};
            utf8_put(cp, c);
            return sp_set_error(SP_ERR_INVALID_ARG, "character '%s' (U+%04lX) is not in the model's vocabulary",
                                cp == '\n' ? "\\n" : c, cp);
        }
        if (count == cap)
            return sp_set_error(SP_ERR_INVALID_ARG, "the text is longer than %d characters", cap);
        ids[count++] = id;
        i += (size_t)k;
    }
    *n = count;
    return SP_OK;
}

int sp_text_decode(const sp_text *d, int32_t id, char out[5])
{
    memset(out, 0, 5);
    if (id < 0 || id >= d->vocab)
        return 0;
    return utf8_put(d->chars[id], out);
}

void sp_text_batch(const sp_text *d, int validation, long index, uint64_t seed, int batch, int context, int32_t *x,
                   int32_t *y)
{
    const long lo = validation ? d->n_train : 0, hi = validation ? d->n : d->n_train;
    const long span = hi - lo - context; /* window starts in [lo, lo + span) */
    uint64_t state = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)index * 0xbf58476d1ce4e5b9ULL + (validation ? 7 : 3);
    for (int b = 0; b < batch; b++) {
        const long start = lo + (long)(sp_splitmix64(&state) % (uint64_t)span);
        memcpy(x + (long)b * context, d->ids + start, sizeof(int32_t) * context);
        memcpy(y + (long)b * context, d->ids + start + 1, sizeof(int32_t) * context);
    }
}

long sp_text_windows(const sp_text *d, long max_windows, int context, int32_t **x, int32_t **y)
{
    const long span = d->n - d->n_train - 1; /* targets need one character more */
    long n = span / context;
    if (max_windows > 0 && n > max_windows)
        n = max_windows;
    *x = malloc(sizeof(int32_t) * (size_t)(n ? n : 1) * context);
    *y = malloc(sizeof(int32_t) * (size_t)(n ? n : 1) * context);
    if (!*x || !*y) {
        free(*x), free(*y);
        *x = *y = NULL;
        return -1;
    }
    const long stride = span / n; /* spread evenly over the held-out text */
    for (long w = 0; w < n; w++) {
        const long start = d->n_train + w * stride;
        memcpy(*x + w * context, d->ids + start, sizeof(int32_t) * context);
        memcpy(*y + w * context, d->ids + start + 1, sizeof(int32_t) * context);
    }
    return n;
}
