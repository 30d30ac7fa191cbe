/*
 * trace_svg.c — a timeline as an SVG Gantt chart: workers as rows, time
 * across, tasks coloured by micro-batch and shaded by pass (F light, B mid,
 * W dark, L/U/E grey), idle time left blank — the picture of the GPipe
 * paper's figure 2, from a measured run. It draws what trace.c recorded; it
 * measures nothing itself.
 */
#include "atomic_file.h"
#include "trace_events.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int row_key(const sp_task_event *e) { return e->rank * STARPU_NMAXWORKERS + e->worker; }

/* Micro-batch m gets hue 360·m/M; F light, B (or the input half) full, W dark. */
static void task_colour(const sp_task_event *e, int M, char *out, size_t cap)
{
    if (e->microbatch < 0 || !strchr("FBW", e->pass)) {
        snprintf(out, cap, "#9e9e9e"); /* loss, optimizer, evaluation */
        return;
    }
    int hue = (int)(360.0 * e->microbatch / (M > 0 ? M : 1));
    int light = e->pass == SP_PASS_FORWARD ? 72 : e->pass == SP_PASS_BACKWARD ? 52 : 34;
    snprintf(out, cap, "hsl(%d,70%%,%d%%)", hue, light);
}

sp_status sp_trace_write_svg(sp_trainer_t *t, const char *path, long first_step, long last_step)
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
    /* one row per (rank, worker), keyed rank·STARPU_NMAXWORKERS + worker */
    int rows[SP_STATS_MAX], nrows = 0;
    double t_lo = INFINITY, t_hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (int r = 0; r < nrows; r++)
            found |= rows[r] == row_key(&ev[i]);
        if (!found && nrows < SP_STATS_MAX)
            rows[nrows++] = row_key(&ev[i]);
        t_lo = fmin(t_lo, ev[i].start_us);
        t_hi = fmax(t_hi, ev[i].end_us);
    }
    for (int a = 0; a < nrows; a++) /* rows in worker order */
        for (int b = a + 1; b < nrows; b++)
            if (rows[b] < rows[a]) {
                int x = rows[a];
                rows[a] = rows[b];
                rows[b] = x;
            }
    if (!n)
        t_lo = 0, t_hi = 1;
    const double left = 130, width = 1200, row_h = 28, top = 40;
    const double span = t_hi > t_lo ? t_hi - t_lo : 1;
    const double height = top + row_h * nrows + 50;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"10\">\n"
            "<title>starpipe: %s schedule, K=%d, M=%d, policy %s</title>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"10\" y=\"20\" font-size=\"13\">%s schedule, K=%d stages, M=%d micro-batches, "
            "policy %s: measured, %.1f ms</text>\n",
            left + width + 20, height, sp_schedule_name(t->schedule), t->K, t->M, t->policy_name,
            sp_schedule_name(t->schedule), t->K, t->M, t->policy_name, span / 1000.0);
    for (int r = 0; r < nrows; r++) {
        double y = top + r * row_h;
        fprintf(f, "<text x=\"10\" y=\"%.1f\">%s</text>\n", y + row_h * 0.6,
                sp_trace_worker_label(t, rows[r] / STARPU_NMAXWORKERS, rows[r] % STARPU_NMAXWORKERS));
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f4f4f4\"/>\n", left, y + 2,
                width, row_h - 4);
    }
    for (size_t i = 0; i < n; i++) {
        int r = 0;
        while (r < nrows && rows[r] != row_key(&ev[i]))
            r++;
        double x = left + (ev[i].start_us - t_lo) / span * width;
        double w = (ev[i].end_us - ev[i].start_us) / span * width;
        double y = top + r * row_h;
        char colour[32];
        task_colour(&ev[i], t->M, colour, sizeof(colour));
        fprintf(f,
                "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\" stroke=\"#333\" "
                "stroke-width=\"0.3\"><title>%s (step %ld): %.1f us</title></rect>\n",
                x, y + 3, w > 0.2 ? w : 0.2, row_h - 6, colour, ev[i].name, ev[i].step,
                ev[i].end_us - ev[i].start_us);
        if (w > 34)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\">%s</text>\n", x + 2, y + row_h * 0.6, ev[i].name);
    }
    double y = top + row_h * nrows + 20;
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">0 ms</text><text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.1f ms</text>\n",
            left, y, left + width, y, span / 1000.0);
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">colour: micro-batch; light F (forward), mid B (backward), dark W "
               "(weight gradient), grey L/U/E; blank: idle</text>\n",
            left, y + 16);
    fprintf(f, "</svg>\n");
    free(ev);
    return sp_atomic_file_commit(&out);
}
