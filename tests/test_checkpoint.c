/*
 * test_checkpoint.c — safetensors checkpoints.
 *
 * - Resuming is exact: 6 steps in one go and 3 steps, save, load into a new
 *   trainer (with another K and placement), 3 more steps give bit-identical
 *   weights, for SGD and AdamW.
 * - A checkpoint that does not fit the model (shape, missing or extra
 *   tensor, other optimizer) and a corrupt one (truncated, bad header, bad
 *   length, empty, missing) give an error naming the file and the tensor, and
 *   leave the trainer's weights as they were.
 * - Saving is atomic: an unwritable path and a save cut short (file size
 *   limit) leave no partial file, and an earlier checkpoint under the same
 *   path stays intact.
 * - A non-finite weight is never saved (the tensor is named); loading one
 *   is cli_hostile.sh's.
 * - Saving writes regular files only: a FIFO, a directory or a dangling
 *   symbolic link at the path is refused and left as it was; through a
 *   symbolic link to a file, the file is replaced and the link stays.
 */
#include "test_common.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 16
static char dir[] = "/tmp/starpipe-ckpt-XXXXXX";
static sp_synthetic data;

static sp_trainer_t *make(sp_graph_t *g, int stages, sp_placement pl, sp_optimizer_type opt)
{
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = BATCH;
    o.microbatches = 2;
    o.stages = stages;
    o.placement = pl;
    sp_optimizer_defaults(&o.optimizer, opt);
    sp_trainer_t *t;
    REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "%s", sp_error_message());
    return t;
}

static void steps(sp_trainer_t *t, int from, int to)
{
    for (int i = from; i < to; i++)
        REQUIRE(sp_trainer_step(t, data.x + (size_t)i * BATCH * TM_INPUTS, data.label + (size_t)i * BATCH, NULL) == SP_OK,
                "%s", sp_error_message());
}

static uint64_t checksum(sp_trainer_t *t)
{
    uint64_t c;
    REQUIRE(sp_trainer_params_checksum(t, &c) == SP_OK, "checksum");
    return c;
}

static void path_of(char *out, const char *name) { snprintf(out, 600, "%s/%s", dir, name); }

static void resume_exact(sp_graph_t *g, sp_optimizer_type opt)
{
    const char *name = opt == SP_OPTIMIZER_ADAMW ? "adamw" : "sgd";
    sp_trainer_t *t = make(g, 2, SP_PLACEMENT_PINNED, opt);
    steps(t, 0, 6);
    uint64_t whole = checksum(t);
    sp_trainer_destroy(t);

    char path[600];
    path_of(path, "resume.safetensors");
    t = make(g, 2, SP_PLACEMENT_PINNED, opt);
    steps(t, 0, 3);
    static sp_meta m, back; /* about 200 KB each */
    memset(&m, 0, sizeof(m));
    REQUIRE(sp_meta_set(&m, "note", "half way") == SP_OK, "meta");
    /* the longest value a key may hold (a text model's vocabulary) survives the file */
    static char longest[SP_META_VALUE_MAX + 1];
    memset(longest, '7', SP_META_VALUE_MAX);
    CHECK(sp_meta_set(&m, "long", longest) == SP_ERR_INVALID_ARG, "a value of %d characters must be refused",
          SP_META_VALUE_MAX);
    longest[SP_META_VALUE_MAX - 1] = '\0';
    REQUIRE(sp_meta_set(&m, "long", longest) == SP_OK, "a value of %d characters: %s", SP_META_VALUE_MAX - 1,
            sp_error_message());
    REQUIRE(sp_checkpoint_save(t, path, &m) == SP_OK, "%s", sp_error_message());
    sp_trainer_destroy(t);

    REQUIRE(sp_checkpoint_read_meta(path, &back) == SP_OK, "%s", sp_error_message());
    CHECK(sp_meta_get(&back, "note") && !strcmp(sp_meta_get(&back, "note"), "half way"), "custom metadata lost");
    CHECK(sp_meta_get(&back, "long") && !strcmp(sp_meta_get(&back, "long"), longest),
          "a metadata value of %d characters did not come back whole", SP_META_VALUE_MAX - 1);
    CHECK(sp_meta_get(&back, "starpipe.step") && !strcmp(sp_meta_get(&back, "starpipe.step"), "3"),
          "starpipe.step should be 3");

    t = make(g, 3, SP_PLACEMENT_FREE, opt);
    REQUIRE(sp_checkpoint_load(t, path, 1) == SP_OK, "%s", sp_error_message());
    CHECK(sp_trainer_step_count(t) == 3, "%s: step count %ld after load", name, sp_trainer_step_count(t));
    steps(t, 3, 6);
    uint64_t resumed = checksum(t);
    CHECK(resumed == whole, "%s: 6 steps give %016llx, 3 + save + load + 3 give %016llx", name,
          (unsigned long long)whole, (unsigned long long)resumed);
    printf("%s: resumed run bit-identical (%016llx)\n", name, (unsigned long long)resumed);
    sp_trainer_destroy(t);
}

