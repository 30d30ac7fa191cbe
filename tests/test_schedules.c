/*
 * test_schedules.c — schedules change the order and the memory, never the
 * numbers.
 *
 * - gpipe, 1f1b, zb and interleaved, each with and without re-materialisation,
 *   pinned and free, under several policies, give weights bit-identical to an
 *   unpipelined run with the same M (zb's split of the backward into input
 *   and weight halves computes the same gradients as the fused backward).
 * - 1F1B's memory bound: the engine gives stage s K − s stash buffers and the
 *   measured timeline never holds more than K − s micro-batches stashed there;
 *   GPipe gets M.
 * - Profiling records exactly one event per task.
 * - Placement maps place stages; bad maps and bad interleaving are refused.
 */
#include "test_common.h"

#define STEPS 3
#define BATCH 48
#define M 6
#define K 4

static sp_train_opts base(void)
{
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = BATCH;
    o.microbatches = M;
    o.stages = K;
    return o;
}

static void identical(const struct run_result *ref, const struct run_result *r, size_t n, const char *what)
{
    long i = first_difference(ref->params, r->params, n);
    CHECK(i < 0, "%s: weights differ from K=1 at float %ld: %.9g vs %.9g", what, i, i >= 0 ? ref->params[i] : 0.0f,
          i >= 0 ? r->params[i] : 0.0f);
}

static void all_schedules(sp_graph_t *g)
{
    const size_t n = sp_graph_param_count(g);
    sp_train_opts o = base();
    o.stages = 1;
    struct run_result ref = test_train(g, &o, STEPS);
    static const sp_schedule schedules[] = {SP_SCHEDULE_GPIPE, SP_SCHEDULE_1F1B, SP_SCHEDULE_ZB,
                                            SP_SCHEDULE_INTERLEAVED};
    static const char *policies[] = {"lws", "prio", "dmda"};
    int runs = 0;
    for (int si = 0; si < 4; si++)
        for (int rc = 0; rc < 2; rc++)
            for (int pl = 0; pl < 2; pl++)
                for (int p = 0; p < 3; p++) {
                    if (schedules[si] == SP_SCHEDULE_INTERLEAVED && pl)
                        continue; /* interleaving is a pinned placement */
                    o = base();
                    o.schedule = schedules[si];
                    o.chunks_per_worker = schedules[si] == SP_SCHEDULE_INTERLEAVED ? 2 : 1;
                    o.recompute = rc;
                    o.placement = pl ? SP_PLACEMENT_FREE : SP_PLACEMENT_PINNED;
                    o.policy = policies[p];
                    struct run_result r = test_train(g, &o, STEPS);
                    char what[128];
                    snprintf(what, sizeof(what), "%s%s %s %s", sp_schedule_name(o.schedule),
                             rc ? "+recompute" : "", pl ? "free" : "pinned", policies[p]);
                    identical(&ref, &r, n, what);
                    free(r.params);
                    runs++;
                }
    printf("%d runs over 4 schedules, recompute, placements and policies: bit-identical to K=1\n", runs);
    free(ref.params);
}

static size_t tasks_per_step(sp_schedule s)
{
    /* F and B per (stage, micro-batch), W too under zb, L per micro-batch,
     * U per stage that has parameters (all of this model's stages do at K=4) */
    return (size_t)K * M * (s == SP_SCHEDULE_ZB ? 3 : 2) + M + K;
}

