/*
 * simulate.c — the library's only knowledge of simulation. The same sources
 * build the simulating command, starpipe-sim, against a StarPU configured
 * with --enable-simgrid (STARPU_SIMGRID in starpu_config.h): StarPU then runs
 * the real task graph and the real schedulers, but no codelet, timing each
 * task from its history perf model and each transfer from a platform file.
 * What differs for starpipe is here:
 *   - whether this build simulates (sp_simulated),
 *   - the clock worth reading (simulated time, sp_clock_s),
 *   - the check, before a task is submitted, that every worker allowed to run
 *     it has a calibrated model for it — without it StarPU would stop the
 *     whole process with a line of its own, or schedule the task as if it
 *     cost nothing.
 * In the normal build each of these is trivial. Values are not computed in a
 * simulation (losses, checksums are those of untouched buffers); nothing here
 * pretends otherwise. The simulation's set-up (calibration directory, machine,
 * platform file) is the command's (tools/simulate.c), before the simulating
 * process starts; this file does not read files or the environment.
 */
#include "engine.h"

#include <math.h>
#include <time.h>

int sp_simulated(void)
{
#ifdef STARPU_SIMGRID
    return 1;
#else
    return 0;
#endif
}

double sp_clock_s(void)
{
#ifdef STARPU_SIMGRID
    return starpu_timing_now() * 1e-6; /* SimGrid's clock: real time means nothing here */
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
#endif
}

/* Whether worker w may run the task under its placement. */
static int allowed(const struct starpu_task *task, unsigned w)
{
    if (task->execute_on_a_specific_worker)
        return w == task->workerid;
    if (task->workerids && task->workerids_len)
        return w / 32 < task->workerids_len && (task->workerids[w / 32] >> (w % 32)) & 1;
    return 1;
}

sp_status sp_simulate_check_task(struct starpu_task *task)
{
#ifdef STARPU_SIMGRID
    struct starpu_codelet *cl = task->cl;
    const char *symbol = cl->model && cl->model->symbol ? cl->model->symbol : cl->name;
    if (!cl->model)
        return sp_set_error(SP_ERR_STARPU, "simulation: codelet '%s' (task '%s') has no perf model to time it by",
                            cl->name, task->name);
    for (unsigned w = 0; w < starpu_worker_get_count(); w++) {
        if (!allowed(task, w) || !starpu_worker_can_execute_task(w, task, 0))
            continue;
        struct starpu_perfmodel_arch *arch = starpu_worker_get_perf_archtype((int)w, STARPU_NMAX_SCHED_CTXS);
        double us = starpu_task_expected_length(task, arch, 0);
        if (isnan(us) || us <= 0.0) {
            char archname[64], worker[64];
            starpu_perfmodel_get_arch_name(arch, archname, sizeof(archname), 0);
            starpu_worker_get_name((int)w, worker, sizeof(worker));
            return sp_set_error(SP_ERR_STARPU,
                                "simulation: codelet '%s' has no calibrated model for task '%s' (footprint %08x) on "
                                "%s (%s): the calibration never ran this configuration there; calibrate with a real "
                                "run of the same options plus --calibrate DIR (README, \"Simulation\")",
                                symbol, task->name, starpu_task_footprint(cl->model, task, arch, 0), worker,
                                archname);
        }
    }
#else
    (void)task;
#endif
    return SP_OK;
}
