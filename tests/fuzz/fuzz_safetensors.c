/*
 * fuzz_safetensors.c — libFuzzer target: the checkpoint reader on any bytes.
 * The input is a whole file (kept in a memfd, read through its /proc path
 * like any checkpoint): the safetensors reader with its strict JSON header
 * parser and tensor table checks, the metadata (sp_checkpoint_read_meta)
 * and the check of the file against a small MLP's parameters
 * (sp_checkpoint_check: names, shapes, byte ranges, checksum). Any outcome
 * but a crash, a sanitizer report or a leak is fine. The seed corpus
 * (tests/fuzz/safetensors/) holds real checkpoints of that MLP.
 */
#define _GNU_SOURCE
#include "starpipe.h"
#include "starpipe_models.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static sp_graph_t *graph;
static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!graph) {
        const int hidden[] = {16, 16};
        if (sp_graph_create(&graph) != SP_OK || sp_model_mlp(graph, 8, hidden, 2, 10, 0) != SP_OK)
            abort();
        fd = memfd_create("checkpoint", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    static sp_meta meta; /* about 200 KB */
    sp_checkpoint_read_meta(path, &meta);
    sp_checkpoint_check(graph, path);
    return 0;
}
