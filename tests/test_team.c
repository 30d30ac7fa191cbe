/*
 * test_team.c — a stage task run by several cores (StarPU parallel tasks
 * under pheft or peager, sp_team in codelets/sp_codelets.h) computes the
 * same bits as one core.
 *
 * Every op whose table row sets .team runs here by teams of 1, 2 and 3
 * threads sharing one sp_team_sync, on shapes big enough to be cut into
 * tiles (linear: 6 x 700 -> 1100, two tiles of 560 and 540 columns), forward
 * and backward (both gradients, weights only, inputs only; zero-bubble's two
 * halves against the fused backward); the optimizers' ranged updates likewise; and the barrier keeps every rank in step over
 * many rounds, spinning or (behind a late rank) sleeping. test_equivalence runs whole trainings under pheft and peager.
 */
#include "sp_codelets.h"
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define ROWS 6
#define IN 700
#define OUT 1100

struct team_job {
    void (*fn)(const struct sp_team *team, void *ctx);
    void *ctx;
    struct sp_team team;
};

static void *team_thread(void *arg)
{
    struct team_job *j = arg;
    j->fn(&j->team, j->ctx);
    return NULL;
}

/* Runs fn on `size` threads as one team (rank 0 on this thread). */
static void run_team(int size, void (*fn)(const struct sp_team *, void *), void *ctx)
{
    struct sp_team_sync sync = {0};
    struct team_job jobs[8];
    pthread_t th[8];
    REQUIRE(size >= 1 && size <= 8, "team size %d", size);
    for (int r = 0; r < size; r++)
        jobs[r] = (struct team_job){fn, ctx, {.rank = r, .size = size, .sync = &sync}};
    for (int r = 1; r < size; r++)
        REQUIRE(pthread_create(&th[r], NULL, team_thread, &jobs[r]) == 0, "pthread_create");
    fn(&jobs[0].team, ctx);
    for (int r = 1; r < size; r++)
        pthread_join(th[r], NULL);
}

static void fill(float *v, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = test_uniform(&seed, -1.0f, 1.0f);
}

/* ---- ops ------------------------------------------------------------------ */

/* The tensors of one op call; every team starts from the same copies. */
struct op_case {
    const struct sp_op_info *info;
    struct sp_op_attr attr;
    int backward, want_dx, want_dw, dx_needed;
    long nx, ny, nw[SP_OP_MAX_PARAMS];
    float *x, *y, *dy, *dx, *w[SP_OP_MAX_PARAMS], *dw[SP_OP_MAX_PARAMS];
};

static void op_run(const struct sp_team *team, void *ctx)
{
    struct op_case *k = ctx;
    struct sp_op_call c = {.samples = ROWS, .attr = &k->attr, .team = *team};
    c.x_shape[0] = (sp_shape){1, {(int)(k->nx / ROWS)}};
    c.y_shape = (sp_shape){1, {(int)(k->ny / ROWS)}};
    c.x[0] = k->x;
    c.y = k->y;
    c.dy = k->dy;
    c.dx[0] = k->want_dx ? k->dx : NULL;
    c.dx_needed[0] = k->dx_needed;
    for (int i = 0; i < SP_OP_MAX_PARAMS; i++) {
        c.w[i] = k->w[i];
        c.dw[i] = k->want_dw ? k->dw[i] : NULL;
    }
    (k->backward ? k->info->backward_cpu : k->info->forward_cpu)(&c);
}

/* Everything the op writes, one after the other. */
static size_t op_outputs(const struct op_case *k, float *out)
{
    size_t n = 0;
    memcpy(out + n, k->y, sizeof(float) * k->ny), n += k->ny;
    memcpy(out + n, k->dx, sizeof(float) * k->nx), n += k->nx;
    for (int i = 0; i < SP_OP_MAX_PARAMS; i++)
        if (k->nw[i])
            memcpy(out + n, k->dw[i], sizeof(float) * k->nw[i]), n += k->nw[i];
    return n;
}

/* Runs the case from the same start with teams of 1, 2, 3; the outputs of
 * teams of 2 and 3 must be bit-identical to one core's. */
