/*
 * generate.c — `starpipe generate`: text sampled from a saved GPT with the
 * pipelined forward pass (sp_trainer_predict).
 *
 *   adopt the checkpoint's model and vocabulary   (run_meta.c; a non-GPT is refused)
 *   encode the prompt                             (every character in the vocabulary,
 *                                                  at most one context long)
 *   build the model, create the trainer, load the weights
 *   per new character: the last `context` characters of every sample (the
 *   positions after them padded: attention is causal, so the logits at the
 *   last real position do not depend on them), one forward pass over all the
 *   samples (micro-batches in the pipeline), then a draw from
 *   softmax(logits / temperature) over the top-k characters
 *
 * The draws come from a generator seeded by (--seed, sample index), so the
 * same seed and options give the same text. Once a sample is longer than the
 * context, its window slides (the first characters fall out), as nanoGPT's
 * sample.py does; the prompt itself must fit in one window.
 * Exit status: 2 for options the command or the checkpoint rules out
 * (temperature, top-k, a prompt that is empty, too long or has characters
 * outside the vocabulary), 1 when the run fails (the checkpoint is not a GPT
 * or cannot be read, StarPU).
 */
#include "cli.h"
#include "train.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gen_args {
    struct train_args t; /* the checkpoint's model and the pipeline options */
    const char *prompt;
    long tokens;
    float temperature;
    int top_k; /* 0: every character */
    int samples;
    int json, quiet;
};

enum {
    OPT_LOAD = 256, OPT_PROMPT, OPT_TOKENS, OPT_TEMPERATURE, OPT_TOP_K, OPT_SEED, OPT_SAMPLES, OPT_STAGES,
    OPT_MICRO, OPT_PLACEMENT, OPT_SCHED, OPT_CPUS, OPT_DEVICE, OPT_JSON, OPT_QUIET,
};

static const struct option longopts[] = {
    {"load", required_argument, 0, OPT_LOAD},
    {"prompt", required_argument, 0, OPT_PROMPT},
    {"tokens", required_argument, 0, OPT_TOKENS},
    {"temperature", required_argument, 0, OPT_TEMPERATURE},
    {"top-k", required_argument, 0, OPT_TOP_K},
    {"seed", required_argument, 0, OPT_SEED},
    {"samples", required_argument, 0, OPT_SAMPLES},
    {"stages", required_argument, 0, OPT_STAGES},
    {"microbatches", required_argument, 0, OPT_MICRO},
    {"placement", required_argument, 0, OPT_PLACEMENT},
    {"sched", required_argument, 0, OPT_SCHED},
    {"cpus", required_argument, 0, OPT_CPUS},
    {"device", required_argument, 0, OPT_DEVICE},
    {"json", no_argument, 0, OPT_JSON},
    {"quiet", no_argument, 0, OPT_QUIET},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

#define DEFAULT_TOKENS 500
#define DEFAULT_TEMPERATURE 0.8f

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: starpipe generate --load PATH [options]\n"
            "\n"
            "Samples text from a GPT checkpoint ('starpipe train --model gpt --save PATH')\n"
            "with the pipelined forward pass: for each new character, the last --context\n"
            "characters of every sample go through the model's K stages, and the next\n"
            "character is drawn from the softmax of the last position's logits.\n"
            "\n"
            "  --load PATH           the GPT checkpoint (its metadata holds the model and vocabulary)\n"
            "  --prompt TEXT         the text to continue (default: a newline); every character must be in\n"
            "                        the model's vocabulary and it must fit in one context window; longer\n"
            "                        samples slide their window over the last --context characters\n"
            "  --tokens N            characters to generate per sample (default %d)\n"
            "  --temperature T       > 0: the logits are divided by T (default %g; 1: the model's\n"
            "                        distribution, lower: more conservative)\n"
            "  --top-k K             >= 1: draw among the K most likely characters only (default: all)\n"
            "  --seed S              seed of the draws: the same seed gives the same text (default 1)\n"
            "  --samples N           independent samples, generated together (default 1)\n"
            "pipeline:\n"
            "  --stages K            pipeline stages (default %d)\n"
            "  --microbatches M      micro-batches per forward pass; must divide --samples (default: one per\n"
            "                        sample)\n"
            "  --placement P         pinned (default), free, device or a map (see 'starpipe train --help')\n"
            "  --sched NAME          StarPU scheduling policy (default: STARPU_SCHED, else StarPU's lws)\n"
            "  --cpus N              CPU workers (default: one per core)\n"
            "  --device D            cpu (default) or cuda\n"
            "output:\n"
            "  --json                one JSON object: samples (the texts, prompt included), prompt, tokens,\n"
            "                        temperature, top_k, seed, seconds, tokens_per_s, stages, microbatches\n"
            "  --quiet               no summary line on stderr\n"
            "  -h, --help            this help\n"
            "\n"
            "Prints the prompt followed by the generated characters (as they come, for one\n"
            "sample; several samples are separated by a line of dashes). Exit status 2 for\n"
            "a bad option, an empty prompt, one longer than the context or with a character\n"
            "outside the vocabulary; 1 when the checkpoint is not a GPT or the run fails.\n",
            DEFAULT_TOKENS, (double)DEFAULT_TEMPERATURE, data_set_of(DATA_TEXT)->stages);
}

