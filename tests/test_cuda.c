/*
 * test_cuda.c — the CUDA kernels against the CPU ones, and pipelines on the
 * GPU. Exits 77 (skipped) where StarPU has no CUDA worker.
 *
 * 1. Every op of the op table (each test instance its row declares, at the
 *    row's CUDA shapes), every loss and both optimizers run as a StarPU task
 *    once on a CPU worker and once on a CUDA worker, on the same random
 *    inputs; outputs agree within the bound the op's row states, relative to
 *    the largest magnitude of the CPU result (fp32, no TF32). The optimizers
 *    (two gradient blocks, as a tied parameter has) within 1e-6: nvcc
 *    contracts a·b + c into FMAs.
 * 2. K = 1, 2, 4 stages pinned to the GPU and the policies eager, lws, dmda
 *    give bit-identical weights (fixed M); GPU weights agree with CPU weights
 *    after 3 SGD steps to 1e-4 relative (‖a − b‖ / ‖b‖), and so does a mixed
 *    CPU + GPU pipeline.
 */
#include "sp_codelets.h"
#include "test_common.h"

#include <math.h>

/* ---- kernels as tasks ---------------------------------------------------- */

/* One op instance packed into one buffer: x… | w… | dy | y | aux | work | dx… | dw…
 * (offsets in floats), so the task has a single RW handle. */
enum { P_X, P_W = P_X + SP_OP_MAX_INPUTS, P_DY = P_W + SP_OP_MAX_PARAMS, P_Y, P_AUX, P_WORK, P_DX,
       P_DW = P_DX + SP_OP_MAX_INPUTS, P_END = P_DW + SP_OP_MAX_PARAMS };

struct op_case_args {
    const struct sp_op_info *info;
    const struct sp_op_test *t;
    long samples;
    sp_shape x[SP_OP_MAX_INPUTS], y;
    int n_params;
    long off[P_END + 1], len[P_END];
};

static void op_task(void *buffers[], void *cl_arg, int cuda)
{
    const struct op_case_args *a = cl_arg;
    float *base = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
#define AT(i) (a->len[i] ? base + a->off[i] : NULL)
    struct sp_op_call c = {.samples = a->samples, .y_shape = a->y, .attr = &a->t->attr, .dy = AT(P_DY), .y = AT(P_Y),
                           .aux = AT(P_AUX), .work = AT(P_WORK), .seed = 5, .step = 2, .sample0 = 3, .op_id = 1,
                           .train = 1};
    for (int k = 0; k < a->info->n_inputs; k++) {
        c.x_shape[k] = a->x[k];
        c.x[k] = AT(P_X + k);
        c.dx[k] = AT(P_DX + k);
    }
    for (int k = 0; k < a->n_params; k++) {
        c.w[k] = AT(P_W + k);
        c.dw[k] = AT(P_DW + k);
    }
#undef AT
    (cuda ? a->info->forward_cuda : a->info->forward_cpu)(&c);
    (cuda ? a->info->backward_cuda : a->info->backward_cpu)(&c);
}
static void op_cpu(void *b[], void *arg) { op_task(b, arg, 0); }
static void op_cuda(void *b[], void *arg) { op_task(b, arg, 1); }

static struct starpu_codelet op_cl = {
    .cpu_funcs = {op_cpu},
    .cuda_funcs = {op_cuda},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 1,
    .modes = {STARPU_RW},
    .name = "test_op",
};

static int cpu_worker, cuda_worker;
static uint64_t rng = 42;

static void fill(float *v, long n, float lo, float hi)
{
    for (long i = 0; i < n; i++)
        v[i] = test_uniform(&rng, lo, hi);
}