static void check_op(struct op_case *k, const char *what)
{
    const size_t cap = k->nx + k->ny + k->nw[0] + k->nw[1];
    float *start = malloc(sizeof(float) * cap), *ref = malloc(sizeof(float) * cap);
    float *got = malloc(sizeof(float) * cap);
    REQUIRE(start && ref && got, "out of memory");
    fill(k->y, k->ny, 11), fill(k->dx, k->nx, 12); /* accumulated into (+=) or overwritten */
    for (int i = 0; i < SP_OP_MAX_PARAMS; i++)
        if (k->nw[i])
            fill(k->dw[i], k->nw[i], 13 + i);
    op_outputs(k, start);
    for (int size = 1; size <= 3; size++) {
        size_t n = 0; /* back to the start */
        memcpy(k->y, start + n, sizeof(float) * k->ny), n += k->ny;
        memcpy(k->dx, start + n, sizeof(float) * k->nx), n += k->nx;
        for (int i = 0; i < SP_OP_MAX_PARAMS; i++)
            if (k->nw[i])
                memcpy(k->dw[i], start + n, sizeof(float) * k->nw[i]), n += k->nw[i];
        run_team(size, op_run, k);
        n = op_outputs(k, size == 1 ? ref : got);
        if (size == 1) {
            CHECK(memcmp(ref, start, sizeof(float) * n) != 0, "%s: one core changed nothing", what);
            continue;
        }
        size_t i = 0;
        while (i < n && !memcmp(&ref[i], &got[i], sizeof(float)))
            i++;
        CHECK(i == n, "%s: a team of %d differs from one core at output float %zu: %.9g vs %.9g", what, size, i,
              i < n ? ref[i] : 0.0f, i < n ? got[i] : 0.0f);
    }
    free(start), free(ref), free(got);
}

static void check_ops(void)
{
    static float x[ROWS * IN], y[ROWS * OUT], dy[ROWS * OUT], dx[ROWS * IN], w[OUT * IN], b[OUT], dw[OUT * IN],
        db[OUT];
    fill(x, ROWS * IN, 1), fill(dy, ROWS * OUT, 2), fill(w, (size_t)OUT * IN, 3), fill(b, OUT, 4);
    struct op_case lin = {.info = &sp_op_linear, .attr = {.features = OUT, .bias = 1}, .nx = ROWS * IN,
                          .ny = ROWS * OUT, .nw = {(long)OUT * IN, OUT}, .x = x, .y = y, .dy = dy, .dx = dx,
                          .w = {w, b}, .dw = {dw, db}};
    check_op(&lin, "linear forward");
    lin.backward = 1;
    static const struct {
        int dx, dw;
        const char *what;
    } parts[] = {{1, 1, "linear backward (input and weight gradients)"},
                 {0, 1, "linear backward (weight gradients only)"},
                 {1, 0, "linear backward (input gradients only)"}};
    for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++) {
        lin.want_dx = parts[i].dx, lin.want_dw = parts[i].dw, lin.dx_needed = parts[i].dx;
        check_op(&lin, parts[i].what);
    }

    /* zero-bubble: B's input half and W's weight half, as two calls of a
     * team of 2, give the fused backward's bits (the graph needs dx in all
     * three, so the tiles are the same) */
    static float fdx[ROWS * IN], fdw[OUT * IN], fdb[OUT];
    fill(dx, ROWS * IN, 31), fill(dw, (size_t)OUT * IN, 32), fill(db, OUT, 33);
    memcpy(fdx, dx, sizeof(dx)), memcpy(fdw, dw, sizeof(dw)), memcpy(fdb, db, sizeof(db));
    lin.dx_needed = 1, lin.want_dx = 1, lin.want_dw = 1;
    run_team(2, op_run, &lin); /* fused */
    float *fused[3] = {malloc(sizeof(dx)), malloc(sizeof(dw)), malloc(sizeof(db))};
    REQUIRE(fused[0] && fused[1] && fused[2], "out of memory");
    memcpy(fused[0], dx, sizeof(dx)), memcpy(fused[1], dw, sizeof(dw)), memcpy(fused[2], db, sizeof(db));
    memcpy(dx, fdx, sizeof(dx)), memcpy(dw, fdw, sizeof(dw)), memcpy(db, fdb, sizeof(db));
    lin.want_dw = 0;
    run_team(2, op_run, &lin); /* Bi */
    lin.want_dx = 0, lin.want_dw = 1;
    run_team(2, op_run, &lin); /* W */
    CHECK(!memcmp(fused[0], dx, sizeof(dx)) && !memcmp(fused[1], dw, sizeof(dw)) && !memcmp(fused[2], db, sizeof(db)),
          "linear backward: zero-bubble's two halves differ from the fused backward");
    for (int i = 0; i < 3; i++)
        free(fused[i]);

    /* element-wise: x and y both (ROWS, OUT) */
    static float ex[ROWS * OUT], edx[ROWS * OUT];
    fill(ex, ROWS * OUT, 5);
    int ops = 0;
    for (int i = 0; sp_op_table[i]; i++) {
        const struct sp_op_info *op = sp_op_table[i];
        if (!op->team || op == &sp_op_linear)
            continue;
        REQUIRE(op->n_inputs == 1 && !op->params && !op->aux && !op->work,
                "op %s splits its work by team but this test knows only element-wise ops: add its case", op->name);
        for (int bwd = 0; bwd < 2; bwd++) {
            struct op_case e = {.info = op, .backward = bwd, .want_dx = 1, .nx = ROWS * OUT, .ny = ROWS * OUT,
                                .x = ex, .y = y, .dy = dy, .dx = edx};
            char what[64];
            snprintf(what, sizeof(what), "%s %s", op->name, bwd ? "backward" : "forward");
            check_op(&e, what);
        }
        ops++;
    }
    CHECK(ops >= 1, "no element-wise op splits its work (relu should)");
}

