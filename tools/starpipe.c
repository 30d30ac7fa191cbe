/*
 * starpipe.c — the command-line tool's front: the list of subcommands, the
 * top-level help, and dispatch.
 *
 *   starpipe train [options]          train a pipelined model (train.c)
 *   starpipe eval --load PATH [opts]  evaluate a checkpoint on the test set (train.c)
 *   starpipe generate --load PATH     sample text from a GPT checkpoint (generate.c)
 *   starpipe bench [options]          compare policies, schedules, placements (bench.c)
 *   starpipe simulate [options]       a train or bench run in simulated time (simulate.c)
 *   starpipe plan [options]           the cut a run would use and its predicted step (balance.c)
 *   starpipe --help
 *
 * Exit status: 0 on success, 2 for bad usage (unknown option, bad value),
 * 1 when the run itself fails (data files, checkpoints, StarPU), with a
 * message on stderr. Only tools/ (and test mains) may exit; the library
 * returns statuses. A subcommand's options are its own file's business.
 */
#include "cli.h"
#include "train.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct subcommand {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
} commands[] = {
    {"train", "train a model with pipeline parallelism (checkpoints, timelines)", cmd_train},
    {"eval", "evaluate a saved checkpoint on its data set's test set (or its text's validation windows)", cmd_eval},
    {"generate", "sample text from a saved GPT with the pipelined forward pass", cmd_generate},
    {"bench", "compare StarPU policies, schedules and placements on one model", cmd_bench},
    {"simulate", "a training run in simulated time, from a calibration (StarPU + SimGrid)", cmd_simulate_train},
    {"plan", "the stage cut a run would use, balanced by measured op times, and its predicted step", cmd_plan},
};
#define N_COMMANDS (sizeof(commands) / sizeof(*commands))

static void usage(FILE *f)
{
    fprintf(f, "usage: starpipe <command> [options]\n"
               "\n"
               "Trains neural networks with pipeline parallelism on StarPU: the model is cut\n"
               "into K stages, each batch into M micro-batches, and every (stage, micro-batch,\n"
               "forward/backward) runs as one StarPU task.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'starpipe <command> --help' lists the options of a command.\n");
}

int main(int argc, char **argv)
{
    /* past a file size limit (ulimit -f) a write fails with EFBIG and the
     * save cleans up and says so, instead of the process dying mid-write */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    /* simulation: bench --simulate runs in starpipe-sim; --calibrate DIR is a
     * real run recording its perf models (simulate.c) */
    if (!strcmp(argv[1], "bench") && sim_bench_asked(argc - 1, argv + 1)) {
        cli_set_command("bench");
        return cmd_simulate("bench", argc - 1, argv + 1);
    }
    /* plan's --calibrate is its own (a calibration run into STARPU_HOME) */
    if (!strcmp(argv[1], "plan")) {
        cli_set_command("plan");
        return cmd_plan(argc - 1, argv + 1);
    }
    int rc = sim_take_calibrate(&argc, argv);
    if (rc)
        return rc;
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            cli_set_command(commands[i].name);
            return commands[i].main(argc - 1, argv + 1);
        }
    fprintf(stderr, "starpipe: unknown command '%s' (available:", argv[1]);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(stderr, "%s %s", i ? "," : "", commands[i].name);
    fprintf(stderr, "; see 'starpipe --help')\n");
    return 2;
}
