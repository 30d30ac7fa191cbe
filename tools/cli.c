/*
 * cli.c — what the command's subcommands share: the name of the running
 * subcommand, strict parsing of option values (a bad value names the option
 * and what it expects), the message of a failed library call, and a clock.
 * Nothing here knows a subcommand's options.
 */
#include "cli.h"
#include "starpipe.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *command = "train";

void cli_set_command(const char *name)
{
    command = name;
}

const char *cli_command(void)
{
    return command;
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "starpipe: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'starpipe %s --help')\n", command);
    return 2;
}

int cli_fail(const char *what, sp_status s)
{
    const char *msg = sp_error_message();
    if (sp_mpi_size() > 1)
        fprintf(stderr, "starpipe (rank %d): %s: %s%s%s\n", sp_mpi_rank(), what, sp_strerror(s),
                *msg ? ": " : "", msg);
    else
        fprintf(stderr, "starpipe: %s: %s%s%s\n", what, sp_strerror(s), *msg ? ": " : "", msg);
    return 1;
}

int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "starpipe: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    long v;
    if (parse_long(opt, s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

int parse_float(const char *opt, const char *s, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "starpipe: %s expects a number in [%g, %g], got '%s'\n", opt, (double)lo, (double)hi,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

/* "256,128" → {256, 128}; every entry in [lo, hi]. */
int parse_list(const char *opt, const char *s, int lo, int hi, int *out, int max, int *n)
{
    char buf[1024];
    size_t len = strlen(s);
    if (!len || len >= sizeof(buf) || s[len - 1] == ',' || s[0] == ',' || strstr(s, ",,")) {
        fprintf(stderr, "starpipe: %s expects a comma-separated list of integers, got '%s'\n", opt, s);
        return -1;
    }
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == max) {
            fprintf(stderr, "starpipe: %s takes at most %d entries\n", opt, max);
            return -1;
        }
        if (parse_int(opt, tok, lo, hi, &out[*n]))
            return -1;
        (*n)++;
    }
    return 0;
}

void list_text(char *out, size_t cap, const int *v, int n)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used < cap; i++) {
        int w = snprintf(out + used, cap - used, "%s%d", i ? "," : "", v[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

double now_s(void) { return sp_clock_s(); } /* simulated time in starpipe-sim */

const char *json_num(char *buf, size_t cap, const char *fmt, double v)
{
    if (!isfinite(v))
        snprintf(buf, cap, "null");
    else
        snprintf(buf, cap, fmt, v);
    return buf;
}

void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}