static int option(struct gen_args *g, int c, const char *arg)
{
    struct train_args *a = &g->t;
    long v;
    char *end;
    int bad = 0;
    switch (c) {
    case OPT_LOAD: a->load = arg; break;
    case OPT_PROMPT: g->prompt = arg; break;
    case OPT_TOKENS: bad = parse_long("--tokens", arg, 1, 1L << 24, &g->tokens); break;
    case OPT_TEMPERATURE:
        errno = 0;
        g->temperature = strtof(arg, &end);
        if (errno || end == arg || *end || !isfinite(g->temperature) || !(g->temperature > 0.0f))
            return usage_error("--temperature must be a number greater than 0 (1 samples the model's "
                               "distribution, lower values are more conservative), got '%s'",
                               arg);
        break;
    case OPT_TOP_K:
        errno = 0;
        v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v < 1 || v > INT_MAX)
            return usage_error("--top-k must be an integer of at least 1 (draw among the K most likely "
                               "characters; leave it out to draw from all), got '%s'",
                               arg);
        g->top_k = (int)v;
        break;
    case OPT_SEED:
        bad = parse_long("--seed", arg, 0, LONG_MAX, &v);
        a->o.seed = (uint64_t)v;
        break;
    case OPT_SAMPLES: bad = parse_int("--samples", arg, 1, 4096, &g->samples); break;
    case OPT_STAGES: bad = parse_int("--stages", arg, 1, MAX_STAGES, &a->o.stages); break;
    case OPT_MICRO:
        bad = parse_int("--microbatches", arg, 1, 4096, &a->o.microbatches);
        a->given.microbatches = 1;
        break;
    case OPT_PLACEMENT:
        if (sp_placement_parse(arg, &a->o.placement) != SP_OK)
            return usage_error("%s", sp_error_message());
        a->o.placement_map = a->o.placement == SP_PLACEMENT_MAP ? arg : NULL;
        break;
    case OPT_SCHED:
        if (!sp_sched_policy_exists(arg))
            return usage_error("unknown scheduling policy '%s' (StarPU has: %s)", arg, sp_sched_policy_names());
        a->o.policy = arg;
        break;
    case OPT_CPUS: bad = parse_int("--cpus", arg, 1, 64, &a->o.ncpus); break;
    case OPT_DEVICE:
        if (sp_device_parse(arg, &a->o.device) != SP_OK)
            return usage_error("%s", sp_error_message());
        break;
    case OPT_JSON: g->json = 1; break;
    case OPT_QUIET: g->quiet = 1; break;
    }
    return bad ? 2 : 0;
}

static int parse(int argc, char **argv, struct gen_args *g)
{
    train_args_defaults(&g->t, CMD_GENERATE);
    g->t.o.stages = data_set_of(DATA_TEXT)->stages;
    g->prompt = "\n";
    g->tokens = DEFAULT_TOKENS;
    g->temperature = DEFAULT_TEMPERATURE;
    g->samples = 1;
    int c, rc;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            generate_usage(stdout);
            exit(0);
        }
        if (c == '?' || c == ':') {
            if (optopt)
                fprintf(stderr, "starpipe: option needs a value or is unknown: '%s'\n", argv[optind - 1]);
            else
                fprintf(stderr, "starpipe: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "(see 'starpipe %s --help')\n", cli_command());
            return 2;
        }
        if ((rc = option(g, c, optarg)))
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!g->t.load)
        return usage_error("generate needs --load PATH (a checkpoint of 'starpipe train --model gpt')");
    if (!*g->prompt)
        return usage_error("--prompt is empty: give at least one character to continue (the default is a "
                           "newline)");
    if (!g->t.given.microbatches)
        g->t.o.microbatches = g->samples;
    if (g->samples % g->t.o.microbatches)
        return usage_error("--samples %d is not divisible by %d micro-batches", g->samples, g->t.o.microbatches);
    g->t.o.batch = g->samples;
    return 0;
}

