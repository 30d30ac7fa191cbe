/*
 * test_few_microbatches.c — fewer micro-batches than stages (M < K), which
 * deadlocks some hand-scheduled pipeline engines, must just train: the run
 * finishes (CTest's timeout catches a hang), the loss falls, and the weights
 * are bit-identical to the unpipelined run with the same M.
 */
#include "test_common.h"

#define STEPS 6

int main(void)
{
    sp_graph_t *g = test_model();
    const size_t n = sp_graph_param_count(g);
    static const int ms[] = {1, 2, 3};
    for (size_t i = 0; i < sizeof(ms) / sizeof(*ms); i++) {
        sp_train_opts o;
        sp_train_opts_init(&o);
        o.batch = 24;
        o.microbatches = ms[i];
        struct run_result ref = test_train(g, &o, STEPS);
        for (int free_placement = 0; free_placement < 2; free_placement++) {
            o.stages = 4;
            o.placement = free_placement ? SP_PLACEMENT_FREE : SP_PLACEMENT_PINNED;
            struct run_result r = test_train(g, &o, STEPS);
            CHECK(r.last_loss < r.first_loss, "M=%d K=4: loss did not fall (%g → %g)", ms[i],
                  r.first_loss, r.last_loss);
            long d = first_difference(ref.params, r.params, n);
            CHECK(d < 0, "M=%d K=4 %s: weights differ from K=1 at float %ld", ms[i],
                  free_placement ? "free" : "pinned", d);
            printf("M=%d K=4 %s: loss %.4f → %.4f, weights identical to K=1\n", ms[i],
                   free_placement ? "free" : "pinned", r.first_loss, r.last_loss);
            free(r.params);
        }
        free(ref.params);
    }
    sp_graph_destroy(g);
    return test_result("test_few_microbatches");
}
