/*
 * mpi.c — the engine's MPI layer over StarPU-MPI (see sp_mpi.h). Built when
 * CMake finds StarPU-MPI and MPI.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <mpi.h>
#include <starpu_mpi.h>
#include <stdlib.h>
#include <string.h>

static int we_initialised;

sp_status sp_mpi_init(int *argc, char ***argv)
{
    int ready = 0;
    MPI_Initialized(&ready);
    if (ready)
        return SP_OK;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return sp_set_error(SP_ERR_STARPU, "MPI_Init_thread failed");
    we_initialised = 1;
    if (provided < MPI_THREAD_SERIALIZED)
        return sp_set_error(SP_ERR_NODEV, "this MPI gives thread level %d; StarPU-MPI needs MPI_THREAD_SERIALIZED", provided);
    return SP_OK;
}

void sp_mpi_finalize(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (we_initialised && !done)
        MPI_Finalize();
    we_initialised = 0;
}

int sp_mpi_ready(void)
{
    int ready = 0, done = 0;
    MPI_Initialized(&ready);
    MPI_Finalized(&done);
    return ready && !done;
}

int sp_mpi_rank(void)
{
    int r = 0;
    if (sp_mpi_ready())
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int sp_mpi_size(void)
{
    int n = 1;
    if (sp_mpi_ready())
        MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

int sp_mpi_starpu_init(struct starpu_conf *conf, int stats)
{
    int ret = starpu_mpi_init_conf(NULL, NULL, 0, MPI_COMM_WORLD, conf);
    if (ret == 0 && stats) /* StarPU-MPI then also prints its own table at shutdown */
        starpu_mpi_comm_stats_enable();
    return ret;
}

void sp_mpi_starpu_shutdown(void) { starpu_mpi_shutdown(); }

/* The blocking calls below are waits the stall watchdog watches (watchdog.c). */
int sp_mpi_wait_for_all(void)
{
    sp_watch_wait_begin();
    int ret = starpu_mpi_wait_for_all(MPI_COMM_WORLD);
    sp_watch_wait_end();
    return ret;
}

void sp_mpi_register(starpu_data_handle_t h, int64_t tag, int owner) { starpu_mpi_data_register(h, tag, owner); }

struct starpu_task *sp_mpi_task_build(struct starpu_codelet *cl, struct starpu_data_descr *d, int n)
{
    return starpu_mpi_task_build(MPI_COMM_WORLD, cl, STARPU_DATA_MODE_ARRAY, d, n, 0);
}

void sp_mpi_task_post_build(struct starpu_codelet *cl, struct starpu_data_descr *d, int n)
{
    starpu_mpi_task_post_build(MPI_COMM_WORLD, cl, STARPU_DATA_MODE_ARRAY, d, n, 0);
}

void sp_mpi_fetch_everywhere(starpu_data_handle_t h) { starpu_mpi_get_data_on_all_nodes_detached(MPI_COMM_WORLD, h); }

int sp_mpi_all_equal(uint64_t value)
{
    uint64_t lo, hi;
    sp_watch_wait_begin();
    MPI_Allreduce(&value, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&value, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    sp_watch_wait_end();
    return lo == hi;
}

int sp_mpi_any(int flag) { return sp_mpi_ready() ? sp_mpi_max_int(flag != 0) : flag != 0; }

int sp_mpi_max_int(int value)
{
    int out;
    sp_watch_wait_begin();
    MPI_Allreduce(&value, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    sp_watch_wait_end();
    return out;
}

double sp_mpi_bcast_double(double value, int root)
{
    sp_watch_wait_begin();
    MPI_Bcast(&value, 1, MPI_DOUBLE, root, MPI_COMM_WORLD);
    sp_watch_wait_end();
    return value;
}

sp_status sp_mpi_gather_events(const sp_task_event *ev, size_t n, sp_task_event **all, size_t *n_all)
{
    int size = sp_mpi_size(), rank = sp_mpi_rank();
    int bytes = (int)(n * sizeof(*ev));
    int *counts = rank == 0 ? calloc((size_t)size, sizeof(int)) : NULL;
    int *displs = rank == 0 ? calloc((size_t)size, sizeof(int)) : NULL;
    MPI_Gather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    long total = 0;
    if (rank == 0)
        for (int r = 0; r < size; r++) {
            displs[r] = (int)total;
            total += counts[r];
        }
    *all = rank == 0 ? malloc(total ? (size_t)total : 1) : NULL;
    MPI_Gatherv(ev, bytes, MPI_BYTE, *all, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
    *n_all = rank == 0 ? (size_t)total / sizeof(*ev) : 0;
    free(counts);
    free(displs);
    for (size_t i = 0; i < *n_all; i++)
        (*all)[i].name = NULL; /* another process's pointer */
    return SP_OK;
}

double sp_mpi_bytes_sent(void)
{
    int size = sp_mpi_size();
    size_t *stats = calloc((size_t)size, sizeof(size_t));
    double mine = 0.0, sum = 0.0;
    if (stats) {
        starpu_mpi_comm_stats_retrieve(stats);
        for (int r = 0; r < size; r++)
            mine += (double)stats[r];
    }
    free(stats);
    MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return sum;
}