/* The prompt as ids: each character in the vocabulary, one window at most. */
static int encode_prompt(const struct gen_args *g, const sp_text *vocab, int32_t *ids, int *n)
{
    const int T = g->t.model.gpt.context;
    const int cap = (int)strlen(g->prompt); /* at least as many bytes as characters */
    int32_t *all = malloc(sizeof(int32_t) * (size_t)cap);
    if (!all) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    int count = 0;
    sp_status s = sp_text_encode(vocab, g->prompt, all, cap, &count);
    int rc = 0;
    if (s != SP_OK)
        rc = usage_error("--prompt: %s", sp_error_message());
    else if (count > T)
        rc = usage_error("--prompt has %d characters, more than the model's context of %d (a prompt must fit in "
                         "one window; the samples slide it as they grow)",
                         count, T);
    else {
        memcpy(ids, all, sizeof(int32_t) * (size_t)count);
        *n = count;
    }
    free(all);
    return rc;
}

static double uniform01(uint64_t *state)
{
    return (double)(sp_splitmix64(state) >> 11) * 0x1.0p-53;
}

/* One id drawn from softmax(logits / temperature) restricted to the top_k
 * largest logits (ties: the smaller id first); idx is scratch for V ids.
 * -1 when the logits are not finite. */
static int draw(const float *logits, int V, float temperature, int top_k, uint64_t *state, int *idx)
{
    const int k = top_k > 0 && top_k < V ? top_k : V;
    for (int i = 0; i < V; i++) {
        if (!isfinite(logits[i]))
            return -1;
        idx[i] = i;
    }
    for (int j = 0; j < k; j++) { /* selection of the k largest, in order */
        int best = j;
        for (int i = j + 1; i < V; i++)
            if (logits[idx[i]] > logits[idx[best]] || (logits[idx[i]] == logits[idx[best]] && idx[i] < idx[best]))
                best = i;
        const int t = idx[j];
        idx[j] = idx[best];
        idx[best] = t;
    }
    const double mx = logits[idx[0]];
    double z = 0.0;
    for (int j = 0; j < k; j++)
        z += exp((logits[idx[j]] - mx) / temperature);
    double u = uniform01(state) * z;
    for (int j = 0; j < k; j++) {
        u -= exp((logits[idx[j]] - mx) / temperature);
        if (u < 0.0)
            return idx[j];
    }
    return idx[k - 1];
}

struct gen_run {
    sp_graph_t *g;
    sp_trainer_t *t;
    sp_text vocab;
    int32_t **seq; /* per sample: the prompt and what followed */
    long len;      /* characters of every sample so far */
    int32_t *x;    /* (samples, context) */
    float *logits; /* (samples, context, vocab) */
    int *idx;
    uint64_t *rng;
};

static void gen_free(struct gen_run *r, int samples)
{
    sp_trainer_destroy(r->t);
    sp_graph_destroy(r->g);
    for (int i = 0; r->seq && i < samples; i++)
        free(r->seq[i]);
    free(r->seq), free(r->x), free(r->logits), free(r->idx), free(r->rng);
}

static void put_id(const sp_text *vocab, int32_t id, FILE *f)
{
    char c[5];
    if (sp_text_decode(vocab, id, c))
        fputs(c, f);
}

/* The sample as UTF-8 text (malloc'd). */
static char *sample_text(const struct gen_run *r, int i)
{
    char *s = malloc((size_t)r->len * 4 + 1), *p = s;
    if (!s)
        return NULL;
    for (long j = 0; j < r->len; j++)
        p += sp_text_decode(&r->vocab, r->seq[i][j], p);
    *p = '\0';
    return s;
}