static void memory_and_events(sp_graph_t *g)
{
    static const sp_schedule schedules[] = {SP_SCHEDULE_GPIPE, SP_SCHEDULE_1F1B, SP_SCHEDULE_ZB};
    sp_synthetic d;
    REQUIRE(sp_synthetic_create(&d, BATCH * STEPS, TM_INPUTS, TM_CLASSES, 5) == SP_OK, "data");
    static const int cuts[] = {2, 4, 6}; /* every stage holds a linear layer: every stage has a U task */
    for (int si = 0; si < 3; si++) {
        sp_train_opts o = base();
        o.schedule = schedules[si];
        o.profile = 1;
        o.cuts = cuts;
        sp_trainer_t *t;
        REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "%s", sp_error_message());
        for (int i = 0; i < STEPS; i++)
            REQUIRE(sp_trainer_step(t, d.x + (size_t)i * BATCH * TM_INPUTS, d.label + (size_t)i * BATCH, NULL) == SP_OK,
                    "%s", sp_error_message());
        const sp_task_event *ev;
        size_t n;
        REQUIRE(sp_trainer_events(t, &ev, &n) == SP_OK, "%s", sp_error_message());
        CHECK(n == STEPS * tasks_per_step(o.schedule), "%s: %zu events for %d steps, expected %zu",
              sp_schedule_name(o.schedule), n, STEPS, STEPS * tasks_per_step(o.schedule));
        int bad_times = 0;
        for (size_t i = 0; i < n; i++)
            if (!(ev[i].end_us >= ev[i].start_us && ev[i].start_us >= 0 && ev[i].worker >= 0) && bad_times++ < 3)
                fprintf(stderr, "event %s: worker %d, %.3f..%.3f us\n", ev[i].name, ev[i].worker, ev[i].start_us,
                        ev[i].end_us);
        CHECK(bad_times == 0, "%d events with impossible times or workers", bad_times);
        sp_run_stats st;
        REQUIRE(sp_trainer_stats(t, &st) == SP_OK, "%s", sp_error_message());
        CHECK(st.steps == STEPS, "stats over %ld steps", st.steps);
        for (int s = 0; s < K; s++) {
            int want = o.schedule == SP_SCHEDULE_GPIPE ? M : K - s;
            CHECK(st.stash_buffers[s] == want, "%s stage %d: %d stash buffers, expected %d",
                  sp_schedule_name(o.schedule), s, st.stash_buffers[s], want);
            CHECK(st.peak_stash[s] >= 1 && st.peak_stash[s] <= want, "%s stage %d: %d micro-batches stashed at once (bound %d)",
                  sp_schedule_name(o.schedule), s, st.peak_stash[s], want);
        }
        printf("%-5s peak stashes per stage: %d %d %d %d; bubble %.2f (ideal %.2f)\n", sp_schedule_name(o.schedule),
               st.peak_stash[0], st.peak_stash[1], st.peak_stash[2], st.peak_stash[3], st.bubble_mean, st.bubble_ideal);
        CHECK(st.bubble_ideal > 0.33 && st.bubble_ideal < 0.34, "ideal bubble (K-1)/(M+K-1) = 3/9, got %g",
              st.bubble_ideal);
        sp_trainer_destroy(t);
    }
    sp_synthetic_destroy(&d);
}

static void placements(sp_graph_t *g)
{
    const size_t n = sp_graph_param_count(g);
    sp_train_opts o = base();
    o.stages = 1;
    struct run_result ref = test_train(g, &o, STEPS);
    o = base();
    o.placement = SP_PLACEMENT_MAP;
    o.placement_map = "cpu0,cpu,cpu1,cpu0";
    o.ncpus = 2;
    struct run_result r = test_train(g, &o, STEPS);
    identical(&ref, &r, n, "map cpu0,cpu,cpu1,cpu0");
    free(r.params);
    o.placement = SP_PLACEMENT_DEVICE;
    r = test_train(g, &o, STEPS);
    identical(&ref, &r, n, "device placement");
    free(r.params);
    free(ref.params);

    struct {
        const char *map;
        sp_status want;
        const char *fragment;
    } bad[] = {
        {"cpu0,cpu0,cpu0", SP_ERR_INVALID_ARG, "3 entries for 4 stages"},
        {"cpu0,gpu1,cpu0,cpu0", SP_ERR_INVALID_ARG, "stage 1: 'gpu1' is not"},
        {"cpu0,cpu7,cpu0,cpu0", SP_ERR_NODEV, "stage 1: 'cpu7' but there are 2 CPU workers"},
        {"cpu0,cpu0,cpu0,cuda3", SP_ERR_NODEV, "stage 3: no CUDA worker for 'cuda3'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        o.placement = SP_PLACEMENT_MAP;
        o.placement_map = bad[i].map;
        sp_trainer_t *t = NULL;
        sp_status s = sp_trainer_create(g, &o, &t);
        CHECK(s == bad[i].want && strstr(sp_error_message(), bad[i].fragment), "map %s: %s (%s)", bad[i].map,
              sp_strerror(s), sp_error_message());
        CHECK(t == NULL, "no trainer after a bad map");
    }

    o = base();
    o.chunks_per_worker = 2;
    sp_trainer_t *t = NULL;
    CHECK(sp_trainer_create(g, &o, &t) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "needs the interleaved"),
          "chunks without interleaving: %s", sp_error_message());
    o.schedule = SP_SCHEDULE_INTERLEAVED;
    o.chunks_per_worker = 3;
    CHECK(sp_trainer_create(g, &o, &t) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "multiple of chunks"),
          "4 stages in chunks of 3: %s", sp_error_message());
    o.chunks_per_worker = 2;
    o.placement = SP_PLACEMENT_FREE;
    CHECK(sp_trainer_create(g, &o, &t) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "pinned"),
          "interleaved free: %s", sp_error_message());
    sp_schedule sc;
    CHECK(sp_schedule_parse("pipedream", &sc) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "'pipedream'"),
          "unknown schedule name");
}

int main(void)
{
    sp_graph_t *g = test_model();
    all_schedules(g);
    memory_and_events(g);
    placements(g);
    sp_graph_destroy(g);
    return test_result("test_schedules");
}