static void expect_load_error(sp_graph_t *g, const char *path, int with_opt, sp_optimizer_type opt,
                              sp_status want, const char *fragment)
{
    sp_trainer_t *t = make(g, 1, SP_PLACEMENT_PINNED, opt);
    uint64_t before = checksum(t);
    sp_status s = sp_checkpoint_load(t, path, with_opt);
    CHECK(s == want, "load %s: %s (%s), expected %s", path, sp_strerror(s), sp_error_message(), sp_strerror(want));
    CHECK(strstr(sp_error_message(), fragment) != NULL, "load %s: message '%s' should contain '%s'", path,
          sp_error_message(), fragment);
    CHECK(checksum(t) == before, "a refused checkpoint must leave the weights alone");
    sp_trainer_destroy(t);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    if (n)
        fwrite(b, 1, n, f);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    REQUIRE(b && fread(b, 1, *n, f) == *n, "read %s", path);
    fclose(f);
    return b;
}

static int temp_files_left(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void mismatches(sp_graph_t *g)
{
    char good[600], path[600];
    path_of(good, "good.safetensors");
    sp_trainer_t *t = make(g, 1, SP_PLACEMENT_PINNED, SP_OPTIMIZER_SGD);
    steps(t, 0, 1);
    REQUIRE(sp_checkpoint_save(t, good, NULL) == SP_OK, "%s", sp_error_message());
    sp_trainer_destroy(t);

    /* weights only into an AdamW run: fine; with optimizer state: refused */
    t = make(g, 2, SP_PLACEMENT_PINNED, SP_OPTIMIZER_ADAMW);
    CHECK(sp_checkpoint_load(t, good, 0) == SP_OK, "weights-only load: %s", sp_error_message());
    sp_trainer_destroy(t);
    expect_load_error(g, good, 1, SP_OPTIMIZER_ADAMW, SP_ERR_INVALID_ARG, "optimizer state of 'sgd'");

    /* other models */
    sp_graph_t *narrow, *deeper, *smaller;
    sp_tensor x, y;
    REQUIRE(sp_graph_create(&narrow) == SP_OK && sp_input(narrow, TM_INPUTS, &x) == SP_OK &&
                sp_linear(narrow, x, 16, "fc1", &y) == SP_OK && sp_relu(narrow, y, &y) == SP_OK &&
                sp_linear(narrow, y, TM_CLASSES, "fc4", &y) == SP_OK && sp_softmax_cross_entropy(narrow, y) == SP_OK,
            "narrow model");
    expect_load_error(narrow, good, 0, SP_OPTIMIZER_SGD, SP_ERR_INVALID_ARG,
                      "tensor 'fc1.weight' has shape (32, 24), the model expects (16, 24)");
    sp_graph_destroy(narrow);
    REQUIRE(sp_graph_create(&smaller) == SP_OK && sp_input(smaller, TM_INPUTS, &x) == SP_OK &&
                sp_linear(smaller, x, 32, "fc1", &y) == SP_OK && sp_relu(smaller, y, &y) == SP_OK &&
                sp_linear(smaller, y, TM_CLASSES, "fc4", &y) == SP_OK &&
                sp_softmax_cross_entropy(smaller, y) == SP_OK,
            "smaller model");
    expect_load_error(smaller, good, 0, SP_OPTIMIZER_SGD, SP_ERR_INVALID_ARG, "'fc2.weight' is not part of this model");
    sp_graph_destroy(smaller);
    REQUIRE(sp_graph_create(&deeper) == SP_OK && sp_input(deeper, TM_INPUTS, &x) == SP_OK, "deeper");
    sp_tensor h;
    REQUIRE(sp_linear(deeper, x, 32, "fc1", &h) == SP_OK && sp_gelu(deeper, h, &h) == SP_OK &&
                sp_linear(deeper, h, 32, "fc2", &y) == SP_OK && sp_relu(deeper, y, &y) == SP_OK &&
                sp_add(deeper, h, y, &y) == SP_OK && sp_layernorm(deeper, y, "ln1", &y) == SP_OK &&
                sp_linear(deeper, y, 32, "fc3", &y) == SP_OK && sp_relu(deeper, y, &y) == SP_OK &&
                sp_linear(deeper, y, 32, "fc3b", &y) == SP_OK && sp_relu(deeper, y, &y) == SP_OK &&
                sp_linear(deeper, y, TM_CLASSES, "fc4", &y) == SP_OK && sp_softmax_cross_entropy(deeper, y) == SP_OK,
            "deeper model");
    expect_load_error(deeper, good, 0, SP_OPTIMIZER_SGD, SP_ERR_INVALID_ARG, "tensor 'fc3b.weight' of the model is missing");
    sp_graph_destroy(deeper);

    /* corrupt files */
    size_t n;
    unsigned char *b = read_bytes(good, &n);
    path_of(path, "truncated.safetensors");
    write_bytes(path, b, n - 100);
    expect_load_error(g, path, 0, SP_OPTIMIZER_SGD, SP_ERR_IO, "truncated");
    path_of(path, "badjson.safetensors");
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    memcpy(c + 8, "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[32 24],", 44);
    write_bytes(path, c, n);
    expect_load_error(g, path, 0, SP_OPTIMIZER_SGD, SP_ERR_IO, "corrupt safetensors header");
    memcpy(c, b, n);
    uint64_t huge = 1ULL << 40;
    memcpy(c, &huge, 8);
    path_of(path, "badlen.safetensors");
    write_bytes(path, c, n);
    expect_load_error(g, path, 0, SP_OPTIMIZER_SGD, SP_ERR_IO, "header length");
    path_of(path, "empty.safetensors");
    write_bytes(path, c, 0);
    expect_load_error(g, path, 0, SP_OPTIMIZER_SGD, SP_ERR_IO, "too short");
    path_of(path, "absent.safetensors");
    expect_load_error(g, path, 0, SP_OPTIMIZER_SGD, SP_ERR_IO, "cannot open");
    free(c);

    /* unwritable path: nothing created */
    t = make(g, 1, SP_PLACEMENT_PINNED, SP_OPTIMIZER_SGD);
    path_of(path, "no/such/dir/x.safetensors");
    sp_status s = sp_checkpoint_save(t, path, NULL);
    CHECK(s == SP_ERR_IO && strstr(sp_error_message(), "no/such/dir/x.safetensors"), "unwritable: %s (%s)",
          sp_strerror(s), sp_error_message());

    /* a save cut short by the file size limit leaves the old checkpoint intact */
    struct rlimit keep, small;
    getrlimit(RLIMIT_FSIZE, &keep);
    small = keep;
    small.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    steps(t, 0, 2); /* different weights from `good` */
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0, "setrlimit");
    s = sp_checkpoint_save(t, good, NULL);
    setrlimit(RLIMIT_FSIZE, &keep);
    CHECK(s == SP_ERR_IO, "a save past the size limit must fail, got %s", sp_strerror(s));
    size_t n2;
    unsigned char *after = read_bytes(good, &n2);
    CHECK(n2 == n && !memcmp(after, b, n), "the earlier checkpoint changed after a failed save");
    CHECK(temp_files_left() == 0, "a failed save left a temporary file in %s", dir);
    free(after);
    free(b);
    sp_trainer_destroy(t);
}