/* Generates from the encoded prompt (n ids) and prints the samples. */
static int run(struct gen_args *g, struct gen_run *r, const int32_t *prompt, int n)
{
    struct train_args *a = &g->t;
    const int T = a->model.gpt.context, V = a->model.gpt.vocab, S = g->samples;
    const int stream = S == 1 && !g->json; /* one sample: print the characters as they come */
    sp_status s = model_build(&a->model, &a->data, &r->g);
    if (s != SP_OK)
        return cli_fail("building the model", s);
    if ((s = sp_checkpoint_check(r->g, a->load)) != SP_OK) /* before anything is allocated for the model */
        return cli_fail("loading the checkpoint", s);
    if ((s = sp_trainer_create(r->g, &a->o, &r->t)) != SP_OK)
        return cli_fail("starting the pipeline", s);
    if ((s = sp_checkpoint_load(r->t, a->load, 0)) != SP_OK)
        return cli_fail("loading the checkpoint", s);
    r->seq = calloc((size_t)S, sizeof(*r->seq));
    r->x = calloc((size_t)S * T, sizeof(int32_t));
    r->logits = malloc(sizeof(float) * (size_t)S * T * V);
    r->idx = malloc(sizeof(int) * (size_t)V);
    r->rng = malloc(sizeof(uint64_t) * (size_t)S);
    for (int i = 0; r->seq && i < S; i++)
        r->seq[i] = malloc(sizeof(int32_t) * (size_t)(n + g->tokens));
    if (!r->seq || !r->x || !r->logits || !r->idx || !r->rng || !r->seq[S - 1]) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    for (int i = 0; i < S; i++) {
        memcpy(r->seq[i], prompt, sizeof(int32_t) * (size_t)n);
        r->rng[i] = a->o.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i * 0xd1b54a32d192ed03ULL + 0x5851f42d4c957f2dULL;
    }
    r->len = n;
    if (stream) {
        fputs(g->prompt, stdout);
        fflush(stdout);
    }
    const double t0 = now_s();
    for (long k = 0; k < g->tokens; k++) {
        const long w = r->len < T ? r->len : T, from = r->len - w; /* the window: the last w characters */
        for (int i = 0; i < S; i++) {
            memcpy(r->x + (size_t)i * T, r->seq[i] + from, sizeof(int32_t) * (size_t)w);
            memset(r->x + (size_t)i * T + w, 0, sizeof(int32_t) * (size_t)(T - w)); /* padding, never attended to */
        }
        if ((s = sp_trainer_predict(r->t, r->x, S, r->logits)) != SP_OK)
            return cli_fail("forward pass", s);
        for (int i = 0; i < S; i++) {
            const int id = draw(r->logits + ((size_t)i * T + (size_t)(w - 1)) * V, V, g->temperature, g->top_k,
                                &r->rng[i], r->idx);
            if (id < 0) {
                fprintf(stderr, "starpipe: %s: the model's logits are not finite (a damaged checkpoint?)\n", a->load);
                return 1;
            }
            r->seq[i][r->len] = id;
            if (stream) {
                put_id(&r->vocab, id, stdout);
                fflush(stdout);
            }
        }
        r->len++;
    }
    const double seconds = now_s() - t0;
    if (stream)
        fputs("\n", stdout);
    else if (g->json) {
        printf("{\"samples\": [");
        for (int i = 0; i < S; i++) {
            char *text = sample_text(r, i);
            if (i)
                printf(", ");
            json_string(stdout, text ? text : "");
            free(text);
        }
        printf("], \"prompt\": ");
        json_string(stdout, g->prompt);
        printf(", \"tokens\": %ld, \"temperature\": %s, \"top_k\": ", g->tokens,
               JSON_NUM("%.6g", g->temperature));
        if (g->top_k)
            printf("%d", g->top_k);
        else
            printf("null");
        printf(", \"seed\": %" PRIu64 ", \"seconds\": %.6f, \"tokens_per_s\": %s, \"stages\": %d, "
               "\"microbatches\": %d}\n",
               a->o.seed, seconds, JSON_NUM("%.3f", seconds > 0 ? g->tokens * (double)S / seconds : NAN),
               sp_trainer_stage_count(r->t), a->o.microbatches);
    } else {
        for (int i = 0; i < S; i++) {
            char *text = sample_text(r, i);
            printf("%s%s\n", i ? "---------------\n" : "", text ? text : "");
            free(text);
        }
    }
    if (!g->quiet)
        fprintf(stderr, "generate: %d sample%s of %ld characters in %.1f s (%.0f characters/s), %d stage%s, %d "
                        "micro-batch%s\n",
                S, S > 1 ? "s" : "", g->tokens, seconds, seconds > 0 ? g->tokens * (double)S / seconds : 0.0,
                sp_trainer_stage_count(r->t), sp_trainer_stage_count(r->t) > 1 ? "s" : "", a->o.microbatches,
                a->o.microbatches > 1 ? "es" : "");
    return 0;
}

/* The prompt encoded, then the samples. */
static int generate(struct gen_args *g, struct gen_run *r)
{
    const int T = g->t.model.gpt.context;
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)T);
    int n = 0, rc;
    if (!prompt) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    rc = encode_prompt(g, &r->vocab, prompt, &n);
    if (!rc)
        rc = run(g, r, prompt, n);
    free(prompt);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    struct gen_args *g = calloc(1, sizeof(*g));
    if (!g) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    int rc = parse(argc, argv, g);
    long epoch, batch_in_epoch;
    if (!rc)
        rc = run_meta_adopt(&g->t, g->t.load, &epoch, &batch_in_epoch);
    struct gen_run r = {0};
    if (!rc && sp_text_vocab_parse(g->t.data.vocab, &r.vocab) != SP_OK)
        rc = cli_fail("reading the checkpoint's vocabulary", SP_ERR_IO);
    if (!rc)
        rc = generate(g, &r);
    gen_free(&r, g->samples);
    free(g);
    return rc;
}
