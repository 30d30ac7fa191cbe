/*
 * trace_events.h — what the timeline pictures (trace_chrome.c, trace_svg.c)
 * take from the recording (trace.c): the events of some steps and the names
 * of the workers. Not installed.
 */
#ifndef SP_TRACE_EVENTS_H
#define SP_TRACE_EVENTS_H

#include "engine.h"

/* Every rank's events of steps [first, last] (collective under MPI), a copy
 * the caller frees, on the rank that writes the pictures (rank 0). *out is
 * NULL on the other ranks and on failure. */
sp_status sp_trace_events_of_steps(sp_trainer_t *t, long first, long last, sp_task_event **out, size_t *n);
/* "CPU 0", or "rank 1 CPU 0" under MPI. */
const char *sp_trace_worker_label(const sp_trainer_t *t, int rank, int worker);

#endif /* SP_TRACE_EVENTS_H */
