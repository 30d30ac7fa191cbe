/*
 * mpi_none.c — the engine's MPI layer when starpipe is built without
 * StarPU-MPI (see sp_mpi.h): a single process, and a clear refusal of opts.mpi.
 */
#include "sp_mpi.h"

#include <errno.h>

sp_status sp_mpi_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return sp_set_error(SP_ERR_NODEV, "starpipe was built without StarPU-MPI (install StarPU with MPI and rebuild)");
}

void sp_mpi_finalize(void) {}
int sp_mpi_ready(void) { return 0; }
int sp_mpi_rank(void) { return 0; }
int sp_mpi_size(void) { return 1; }
int sp_mpi_starpu_init(struct starpu_conf *conf, int stats) { (void)conf, (void)stats; return -ENODEV; }
void sp_mpi_starpu_shutdown(void) {}
int sp_mpi_wait_for_all(void) { return starpu_task_wait_for_all(); }
void sp_mpi_register(starpu_data_handle_t h, int64_t tag, int owner) { (void)h, (void)tag, (void)owner; }

struct starpu_task *sp_mpi_task_build(struct starpu_codelet *cl, struct starpu_data_descr *d, int n)
{
    (void)cl, (void)d, (void)n;
    return NULL;
}

void sp_mpi_task_post_build(struct starpu_codelet *cl, struct starpu_data_descr *d, int n) { (void)cl, (void)d, (void)n; }
void sp_mpi_fetch_everywhere(starpu_data_handle_t h) { (void)h; }
int sp_mpi_all_equal(uint64_t value) { (void)value; return 1; }
int sp_mpi_max_int(int value) { return value; }
int sp_mpi_any(int flag) { return flag != 0; }
double sp_mpi_bcast_double(double value, int root) { (void)root; return value; }

sp_status sp_mpi_gather_events(const sp_task_event *ev, size_t n, sp_task_event **all, size_t *n_all)
{
    (void)ev, (void)n, (void)all, (void)n_all;
    return sp_set_error(SP_ERR_NODEV, "starpipe was built without StarPU-MPI");
}

double sp_mpi_bytes_sent(void) { return 0.0; }
