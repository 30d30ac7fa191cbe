/*
 * engine.h — the trainer's private state, shared by the files that build and
 * run it: trainer.c (life cycle, step, evaluate), options.c, placement.c,
 * data.c (StarPU registration), params.c (parameter access), ranks.c (MPI),
 * plan.c (stage layouts), schedule.c (the schedules and task submission),
 * trace.c (measured timelines and their figures; trace_chrome.c and
 * trace_svg.c draw them). Not installed.
 */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include "internal.h"

#include <pthread.h>

#define SP_TASK_NAME_MAX 32

/* Every (pass, stage, micro-batch) task has one tag, made once per trainer:
 * its name (kept alive for traces) and what trace events need. */
struct sp_task_tag {
    char name[SP_TASK_NAME_MAX];
    sp_pass pass;
    int stage, microbatch;
    int pending; /* with the stall watchdog: tasks of this tag submitted here and not finished (atomic) */
};

/* A block of parameters that one optimizer task U updates: a stage's
 * (every parameter used by one op of that stage, in graph order), or one
 * shared parameter (used by several ops, e.g. tied embeddings), which keeps
 * one gradient block per use so that each use's micro-batches add up in
 * their own order and U adds the uses in a fixed order (invariant 8). */
struct sp_param_block {
    long n;                  /* floats; a stage without parameters keeps 1 (StarPU registers no empty vector) */
    int has_params;          /* 0: a stage without parameters (no U task) */
    int stage;               /* the owning stage (a shared parameter: its first user's) */
    int param;               /* a shared parameter's graph id, else -1 */
    int n_grads;             /* 1, or one per use of a shared parameter */
    int grad_stage[SP_OPT_MAX_GRADS]; /* the stage whose tasks add into each gradient block */
    float *params, *opt;     /* host memory where this rank owns the block */
    float *dparams[SP_OPT_MAX_GRADS];
    long opt_len;
    starpu_data_handle_t params_h, opt_h;
    starpu_data_handle_t dparams_h[SP_OPT_MAX_GRADS];
};

/* Where a graph parameter lives: its block and its offset in it. */
struct sp_param_home {
    int block;
    long off;
};

struct sp_stage_plan {
    struct sp_stage_desc desc;
    int first_op, end_op;
    int n_stash;             /* stash buffers (micro-batch m uses m mod n_stash) */
    long stash_floats;       /* of one stash buffer */
    int *shared;             /* desc.n_shared block ids whose values the stage reads */
    int *shared_grad_block;  /* desc.n_shared_grads: the block and use of each gradient it adds into */
    int *shared_grad_use;
    starpu_data_handle_t fwd_work_h;  /* SCRATCH for F: re-materialised activations | ops' scratch */
    starpu_data_handle_t bwd_work_h;  /* SCRATCH for the fused backward (gradients | activations | ops' scratch) */
    starpu_data_handle_t op_work_h;   /* zero-bubble: SCRATCH for the ops' backward scratch */
    starpu_data_handle_t *stash;      /* n_stash */
    starpu_data_handle_t *gstash;     /* n_stash, zero-bubble only */
    int worker;              /* StarPU worker id when pinned, -1 otherwise */
    uint32_t *workerids;     /* allowed workers (bit set) for device/map placement, else NULL */
    unsigned workerids_len;
};

struct sp_trace {
    pthread_mutex_t lock;
    int rank;     /* recorded with every event */
    double mpi_bytes_t0; /* StarPU-MPI's bytes sent when the window started */
    sp_task_event *ev;
    size_t n, cap;
    int oom;
    double t0_us; /* StarPU's clock right after starpu_init */
};

/* What a run's memory goes to, in bytes, on this rank (data.c). */
struct sp_memory_estimate {
    double params, optimizer, gradients, stashes, scratch, activations, batches, runtime, total;
};

struct sp_trainer {
    sp_graph_t *g;
    int K, M;    /* stages, micro-batches */
    int pipe_workers; /* p: K for most schedules, K / v for interleaved */
    int batch;
    long rows;   /* samples per micro-batch */
    sp_optimizer optimizer;
    sp_placement placement;
    sp_schedule schedule;
    int recompute;
    int profile;
    struct sp_stage_plan *st;
    long *act_numel;             /* K+1 boundaries: per-sample elements of act(b) */
    starpu_data_handle_t *act;   /* (K+1)·M, act[b·M + m]; act(0) is the input */
    starpu_data_handle_t *grad;  /* (K+1)·M, grad(0) unused */
    starpu_data_handle_t *target;
    void **x_host;   /* micro-batch inputs (4-byte elements: floats or int32 ids) */
    void **t_host;
    size_t target_bytes; /* per micro-batch */
    double loss_sum;
    starpu_data_handle_t loss_h;
    double eval_acc[2]; /* loss sum, correct predictions */
    starpu_data_handle_t eval_h;
    starpu_data_handle_t loss_work_h; /* SCRATCH for the CUDA loss: 2 doubles per row */
    sp_device device;
    int tf32;
    struct sp_task_tag *tags; /* F, B, W (K·M each), L, E (M each), U (one per parameter block) */
    uint64_t seed;            /* parameters and dropout */
    struct sp_param_block *blocks; /* K stages' blocks, then one per shared parameter */
    int n_blocks;
    struct sp_param_home *home;    /* per graph parameter */
    long step;
    int prio_forward, prio_backward, prio_weight;
    int nworkers;
    int broken; /* a submission failed midway: the state is no longer a training run */
    char policy_name[64];
    struct sp_trace trace;
    /* StarPU-MPI: every rank holds the whole plan; stage s's data lives on stage_rank[s] */
    int mpi, rank, nranks;
    int *stage_rank;
    int64_t next_tag; /* handles are registered in the same order on every rank */
    struct sp_memory_estimate memory; /* checked before StarPU starts */
};