/* Runs the codelet on one worker over host arrays (copied in and out by StarPU). */
static void run_on(struct starpu_codelet *cl, int worker, void *arg, size_t arg_size, float **bufs, const long *sizes,
                   int n)
{
    starpu_data_handle_t h[STARPU_NMAXBUFS];
    for (int i = 0; i < n; i++)
        starpu_vector_data_register(&h[i], STARPU_MAIN_RAM, (uintptr_t)bufs[i], (uint32_t)sizes[i], sizeof(float));
    struct starpu_task *task = starpu_task_create();
    task->cl = cl;
    task->nbuffers = n;
    for (int i = 0; i < n; i++) {
        STARPU_TASK_SET_HANDLE(task, h[i], i);
        if (cl->nbuffers == STARPU_VARIABLE_NBUFFERS)
            STARPU_TASK_SET_MODE(task, (i < 2 ? STARPU_RW : STARPU_R), i);
    }
    task->cl_arg = arg;
    task->cl_arg_size = arg_size;
    task->execute_on_a_specific_worker = 1;
    task->workerid = (unsigned)worker;
    task->synchronous = 1;
    REQUIRE(starpu_task_submit(task) == 0, "submitting the test task");
    for (int i = 0; i < n; i++)
        starpu_data_unregister(h[i]); /* brings the results back to the host arrays */
}

static double rel_error(const float *ref, const float *got, long n)
{
    double worst = 0.0, scale = 1e-30;
    for (long i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)ref[i] - got[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    return worst / scale;
}

static void check_op(const struct sp_op_info *info, const struct sp_op_test *t)
{
    struct op_case_args a = {.info = info, .t = t, .samples = 5};
    const sp_shape *xs = t->cuda_x[0].ndim ? t->cuda_x : t->x;
    char why[160];
    for (int k = 0; k < info->n_inputs; k++)
        a.x[k] = xs[k];
    a.y = xs[0];
    REQUIRE(!info->shape || info->shape(a.x, &t->attr, &a.y, why, sizeof(why)), "%s: %s", info->name, why);
    struct sp_param_decl decl[SP_OP_MAX_PARAMS];
    a.n_params = info->params ? info->params(a.x, &t->attr, decl) : 0;
    for (int k = 0; k < info->n_inputs; k++) {
        a.len[P_X + k] = a.samples * sp_shape_numel(&a.x[k]);
        a.len[P_DX + k] = info->input_dtype[k] == SP_DTYPE_F32 ? a.len[P_X + k] : 0;
    }
    for (int k = 0; k < a.n_params; k++) {
        long n = 1;
        for (int d = 0; d < decl[k].ndim; d++)
            n *= decl[k].shape[d];
        a.len[P_W + k] = a.len[P_DW + k] = n;
    }
    a.len[P_DY] = a.len[P_Y] = a.samples * sp_shape_numel(&a.y);
    a.len[P_AUX] = a.samples * (info->aux ? info->aux(a.x, &t->attr) : 0);
    a.len[P_WORK] = a.samples * (info->work ? info->work(a.x, &t->attr) : 0);
    for (int i = 0; i < P_END; i++)
        a.off[i + 1] = a.off[i] + a.len[i];
    const long total = a.off[P_END];
    float *init = calloc((size_t)total, sizeof(float)), *out[2];
    for (int k = 0; k < info->n_inputs; k++) {
        float *x = init + a.off[P_X + k];
        if (info->input_dtype[k] == SP_DTYPE_I32)
            for (long e = 0; e < a.len[P_X + k]; e++)
                ((int32_t *)x)[e] = (int32_t)(sp_splitmix64(&rng) % (uint64_t)t->attr.vocab);
        else
            fill(x, a.len[P_X + k], t->lo, t->hi);
    }
    for (int k = 0; k < a.n_params; k++)
        fill(init + a.off[P_W + k], a.len[P_W + k], -0.5f, 0.5f);
    fill(init + a.off[P_DY], a.len[P_DY], -1.0f, 1.0f);
    for (int dev = 0; dev < 2; dev++) {
        out[dev] = malloc(sizeof(float) * (size_t)total);
        memcpy(out[dev], init, sizeof(float) * (size_t)total);
        run_on(&op_cl, dev ? cuda_worker : cpu_worker, &a, sizeof(a), &out[dev], &total, 1);
    }
    static const struct {
        int part;
        const char *name;
    } parts[] = {{P_Y, "y"}, {P_AUX, "aux"}, {P_DX, "dx"}, {P_DX + 1, "dx[1]"}, {P_DW, "dw"}, {P_DW + 1, "dw[1]"}};
    for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++) {
        const int p = parts[i].part;
        if (!a.len[p])
            continue;
        double e = rel_error(out[0] + a.off[p], out[1] + a.off[p], a.len[p]);
        CHECK(e <= t->cuda_bound, "%s %s: CUDA against CPU %.3g, bound %.0e", info->name, parts[i].name, e,
              t->cuda_bound);
        printf("  %-20s %-5s CUDA vs CPU %.2e (bound %.0e)\n", info->name, parts[i].name, e, t->cuda_bound);
    }
    free(init), free(out[0]), free(out[1]);
}