/* What may be at a save's path: only a regular file, or a link to one. */
static void save_paths(sp_graph_t *g)
{
    sp_trainer_t *t = make(g, 1, SP_PLACEMENT_PINNED, SP_OPTIMIZER_SGD);
    char fifo[600], sub[600], link[600], real[600], dangling[600];
    struct stat st;
    path_of(fifo, "fifo");
    path_of(sub, "sub");
    path_of(real, "real.safetensors");
    path_of(link, "link.safetensors");
    path_of(dangling, "dangling.safetensors");
    REQUIRE(mkfifo(fifo, 0600) == 0 && mkdir(sub, 0700) == 0, "mkfifo, mkdir");
    sp_status s = sp_checkpoint_save(t, fifo, NULL);
    CHECK(s == SP_ERR_IO && strstr(sp_error_message(), "not a regular file (a FIFO)"), "save to a FIFO: %s (%s)",
          sp_strerror(s), sp_error_message());
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    s = sp_checkpoint_save(t, sub, NULL);
    CHECK(s == SP_ERR_IO && strstr(sp_error_message(), "(a directory)"), "save to a directory: %s (%s)",
          sp_strerror(s), sp_error_message());
    CHECK(sp_output_path_check(fifo) == SP_ERR_IO && sp_output_path_check(real) == SP_OK, "sp_output_path_check");
    REQUIRE(symlink("missing.safetensors", dangling) == 0, "symlink");
    s = sp_checkpoint_save(t, dangling, NULL);
    CHECK(s == SP_ERR_IO && strstr(sp_error_message(), "which does not exist"), "save to a dangling link: %s (%s)",
          sp_strerror(s), sp_error_message());
    CHECK(lstat(dangling, &st) == 0 && S_ISLNK(st.st_mode), "the dangling link was replaced");
    write_bytes(real, (const unsigned char *)"old", 3);
    REQUIRE(symlink("real.safetensors", link) == 0, "symlink");
    s = sp_checkpoint_save(t, link, NULL);
    CHECK(s == SP_OK, "save through a link: %s", sp_error_message());
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced by a file");
    CHECK(stat(real, &st) == 0 && st.st_size > 3, "the file the link leads to was not written");
    sp_meta m;
    CHECK(sp_checkpoint_read_meta(link, &m) == SP_OK, "read back through the link: %s", sp_error_message());
    CHECK(temp_files_left() == 0, "temporary files left in %s", dir);
    sp_trainer_destroy(t);
}