/* The rank that owns stage s's data (0 without MPI). */
#define STAGE_RANK(t, s) ((t)->mpi ? (t)->stage_rank[s] : 0)
/* Whether this process holds stage s's data. */
#define OWNS(t, s) (!(t)->mpi || (t)->stage_rank[s] == (t)->rank)

#define ACT(t, b, m) ((t)->act[(b) * (t)->M + (m)])
#define GRAD(t, b, m) ((t)->grad[(b) * (t)->M + (m)])

/* trainer.c: StarPU has been started in this process (and its perf-model
 * tables freed at its shutdown: reading models again needs starpu_init) */
extern int sp_starpu_started;

/* options.c */
sp_status sp_opts_check(const sp_graph_t *g, const sp_train_opts *o);
/* What StarPU will need from the environment (its home, STARPU_LIMIT_CPU_MEM
 * against the memory estimate): checked before starpu_init, which aborts or
 * hangs instead. */
sp_status sp_env_check(const sp_trainer_t *t);
struct starpu_sched_policy *sp_policy_find(const char *name);
/* Where StarPU 1.4 keeps its performance models (STARPU_PERF_MODEL_DIR, else
 * <home>/.starpu/sampling) and which variable said so. */
void sp_sampling_dir(char *out, size_t cap, const char **from);

/* placement.c: each stage's worker or worker set (after starpu_init) */
sp_status sp_place_stages(sp_trainer_t *t, const sp_train_opts *o);

/* data.c: check that every buffer fits what StarPU and the kernels can hold
 * and that the run fits in memory (before StarPU starts); register every buffer with StarPU (and under MPI its tag and
 * owner), initialise the parameters; release unregisters and frees */
sp_status sp_data_check(sp_trainer_t *t);
sp_status sp_data_register(sp_trainer_t *t);
void sp_data_release(sp_trainer_t *t);

/* ranks.c: under MPI, the stage → rank map and the ranks' agreement */
sp_status sp_ranks_setup(sp_trainer_t *t, const sp_train_opts *o, const int *starts);

/* plan.c: stage layouts and parameter blocks (no StarPU), task names */
sp_status sp_plan_stages(sp_trainer_t *t, const int *starts);
sp_status sp_plan_tags(sp_trainer_t *t);
/* F, B, W: stage s and micro-batch m; L, E: micro-batch m; U: block s */
const struct sp_task_tag *sp_tag(const sp_trainer_t *t, sp_pass pass, int s, int m);
void sp_plan_free(sp_trainer_t *t);

/* schedule.c */
int sp_schedule_stash_buffers(sp_schedule schedule, int K, int M, int s);
int sp_schedule_splits_backward(sp_schedule schedule);
sp_status sp_submit_step(sp_trainer_t *t);
sp_status sp_submit_eval_chunk(sp_trainer_t *t, int m, long valid, long samples, int first);
/* Calibration (cost.c): op `op` (index in the stage) of stage s alone, forward or backward. */
sp_status sp_submit_op_task(sp_trainer_t *t, int s, int op, int backward);
/* The forward tasks of micro-batch buffer m in evaluation mode (no dropout). */
sp_status sp_submit_forward_chunk(sp_trainer_t *t, int m);

/* watchdog.c: the stall watchdog (sp_train_opts.stall_timeout); the task
 * and wait hooks do nothing while it is off */
sp_status sp_watch_start(const sp_trainer_t *t, double timeout, void (*on_stall)(const char *));
void sp_watch_stop(void);
int sp_watch_enabled(void);
void sp_watch_task_submitted(const struct sp_task_tag *tag);
void sp_watch_task_done(void *tag);        /* a task callback: arg is its tag */
void sp_watch_traced_task_done(void *arg); /* the same, with profiling: arg is a struct sp_trace_arg */
void sp_watch_wait_begin(void);
void sp_watch_wait_end(void);

/* trace.c */
sp_status sp_trace_init(struct sp_trace *tr);
void sp_trace_destroy(struct sp_trace *tr);
/* The callback every profiled task gets; its argument is a malloc'd
 * struct sp_trace_arg that StarPU frees. */
struct sp_trace_arg {
    struct sp_trace *trace;
    const struct sp_task_tag *tag;
    long step;
};
void sp_trace_record(void *arg);

/* simulate.c: in the simulating build (StarPU with SimGrid), SP_ERR_STARPU and
 * a message naming the codelet when a worker allowed to run the task has no
 * calibrated model for it; SP_OK otherwise and always in the normal build */
sp_status sp_simulate_check_task(struct starpu_task *task);

#endif /* SP_ENGINE_H */