/* buffers: pred R, target R, dpred W, acc RW (2 doubles as 4 floats), work SCRATCH */
static void loss_task(void *buffers[], void *cl_arg, int cuda)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call c = {.rows = a->rows, .cols = a->cols,
                             .pred = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]),
                             .target = (const void *)STARPU_VECTOR_GET_PTR(buffers[1]),
                             .dpred = (float *)STARPU_VECTOR_GET_PTR(buffers[2]), .scale = a->scale};
    double *acc = (double *)STARPU_VECTOR_GET_PTR(buffers[3]);
    if (cuda) {
        a->loss->loss_cuda(&c, acc, (double *)STARPU_VECTOR_GET_PTR(buffers[4]), 1, 1);
    } else {
        long correct = 0;
        c.correct = &correct;
        acc[0] = a->loss->loss_cpu(&c);
        acc[1] = (double)correct;
    }
}
static void loss_cpu_fn(void *b[], void *arg) { loss_task(b, arg, 0); }
static void loss_cuda_fn(void *b[], void *arg) { loss_task(b, arg, 1); }

static struct starpu_codelet loss_cl = {
    .cpu_funcs = {loss_cpu_fn},
    .cuda_funcs = {loss_cuda_fn},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 5,
    .modes = {STARPU_R, STARPU_R, STARPU_W, STARPU_RW, STARPU_SCRATCH},
    .name = "test_loss",
};

static void check_loss(const struct sp_op_info *info, const struct sp_op_test *t)
{
    const sp_shape *x = t->cuda_x[0].ndim ? &t->cuda_x[0] : &t->x[0];
    const long rows = sp_shape_rows(x, 29);
    const int C = sp_shape_last(x);
    float *pred = malloc(sizeof(float) * rows * C), *tgt = malloc(sizeof(float) * rows * C);
    fill(pred, rows * C, -3.0f, 3.0f);
    fill(tgt, rows * C, -1.0f, 1.0f);
    if (!info->target_per_element)
        for (long r = 0; r < rows; r++)
            ((int32_t *)tgt)[r] = (int32_t)(rng % C);
    struct sp_loss_args a = {.loss = info, .rows = rows, .cols = C,
                             .scale = info->target_per_element ? 1.0 / (rows * C) : 1.0 / rows, .first = 1};
    float *dpred[2], *acc[2];
    for (int dev = 0; dev < 2; dev++) {
        dpred[dev] = calloc((size_t)(rows * C), sizeof(float));
        acc[dev] = calloc(4, sizeof(float)); /* two doubles */
        float *bufs[5] = {pred, tgt, dpred[dev], acc[dev], NULL};
        const long sizes[5] = {rows * C, rows * C, rows * C, 4, 4 * rows};
        /* the scratch has no home: register it without one */
        starpu_data_handle_t h[5];
        for (int i = 0; i < 4; i++)
            starpu_vector_data_register(&h[i], STARPU_MAIN_RAM, (uintptr_t)bufs[i], (uint32_t)sizes[i], sizeof(float));
        starpu_vector_data_register(&h[4], -1, 0, (uint32_t)(2 * rows), sizeof(double));
        struct starpu_task *task = starpu_task_create();
        task->cl = &loss_cl;
        for (int i = 0; i < 5; i++)
            task->handles[i] = h[i];
        task->cl_arg = &a;
        task->cl_arg_size = sizeof(a);
        task->execute_on_a_specific_worker = 1;
        task->workerid = (unsigned)(dev ? cuda_worker : cpu_worker);
        task->synchronous = 1;
        REQUIRE(starpu_task_submit(task) == 0, "submitting the loss task");
        for (int i = 0; i < 5; i++)
            starpu_data_unregister(h[i]);
    }
    double e = rel_error(dpred[0], dpred[1], rows * C);
    CHECK(e <= t->cuda_bound, "%s dpred: CUDA against CPU %.3g", info->name, e);
    double l0 = ((double *)acc[0])[0], l1 = ((double *)acc[1])[0];
    CHECK(fabs(l0 - l1) <= t->cuda_bound * fabs(l0), "%s loss: CPU %.12g, CUDA %.12g", info->name, l0, l1);
    if (info->counts_correct)
        CHECK(((double *)acc[0])[1] == ((double *)acc[1])[1], "%s correct: CPU %g, CUDA %g", info->name,
              ((double *)acc[0])[1], ((double *)acc[1])[1]);
    printf("  %-20s dpred CUDA vs CPU %.2e, loss %.12g vs %.12g\n", info->name, e, l0, l1);
    for (int dev = 0; dev < 2; dev++)
        free(dpred[dev]), free(acc[dev]);
    free(pred), free(tgt);
}

