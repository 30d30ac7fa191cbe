/*
 * placement.c — which workers may run each stage's tasks: one worker
 * (pinned, or a map entry cpuN), a set of workers (a device, a map entry cpu
 * or cudaG; starpu_task::workerids), or any (free: the policy decides from
 * the perf models). Runs after starpu_init, when the workers are known.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

/* A bit set of allowed workers (starpu_task::workerids). */
static sp_status worker_set(struct sp_stage_plan *sp, const int *ids, int n)
{
    unsigned len = (starpu_worker_get_count() + 31) / 32;
    sp->workerids = calloc(len ? len : 1, sizeof(uint32_t));
    if (!sp->workerids)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    sp->workerids_len = len;
    for (int i = 0; i < n; i++)
        sp->workerids[ids[i] / 32] |= 1u << (ids[i] % 32);
    return SP_OK;
}

/* One map entry: "cpu", "cpuN", "cuda" or "cudaG". */
static sp_status place_entry(struct sp_stage_plan *sp, int s, const char *e, const int *cpus, int ncpu)
{
    int ids[STARPU_NMAXWORKERS], n = 0;
    char *end;
    if (!strcmp(e, "cpu"))
        return worker_set(sp, cpus, ncpu);
    if (!strncmp(e, "cpu", 3)) {
        long i = strtol(e + 3, &end, 10);
        if (*end || end == e + 3 || i < 0)
            return sp_set_error(SP_ERR_INVALID_ARG, "placement map: stage %d: '%s' is not cpu, cpuN, cuda or cudaG", s, e);
        if (i >= ncpu)
            return sp_set_error(SP_ERR_NODEV, "placement map: stage %d: '%s' but there are %d CPU workers", s, e, ncpu);
        sp->worker = cpus[i];
        return SP_OK;
    }
    if (!strncmp(e, "cuda", 4)) {
        long gpu = -1;
        if (e[4]) {
            gpu = strtol(e + 4, &end, 10);
            if (*end || gpu < 0)
                return sp_set_error(SP_ERR_INVALID_ARG, "placement map: stage %d: '%s' is not cpu, cpuN, cuda or cudaG", s, e);
        }
        int cuda[STARPU_NMAXWORKERS];
        int nc = starpu_worker_get_ids_by_type(STARPU_CUDA_WORKER, cuda, STARPU_NMAXWORKERS);
        for (int i = 0; i < nc; i++)
            if (gpu < 0 || starpu_worker_get_devid(cuda[i]) == gpu)
                ids[n++] = cuda[i];
        if (!n)
            return sp_set_error(SP_ERR_NODEV, "placement map: stage %d: no CUDA worker for '%s'", s, e);
        return worker_set(sp, ids, n);
    }
    return sp_set_error(SP_ERR_INVALID_ARG, "placement map: stage %d: '%s' is not cpu, cpuN, cuda or cudaG", s, e);
}

sp_status sp_place_stages(sp_trainer_t *t, const sp_train_opts *o)
{
    int ids[STARPU_NMAXWORKERS], cpus[STARPU_NMAXWORKERS];
    const int cuda = t->device == SP_DEVICE_CUDA;
    int ncpu = (int)starpu_worker_get_ids_by_type(STARPU_CPU_WORKER, cpus, STARPU_NMAXWORKERS);
    int n = cuda ? (int)starpu_worker_get_ids_by_type(STARPU_CUDA_WORKER, ids, STARPU_NMAXWORKERS) : ncpu;
    if (!cuda)
        memcpy(ids, cpus, sizeof(int) * (size_t)(ncpu > 0 ? ncpu : 0));
    if (n <= 0)
        return sp_set_error(SP_ERR_NODEV, cuda ? "trainer: no CUDA worker (no GPU here, or StarPU or starpipe "
                                                 "built without CUDA)"
                                               : "trainer: no CPU worker (every stage needs one)");
    t->nworkers = n;
    for (int s = 0; s < t->K; s++)
        t->st[s].worker = -1;
    switch (t->placement) {
    case SP_PLACEMENT_PINNED: /* stage s on pipeline worker s mod p (interleaved: p = K / v) */
        for (int s = 0; s < t->K; s++)
            t->st[s].worker = ids[(s % t->pipe_workers) % n];
        return SP_OK;
    case SP_PLACEMENT_FREE:
        return SP_OK;
    case SP_PLACEMENT_DEVICE: { /* GPU g's workers (streams), or every CPU worker as one device */
        int ngpu = 0;
        for (int i = 0; cuda && i < n; i++)
            ngpu = starpu_worker_get_devid(ids[i]) + 1 > ngpu ? starpu_worker_get_devid(ids[i]) + 1 : ngpu;
        for (int s = 0; s < t->K; s++) {
            int dev[STARPU_NMAXWORKERS], nd = 0;
            for (int i = 0; i < n; i++)
                if (!cuda || starpu_worker_get_devid(ids[i]) == s % ngpu)
                    dev[nd++] = ids[i];
            sp_status st = worker_set(&t->st[s], dev, nd);
            if (st != SP_OK)
                return st;
        }
        return SP_OK;
    }
    case SP_PLACEMENT_MAP: {
        char *copy = strdup(o->placement_map), *save = NULL;
        if (!copy)
            return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        int s = 0;
        sp_status st = SP_OK;
        for (char *e = strtok_r(copy, ",", &save); e && st == SP_OK; e = strtok_r(NULL, ",", &save), s++)
            st = s < t->K ? place_entry(&t->st[s], s, e, cpus, ncpu) : SP_OK;
        free(copy);
        if (st == SP_OK && s != t->K)
            st = sp_set_error(SP_ERR_INVALID_ARG, "placement map '%s' has %d entries for %d stages",
                              o->placement_map, s, t->K);
        return st;
    }
    }
    return SP_OK;
}
