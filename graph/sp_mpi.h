/*
 * sp_mpi.h — the few StarPU-MPI and MPI calls the engine makes, behind one
 * interface with two implementations: mpi.c (built when StarPU-MPI and MPI
 * are found) and mpi_none.c (refuses opts.mpi with a clear error). Nothing
 * else in starpipe includes sp_mpi.h or calls MPI. Not installed.
 */
#ifndef SP_MPI_H
#define SP_MPI_H

#include "engine.h"

/* Whether sp_mpi_init has run (or MPI was initialised by the program). */
int sp_mpi_ready(void);
/* starpu_mpi_init_conf on MPI_COMM_WORLD (MPI itself already initialised);
 * stats: count the bytes sent between ranks (StarPU-MPI prints them at shutdown). */
int sp_mpi_starpu_init(struct starpu_conf *conf, int stats);
void sp_mpi_starpu_shutdown(void);
/* Waits for every task and every transfer of every rank (collective). */
int sp_mpi_wait_for_all(void);
/* Gives StarPU-MPI the handle's tag and owning rank. */
void sp_mpi_register(starpu_data_handle_t h, int64_t tag, int owner);
/* starpu_mpi_task_build: the task on the rank that runs it, NULL elsewhere;
 * then sp_mpi_task_post_build on every rank, after the submission. */
struct starpu_task *sp_mpi_task_build(struct starpu_codelet *cl, struct starpu_data_descr *d, int n);
void sp_mpi_task_post_build(struct starpu_codelet *cl, struct starpu_data_descr *d, int n);
/* Copies the handle's current value onto every rank (detached; a later
 * acquire waits for it). */
void sp_mpi_fetch_everywhere(starpu_data_handle_t h);
/* 1 when every rank passed the same value. */
int sp_mpi_all_equal(uint64_t value);
/* The largest of every rank's value. */
int sp_mpi_max_int(int value);
double sp_mpi_bcast_double(double value, int root);
/* Every rank's events gathered on rank 0 (*all malloc'd there; names are
 * left NULL, the caller restores them from the tags). */
sp_status sp_mpi_gather_events(const sp_task_event *ev, size_t n, sp_task_event **all, size_t *n_all);
/* Sum over ranks of the bytes StarPU-MPI sent since its initialisation
 * (0 unless sp_mpi_starpu_init switched its statistics on). */
double sp_mpi_bytes_sent(void);

#endif /* SP_MPI_H */
