/*
 * fuzz_idx.c — libFuzzer target: the IDX reader (raw or gzip) on any bytes.
 * The input is split in two at the offset its first two bytes give
 * (little-endian): the images file, then the labels file, each kept in a
 * memfd and read through its /proc path (zlib's gzopen reads plain files
 * too). Any outcome but a crash, a sanitizer report or a leak is fine. The
 * seed corpus (tests/fuzz/idx/) holds small valid pairs, plain and gzip.
 */
#define _GNU_SOURCE
#include "starpipe_models.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int fds[2] = {-1, -1};
static char paths[2][64];

static void put(int i, const uint8_t *p, size_t n)
{
    if (ftruncate(fds[i], 0) != 0 || (n && pwrite(fds[i], p, n, 0) != (ssize_t)n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fds[0] < 0)
        for (int i = 0; i < 2; i++) {
            if ((fds[i] = memfd_create(i ? "labels" : "images", 0)) < 0)
                abort();
            snprintf(paths[i], sizeof(paths[i]), "/proc/self/fd/%d", fds[i]);
        }
    if (size < 2)
        return 0;
    size_t cut = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2, size -= 2;
    cut = cut < size ? cut : size;
    put(0, data, cut);
    put(1, data + cut, size - cut);
    sp_dataset d;
    if (sp_idx_load(paths[0], paths[1], 10, &d) == SP_OK)
        sp_dataset_destroy(&d);
    return 0;
}
