/*
 * cli.h — helpers shared by the starpipe command's subcommands.
 */
#ifndef STARPIPE_CLI_H
#define STARPIPE_CLI_H

#include "starpipe.h"

#include <stddef.h>
#include <stdio.h>

/* The running subcommand ("train", "bench", ...), named in usage errors. */
void cli_set_command(const char *name);
const char *cli_command(void);
/* Prints "starpipe: <message>" and a pointer to the subcommand's --help;
 * returns 2 (usage). */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "starpipe: <what>: <status>: <message>" (with the rank under MPI)
 * for a failed library call; returns 1. */
int cli_fail(const char *what, sp_status s);
/* Each parses a whole option value or prints why not and returns -1. */
int parse_long(const char *opt, const char *s, long lo, long hi, long *out);
int parse_int(const char *opt, const char *s, int lo, int hi, int *out);
int parse_float(const char *opt, const char *s, float lo, float hi, float *out);
/* "256,128" → {256, 128}, each in [lo, hi], at most max entries. */
int parse_list(const char *opt, const char *s, int lo, int hi, int *out, int max, int *n);
/* {256, 128} → "256,128" */
void list_text(char *out, size_t cap, const int *v, int n);
/* Monotonic seconds. */
double now_s(void);
/* v printed with fmt ("%.6f") as a JSON number, or "null" when it is not
 * finite (JSON has no NaN or infinity); buf holds the text. */
const char *json_num(char *buf, size_t cap, const char *fmt, double v);
#define JSON_NUM(fmt, v) json_num((char[64]){0}, 64, fmt, v)
/* s as a JSON string, quotes included: ", \ and control characters escaped,
 * the other bytes (UTF-8) as they are. */
void json_string(FILE *f, const char *s);

/* `starpipe bench` (tools/bench.c). */
int cmd_bench(int argc, char **argv);

/* Simulation and calibration (tools/simulate.c). `starpipe simulate` and
 * `starpipe bench --simulate`: sub is "train" or "bench", argv[0] the
 * subcommand's own name. */
int cmd_simulate(const char *sub, int argc, char **argv);
/* `starpipe simulate`: cmd_simulate("train", ...). */
int cmd_simulate_train(int argc, char **argv);
/* Whether bench's arguments ask for --simulate. */
int sim_bench_asked(int argc, char **argv);
/* Takes `--calibrate DIR` out of argv (a real run that records its perf
 * models into DIR); 0, or the exit status of a refusal. */
int sim_take_calibrate(int *argc, char **argv);

#endif /* STARPIPE_CLI_H */