/* buffers: p RW, state RW, gradients R (two: a shared parameter's uses) */
static void opt_task(void *buffers[], void *cl_arg, int cuda)
{
    const struct sp_opt_args *a = cl_arg;
    float *p = (float *)STARPU_VECTOR_GET_PTR(buffers[0]), *st = (float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    const float *g[2] = {(const float *)STARPU_VECTOR_GET_PTR(buffers[2]),
                         (const float *)STARPU_VECTOR_GET_PTR(buffers[3])};
    long n = (long)STARPU_VECTOR_GET_NX(buffers[0]);
    if (a->type == SP_OPTIMIZER_ADAMW)
        (cuda ? SP_CUDA(adamw_update_cuda) : adamw_update_cpu)(p, g, 2, st, n, a);
    else
        (cuda ? SP_CUDA(sgd_update_cuda) : sgd_update_cpu)(p, g, 2, st, n, a);
}
static void opt_cpu_fn(void *b[], void *arg) { opt_task(b, arg, 0); }
static void opt_cuda_fn(void *b[], void *arg) { opt_task(b, arg, 1); }

static struct starpu_codelet opt_cl = {
    .cpu_funcs = {opt_cpu_fn},
    .cuda_funcs = {opt_cuda_fn},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .name = "test_optimizer",
};

static void check_optimizer(sp_optimizer_type type)
{
    const long n = 1000;
    float *res[2];
    struct sp_opt_args a = {.type = type, .lr = 0.01f, .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f,
                            .eps = 1e-8f, .weight_decay = 0.05f, .step = 3};
    float *p0 = malloc(sizeof(float) * n), *g0 = malloc(sizeof(float) * 2 * n), *s0 = malloc(sizeof(float) * 2 * n);
    fill(p0, n, -1, 1), fill(g0, 2 * n, -1, 1), fill(s0, 2 * n, 0, 0.1f);
    for (int dev = 0; dev < 2; dev++) {
        float *p = malloc(sizeof(float) * n), *s = malloc(sizeof(float) * 2 * n);
        memcpy(p, p0, sizeof(float) * n), memcpy(s, s0, sizeof(float) * 2 * n);
        float *bufs[4] = {p, s, g0, g0 + n};
        const long sizes[4] = {n, type == SP_OPTIMIZER_ADAMW ? 2 * n : n, n, n};
        run_on(&opt_cl, dev ? cuda_worker : cpu_worker, &a, sizeof(a), bufs, sizes, 4);
        res[dev] = p;
        free(s);
    }
    double e = rel_error(res[0], res[1], n);
    CHECK(e <= 1e-6, "%s: CUDA against CPU %.3g", sp_optimizer_name(type), e);
    printf("  %-20s p     CUDA vs CPU %.2e\n", sp_optimizer_name(type), e);
    free(res[0]), free(res[1]), free(p0), free(g0), free(s0);
}

static void kernels(void)
{
    if (!sp_op_linear.forward_cuda) {
        printf("starpipe was built without CUDA: skipped\n");
        exit(77);
    }
    REQUIRE(starpu_init(NULL) == 0, "starpu_init");
    int ids[STARPU_NMAXWORKERS];
    if (starpu_worker_get_ids_by_type(STARPU_CUDA_WORKER, ids, STARPU_NMAXWORKERS) < 1) {
        starpu_shutdown();
        printf("no CUDA worker: skipped\n");
        exit(77);
    }
    cuda_worker = ids[0];
    REQUIRE(starpu_worker_get_ids_by_type(STARPU_CPU_WORKER, ids, STARPU_NMAXWORKERS) >= 1, "a CPU worker");
    cpu_worker = ids[0];
    sp_codelets_init();
    for (int i = 0; sp_op_table[i]; i++) {
        const struct sp_op_info *info = sp_op_table[i];
        CHECK(info->forward_cuda || info->loss_cuda, "op %s has no CUDA kernel", info->name);
        for (int k = 0; k < SP_OP_MAX_TESTS; k++)
            if (info->test[k].x[0].ndim)
                (info->loss_cpu ? check_loss : check_op)(info, &info->test[k]);
    }
    check_optimizer(SP_OPTIMIZER_SGD);
    check_optimizer(SP_OPTIMIZER_ADAMW);
    sp_codelets_shutdown();
    starpu_shutdown();
}

/* ---- pipelines on the GPU --------------------------------------------------- */

static double rel_norm(const float *a, const float *b, size_t n)
{
    double d = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d / s);
}

