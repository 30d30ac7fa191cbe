/*
 * fuzz_args.c — libFuzzer target: the command line of `starpipe train` and
 * `starpipe eval` (train_args_parse: every option's value, the data set's
 * defaults, the checks between options, the output paths; a --resume or
 * --load path is only read). The input is the arguments, separated by NUL
 * bytes; its first byte picks train or eval. A usage error is a fine
 * outcome; so is --help, whose exit() is turned into a return here
 * (exit=sp_fuzz_exit when the tools' files are compiled for this target).
 * The seed corpus (tests/fuzz/args/) holds the README's command lines.
 */
#include "cli.h"
#include "train.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static jmp_buf back;

void sp_fuzz_exit(int status)
{
    (void)status;
    longjmp(back, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++) { /* the parser's messages, not the sanitizers' reports (those use fd 2 itself) */
        FILE *null = fopen("/dev/null", "w");
        if (null)
            stderr = null;
    }
    if (size < 1)
        return 0;
    const enum command command = data[0] & 1 ? CMD_EVAL : CMD_TRAIN;
    char *buf = malloc(size); /* the arguments, NUL-terminated */
    char *argv[MAX_ARGS + 2];
    struct train_args *a = malloc(sizeof(*a));
    if (!buf || !a)
        abort();
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    int argc = 0;
    argv[argc++] = command == CMD_EVAL ? "eval" : "train";
    for (char *p = buf; p < buf + size - 1 && argc <= MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    cli_set_command(argv[0]);
    if (!setjmp(back))
        train_args_parse(argc, argv, command, a);
    free(a);
    free(buf);
    return 0;
}
