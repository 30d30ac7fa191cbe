/*
 * test_partition.c — the balanced partitioner cuts where the cost is even,
 * and explicit cut points come back as stage starts.
 */
#include "starpipe.h"
#include "starpipe_models.h"
#include "test_util.h"

#include <string.h>

static sp_graph_t *mlp(int inputs, int width, int layers)
{
    sp_graph_t *g;
    int hidden[16];
    for (int i = 0; i < layers; i++)
        hidden[i] = width;
    REQUIRE(sp_graph_create(&g) == SP_OK, "create");
    REQUIRE(sp_model_mlp(g, inputs, hidden, layers, width, 0) == SP_OK, "%s", sp_error_message());
    return g;
}

static void expect_starts(const sp_graph_t *g, int k, const int *want, const char *what)
{
    int got[16];
    REQUIRE(sp_partition_balanced(g, k, got) == SP_OK, "%s: %s", what, sp_error_message());
    for (int i = 0; i < k; i++)
        CHECK(got[i] == want[i], "%s: stage %d starts at op %d, expected %d", what, i, got[i], want[i]);
}

int main(void)
{
    /* 32 → 4 × (512 × 512): fc1 is almost free (no input gradient), then four
     * equal layers: two per stage for K = 2, one per stage for K = 4 */
    sp_graph_t *g = mlp(32, 512, 4); /* ops: fc1 r fc2 r fc3 r fc4 r fc5 */
    REQUIRE(sp_graph_op_count(g) == 9, "op count %d", sp_graph_op_count(g));
    static const int k2[] = {0, 5}, k4[] = {0, 3, 5, 7};
    expect_starts(g, 2, k2, "narrow input, K=2");
    expect_starts(g, 4, k4, "narrow input, K=4");
    static const int k9[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    expect_starts(g, 9, k9, "one op per stage");
    sp_graph_destroy(g);

    /* 512 → 4 × 512: fc1 costs 2 GEMMs, the others 3; the best K=2 cut is
     * {fc1, fc2} (5) | {fc3, fc4} (6), not {fc1, fc2, fc3} (8) | {fc4} (3) */
    g = mlp(512, 512, 3); /* ops: fc1 r fc2 r fc3 r fc4 */
    static const int wide[] = {0, 4};
    expect_starts(g, 2, wide, "wide input, K=2");

    int starts[3];
    static const int cuts[] = {2, 5};
    REQUIRE(sp_partition_cuts(g, 3, cuts, starts) == SP_OK, "%s", sp_error_message());
    CHECK(starts[0] == 0 && starts[1] == 2 && starts[2] == 5, "explicit cuts: %d %d %d", starts[0],
          starts[1], starts[2]);
    CHECK(sp_partition_balanced(g, 8, starts) == SP_ERR_INVALID_ARG, "K=8 > 7 ops must fail");
    CHECK(strstr(sp_error_message(), "only 7 ops") != NULL, "message: %s", sp_error_message());
    sp_graph_destroy(g);
    return test_result("test_partition");
}