static void pipelines(void)
{
    sp_graph_t *g = test_model();
    const size_t n = sp_graph_param_count(g);
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = 64;
    o.microbatches = 4;
    o.device = SP_DEVICE_CUDA;
    struct run_result ref = test_train(g, &o, 3);
    static const char *policies[] = {"eager", "lws", "dmda"};
    static const int ks[] = {1, 2, 4};
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 3; k++) {
            o.policy = policies[p];
            o.stages = ks[k];
            struct run_result r = test_train(g, &o, 3);
            long i = first_difference(ref.params, r.params, n);
            CHECK(i < 0, "GPU K=%d %s: weights differ from GPU K=1 at float %ld", ks[k], policies[p], i);
            free(r.params);
        }
    printf("GPU: K = 1, 2, 4 under eager, lws, dmda: bit-identical\n");

    sp_train_opts_init(&o);
    o.batch = 64;
    o.microbatches = 4;
    o.stages = 4;
    o.ncpus = 2;
    struct run_result cpu = test_train(g, &o, 3);
    double e = rel_norm(ref.params, cpu.params, n);
    CHECK(e <= 1e-4, "GPU against CPU weights after 3 steps: %.3g", e);
    o.placement = SP_PLACEMENT_MAP;
    o.placement_map = "cpu0,cuda0,cpu1,cuda0";
    struct run_result mixed = test_train(g, &o, 3);
    double em = rel_norm(mixed.params, cpu.params, n);
    CHECK(em <= 1e-4, "mixed CPU+GPU against CPU weights: %.3g", em);
    printf("GPU vs CPU weights %.2e, mixed CPU+GPU vs CPU %.2e (bound 1e-4)\n", e, em);
    free(ref.params), free(cpu.params), free(mixed.params);
    sp_graph_destroy(g);
}

int main(void)
{
    kernels();
    pipelines();
    return test_result("test_cuda");
}