/* ---- optimizers ------------------------------------------------------------ */

#define NP 5000

struct opt_case {
    int adamw;
    float *p, *state;
    const float *g[2];
    struct sp_opt_args a;
};

static void opt_run(const struct sp_team *team, void *ctx)
{
    struct opt_case *k = ctx;
    long lo, hi;
    sp_team_range(team, NP, &lo, &hi);
    (k->adamw ? adamw_update_cpu_part : sgd_update_cpu_part)(k->p, k->g, 2, k->state, NP, lo, hi, &k->a);
}

static void check_optimizers(void)
{
    static float g0[NP], g1[NP], p0[NP], s0[2 * NP], p[NP], s[2 * NP], pw[NP], sw[2 * NP];
    fill(g0, NP, 21), fill(g1, NP, 22), fill(p0, NP, 23), fill(s0, 2 * NP, 24);
    for (int i = NP; i < 2 * NP; i++)
        s0[i] = s0[i] * s0[i]; /* AdamW's second moments are not negative */
    for (int adamw = 0; adamw < 2; adamw++) {
        struct opt_case k = {.adamw = adamw, .p = p, .state = s, .g = {g0, g1}};
        k.a = (struct sp_opt_args){.type = adamw ? SP_OPTIMIZER_ADAMW : SP_OPTIMIZER_SGD, .lr = 0.01f,
                                   .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                   .weight_decay = 0.01f, .step = 3};
        /* one call over everything: the reference */
        memcpy(pw, p0, sizeof(p0)), memcpy(sw, s0, sizeof(s0));
        (adamw ? adamw_update_cpu : sgd_update_cpu)(pw, k.g, 2, sw, NP, &k.a);
        CHECK(memcmp(pw, p0, sizeof(p0)) != 0, "%s: the update changed nothing", adamw ? "adamw" : "sgd");
        for (int size = 1; size <= 3; size++) {
            memcpy(p, p0, sizeof(p0)), memcpy(s, s0, sizeof(s0));
            run_team(size, opt_run, &k);
            CHECK(!memcmp(p, pw, sizeof(p)) && !memcmp(s, sw, sizeof(float) * (adamw ? 2 : 1) * NP),
                  "%s: a team of %d updates other bits than one call", adamw ? "adamw" : "sgd", size);
        }
    }
}

/* ---- the barrier ------------------------------------------------------------ */

#define ROUNDS 3000
static int arrived[ROUNDS];

static void barrier_run(const struct sp_team *team, void *ctx)
{
    int *bad = ctx;
    for (int i = 0; i < ROUNDS; i++) {
        __atomic_add_fetch(&arrived[i], 1, __ATOMIC_RELAXED);
        if (team->rank == i % team->size && i % 500 == 0) {
            struct timespec ts = {0, 1000000}; /* one rank 1 ms late: the others spin, then sleep */
            nanosleep(&ts, NULL);
        }
        sp_team_barrier(team);
        if (__atomic_load_n(&arrived[i], __ATOMIC_RELAXED) != team->size)
            __atomic_add_fetch(bad, 1, __ATOMIC_RELAXED);
        sp_team_barrier(team); /* nobody starts round i+1's check before all read round i's */
    }
}

static void check_barrier(void)
{
    for (int size = 2; size <= 3; size++) {
        int bad = 0;
        memset(arrived, 0, sizeof(arrived));
        run_team(size, barrier_run, &bad);
        CHECK(bad == 0, "team of %d: %d ranks left a barrier before everyone had arrived", size, bad);
    }
}

int main(void)
{
    check_ops();
    check_optimizers();
    check_barrier();
    return test_result("test_team");
}