/* A NaN or infinite weight is never written: the save names the tensor and
 * leaves no file. */
static void non_finite_save(sp_graph_t *g)
{
    sp_trainer_t *t = make(g, 2, SP_PLACEMENT_PINNED, SP_OPTIMIZER_SGD);
    const size_t n = sp_graph_param_count(g);
    float *p = malloc(sizeof(float) * n);
    REQUIRE(p && sp_trainer_get_params(t, p) == SP_OK, "get_params");
    sp_param_info info;
    sp_graph_param_tensor(g, 2, &info); /* fc2.weight */
    p[info.offset + 3] = INFINITY;
    REQUIRE(sp_trainer_set_params(t, p) == SP_OK, "set_params");
    char path[600];
    path_of(path, "inf.safetensors");
    sp_status s = sp_checkpoint_save(t, path, NULL);
    char want[160];
    snprintf(want, sizeof(want), "tensor '%s' holds a non-finite value (inf at element 3)", info.name);
    CHECK(s == SP_ERR_INVALID_ARG && strstr(sp_error_message(), want), "save of an infinite weight: %s (%s)",
          sp_strerror(s), sp_error_message());
    CHECK(access(path, F_OK) != 0 && temp_files_left() == 0, "a refused save left a file");
    free(p);
    sp_trainer_destroy(t);
}

/* Random damage to a good header (bytes flipped, the header cut short):
 * reading must fail cleanly or succeed, never read out of bounds (the
 * sanitizer build checks that). */
static void damaged_headers(const char *good)
{
    size_t n;
    unsigned char *b = read_bytes(good, &n);
    uint64_t hlen;
    memcpy(&hlen, b, 8);
    char path[600];
    path_of(path, "fuzz.safetensors");
    uint64_t rng = 12345;
    int refused = 0;
    for (int i = 0; i < 400; i++) {
        unsigned char *c = malloc(n);
        memcpy(c, b, n);
        int flips = 1 + (int)(test_uniform(&rng, 0, 4));
        for (int k = 0; k < flips; k++) {
            size_t at = 8 + (size_t)test_uniform(&rng, 0, (float)hlen - 1);
            c[at] = (unsigned char)test_uniform(&rng, 0, 255);
        }
        size_t len = i % 10 == 0 ? 8 + (size_t)test_uniform(&rng, 0, (float)hlen) : n;
        write_bytes(path, c, len);
        sp_meta m;
        sp_status s = sp_checkpoint_read_meta(path, &m);
        CHECK(s == SP_OK || s == SP_ERR_IO, "damaged header %d: status %s", i, sp_strerror(s));
        refused += s != SP_OK;
        free(c);
    }
    CHECK(refused > 100, "only %d of 400 damaged headers were refused", refused);
    printf("damaged headers: %d of 400 refused, none crashed\n", refused);
    free(b);
}

int main(void)
{
    REQUIRE(mkdtemp(dir), "mkdtemp");
    REQUIRE(sp_synthetic_create(&data, BATCH * 8, TM_INPUTS, TM_CLASSES, 3) == SP_OK, "data");
    sp_graph_t *g = test_model();
    resume_exact(g, SP_OPTIMIZER_SGD);
    resume_exact(g, SP_OPTIMIZER_ADAMW);
    mismatches(g);
    save_paths(g);
    non_finite_save(g);
    char good[600];
    path_of(good, "good.safetensors");
    damaged_headers(good);
    sp_graph_destroy(g);
    sp_synthetic_destroy(&data);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return test_result("test_checkpoint");
}
