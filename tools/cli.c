/*
 * cli.c — what the command's subcommands share: strict parsing of option
 * values (a bad value names the option and what it expects) and a clock.
 */
#include "cli.h"
#include "starpipe.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "starpipe: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'starpipe train --help')\n");
    return 2;
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
        fprintf(stderr, "starpipe: %s expects a number in [%g, %g], got '%s'\n", opt, (double)lo,
                (double)hi, s);
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

