/*
 * trace_chrome.c — a timeline as a Chrome trace JSON (Perfetto,
 * chrome://tracing): one process per rank, one track per worker, one slice
 * per task. It draws what trace.c recorded; it measures nothing itself.
 */
#include "atomic_file.h"
#include "trace_events.h"

#include <stdio.h>
#include <stdlib.h>

sp_status sp_trace_write_chrome(sp_trainer_t *t, const char *path, long first_step, long last_step)
{
    sp_task_event *ev;
    size_t n;
    sp_status s = sp_trace_events_of_steps(t, first_step, last_step, &ev, &n);
    if (!ev) /* an error, or not the rank that writes */
        return s;
    sp_atomic_file out;
    if ((s = sp_atomic_file_open(&out, path)) != SP_OK) {
        free(ev);
        return s;
    }
    FILE *f = out.f;
    /* one process per rank (pid), one track per worker (tid) */
    fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
    const unsigned nw = starpu_worker_get_count();
    for (int r = 0; r < (t->mpi ? t->nranks : 1); r++) {
        fprintf(f, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"args\": {\"name\": \"rank %d\"}},\n", r, r);
        for (unsigned w = 0; w < nw; w++)
            fprintf(f, "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": %u, \"args\": {\"name\": \"%s\"}},\n",
                    r, w, sp_trace_worker_label(t, r, (int)w));
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f,
                "{\"name\": \"%s\", \"cat\": \"%c\", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, "
                "\"dur\": %.3f, \"args\": {\"stage\": %d, \"microbatch\": %d, \"step\": %ld, \"team\": %d, "
                "\"team_rank\": %d}}%s\n",
                ev[i].name, ev[i].pass, ev[i].rank, ev[i].worker, ev[i].start_us, ev[i].end_us - ev[i].start_us,
                ev[i].stage, ev[i].microbatch, ev[i].step, ev[i].team, ev[i].team_rank, i + 1 < n ? "," : "");
    fprintf(f, "]}\n");
    free(ev);
    return sp_atomic_file_commit(&out);
}
