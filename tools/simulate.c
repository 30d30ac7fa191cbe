/*
 * simulate.c — the command's front door to simulation and calibration:
 *
 *   starpipe simulate [--calibration DIR] [--machine NAME] [--platform FILE] [train options]
 *   starpipe bench --simulate [same three] [bench options]
 *   starpipe train|bench --calibrate DIR [options]    a real run that records the perf models
 *
 * A simulation runs starpipe-sim — the same sources built against a StarPU
 * configured with --enable-simgrid — in a private StarPU home made from the
 * calibration: that machine's bus description (its platform file, or the one
 * given) and its codelet models, copied so that the simulation never writes
 * into the calibration. SimGrid loads the platform before starpipe-sim's own
 * main runs, so everything it needs is checked here first, with a message
 * that says what is missing. This file does not simulate anything itself and
 * does not know the codelets; whether a codelet's model covers a task is
 * checked inside the simulation (graph/simulate.c).
 */
#include "cli.h"
#include "starpipe.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIM_PATH 4096

static void simulate_usage(FILE *f)
{
    fprintf(f,
            "usage: starpipe simulate [--calibration DIR] [--machine NAME] [--platform FILE] [train options]\n"
            "       starpipe bench --simulate [--calibration DIR] [--machine NAME] [--platform FILE] [bench options]\n"
            "\n"
            "Runs the training (or the bench) in simulated time: StarPU built with SimGrid\n"
            "(starpipe-sim) submits the same tasks to the same scheduler, and times each\n"
            "from the perf models a real run recorded, each transfer from the machine's\n"
            "platform file. Prints what a real run prints (step times, samples/s, bubble\n"
            "per worker, stash memory, bytes moved) and writes the same --trace files, in\n"
            "simulated time. Nothing is computed: losses, accuracies and checksums are\n"
            "meaningless. Two simulations of the same run give the same times.\n"
            "\n"
            "  --calibration DIR  a StarPU home holding perf models (default: $STARPU_HOME, else $HOME);\n"
            "                     make one with a real run: starpipe train|bench --calibrate DIR [options]\n"
            "  --machine NAME     the machine the models were recorded on (default: the only one in DIR)\n"
            "  --platform FILE    a SimGrid platform file instead of the machine's own (more cores,\n"
            "                     other links; tools/whatif_platform.py writes whole what-if machines)\n"
            "\n"
            "Every task's configuration must have been calibrated: the same model, stage cuts and\n"
            "micro-batch size as the real run that calibrated it (any K, M, schedule, policy or\n"
            "core count whose tasks have those shapes). Otherwise the simulation stops and names\n"
            "the codelet that has no model.\n");
}

/* ---- small file helpers ----------------------------------------------------- */

/* snprintf into a SIM_PATH buffer; a path that does not fit is cut (and then
 * names no file, which the checks below report). */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, SIM_PATH, fmt, ap);
    va_end(ap);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int mkdirs(const char *path)
{
    char buf[SIM_PATH];
    pathf(buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
    if (in && ferror(in))
        rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[SIM_PATH];
            pathf(sub, "%s/%s", path, e->d_name);
            if (is_dir(sub))
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* ---- the calibration ----------------------------------------------------- */

/* The machines of a calibration: names with a platform file in bus/, comma-separated. */
static int list_machines(const char *bus, char *out, size_t cap)
{
    DIR *d = opendir(bus);
    int n = 0;
    out[0] = '\0';
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (ends_with(e->d_name, ".platform.v4.xml")) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s%.*s", n ? ", " : "", (int)(strlen(e->d_name) - 16), e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

/* The perf-model directory of a calibration (sampling/codelets/<version>) into out (SIM_PATH). */
static int model_dir(const char *codelets, char *out)
{
    DIR *d = opendir(codelets);
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') {
            pathf(out, "%s/%s", codelets, e->d_name);
            found = 0;
        }
    closedir(d);
    return found;
}

/* Counts (and, with to != NULL, copies) the model files recorded on a machine. */
static int models_of(const char *dir, const char *machine, const char *to)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char suffix[300];
    snprintf(suffix, sizeof(suffix), ".%s", machine);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, suffix))
            continue;
        char a[SIM_PATH], b[SIM_PATH];
        pathf(a, "%s/%s", dir, e->d_name);
        if (!is_file(a))
            continue;
        if (to) {
            pathf(b, "%s/%s", to, e->d_name);
            if (copy_file(a, b) != 0) {
                closedir(d);
                return -1;
            }
        }
        if (!strncmp(e->d_name, "starpipe_", 9))
            n++;
    }
    closedir(d);
    return n;
}

/* ---- platform files -------------------------------------------------------- */

/* Whether a platform file is well-formed XML holding what StarPU needs (a
 * version 4 platform with the hosts MAIN, RAM and CPU0). SimGrid's own
 * parser would stop the process on the first error with a trace; this says
 * which line is wrong instead. */
static int check_platform(const char *path, char *why, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "cannot read it (%s)", strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = size >= 0 && size < (64L << 20) ? malloc((size_t)size + 1) : NULL;
    if (!s || fread(s, 1, (size_t)size, f) != (size_t)size) {
        snprintf(why, cap, "cannot read it");
        free(s);
        fclose(f);
        return -1;
    }
    fclose(f);
    s[size] = '\0';
    char stack[64][64];
    int depth = 0, line = 1, roots = 0, rc = 0;
    int has_main = 0, has_ram = 0, has_cpu = 0, version4 = 0;
    for (char *p = s; *p && !rc; p++) {
        if (*p == '\n')
            line++;
        if (*p != '<')
            continue;
        char *end;
        if (!strncmp(p, "<!--", 4))
            end = strstr(p, "-->");
        else if (p[1] == '?' || p[1] == '!')
            end = strchr(p, '>');
        else
            end = strchr(p, '>');
        if (!end) {
            snprintf(why, cap, "line %d: a tag is never closed", line);
            rc = -1;
            break;
        }
        if (!strncmp(p, "<!--", 4) || p[1] == '?' || p[1] == '!') {
            for (char *q = p; q < end; q++)
                line += *q == '\n';
            p = end;
            continue;
        }
        int closing = p[1] == '/', selfclosing = end[-1] == '/';
        char name[64];
        const char *n0 = p + 1 + closing;
        size_t len = strcspn(n0, " \t\r\n/>");
        if (!len || len >= sizeof(name)) {
            snprintf(why, cap, "line %d: a tag without a name", line);
            rc = -1;
            break;
        }
        memcpy(name, n0, len);
        name[len] = '\0';
        char tag[1024];
        size_t tl = (size_t)(end - p) < sizeof(tag) - 1 ? (size_t)(end - p) : sizeof(tag) - 1;
        memcpy(tag, p, tl);
        tag[tl] = '\0';
        if (closing) {
            if (!depth || strcmp(stack[depth - 1], name)) {
                snprintf(why, cap, "line %d: </%s> closes %s%s%s", line, name, depth ? "<" : "nothing",
                         depth ? stack[depth - 1] : "", depth ? ">" : "");
                rc = -1;
            } else {
                depth--;
            }
        } else {
            if (!depth && ++roots > 1) {
                snprintf(why, cap, "line %d: a second root element <%s>", line, name);
                rc = -1;
            }
            if (!strcmp(name, "platform") && (strstr(tag, "version=\"4") || strstr(tag, "version='4")))
                version4 = 1;
            if (!strcmp(name, "host")) {
                has_main |= strstr(tag, "id=\"MAIN\"") != NULL;
                has_ram |= strstr(tag, "id=\"RAM\"") != NULL;
                has_cpu |= strstr(tag, "id=\"CPU0\"") != NULL;
            }
            if (!selfclosing) {
                if (depth == 64) {
                    snprintf(why, cap, "line %d: elements nested too deep", line);
                    rc = -1;
                } else {
                    snprintf(stack[depth++], sizeof(stack[0]), "%s", name);
                }
            }
        }
        for (char *q = p; q < end; q++)
            line += *q == '\n';
        p = end;
    }
    free(s);
    if (!rc && depth)
        snprintf(why, cap, "the file ends inside <%s>", stack[depth - 1]), rc = -1;
    else if (!rc && !roots)
        snprintf(why, cap, "no XML element in it"), rc = -1;
    else if (!rc && !version4)
        snprintf(why, cap, "not a SimGrid platform of version 4 (<platform version=\"4\">)"), rc = -1;
    else if (!rc && !(has_main && has_ram && has_cpu))
        snprintf(why, cap, "StarPU needs the hosts MAIN, RAM and CPU0 (missing:%s%s%s)", has_main ? "" : " MAIN",
                 has_ram ? "" : " RAM", has_cpu ? "" : " CPU0"),
            rc = -1;
    return rc;
}

/* ---- calibration runs ------------------------------------------------------- */

int sim_take_calibrate(int *argc, char **argv)
{
    for (int i = 1; i < *argc; i++) {
        const char *dir = NULL;
        int used = 0;
        if (!strcmp(argv[i], "--calibrate")) {
            if (i + 1 >= *argc)
                return usage_error("--calibrate needs a directory (a StarPU home for the perf models)");
            dir = argv[i + 1], used = 2;
        } else if (!strncmp(argv[i], "--calibrate=", 12)) {
            dir = argv[i] + 12, used = 1;
        }
        if (!dir)
            continue;
        if (sp_simulated()) {
            fprintf(stderr, "starpipe-sim: --calibrate needs a real run: use starpipe, not starpipe-sim\n");
            return 2;
        }
        if (!*dir || mkdirs(dir) != 0) {
            fprintf(stderr, "starpipe: --calibrate %s: cannot create the directory (%s)\n", dir, strerror(errno));
            return 1;
        }
        /* StarPU reads both at starpu_init: the models of this run go to DIR,
         * updated with every measurement */
        setenv("STARPU_HOME", dir, 1);
        setenv("STARPU_CALIBRATE", "1", 1);
        /* StarPU flushes an entry when a sample is off its mean by more than
         * 50%: on a shared machine that throws calibrations away; keep them
         * all (the mean over many samples is what the simulation needs) */
        setenv("STARPU_HISTORY_MAX_ERROR", "100000", 0);
        unsetenv("STARPU_PERF_MODEL_DIR");
        for (int j = i; j + used <= *argc; j++)
            argv[j] = argv[j + used];
        *argc -= used;
        i--;
    }
    return 0;
}

int sim_bench_asked(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--simulate"))
            return 1;
    return 0;
}

/* ---- simulate ----------------------------------------------------------------- */

/* starpipe-sim beside this program, or $STARPIPE_SIM, into out (SIM_PATH). */
static int find_sim(char *out)
{
    const char *env = getenv("STARPIPE_SIM");
    if (env && *env) {
        pathf(out, "%s", env);
        return access(out, X_OK);
    }
    char self[SIM_PATH];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    pathf(out, "%s/starpipe-sim", self);
    return access(out, X_OK);
}

int cmd_simulate(const char *sub, int argc, char **argv)
{
    const char *calibration = NULL, *machine = NULL, *platform = NULL;
    char **rest = calloc((size_t)argc + 3, sizeof(char *));
    int nrest = 0;
    if (!rest) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    rest[nrest++] = "starpipe-sim";
    rest[nrest++] = "--log=root.thres:warning"; /* SimGrid's own option (it takes it out): no INFO lines */
    rest[nrest++] = (char *)sub;
    static const char *names_[] = {"--calibration", "--machine", "--platform"};
    for (int i = 1; i < argc; i++) {
        const char **slots[] = {&calibration, &machine, &platform};
        const char **slot = NULL, *inline_value = NULL;
        for (int k = 0; k < 3 && !slot; k++) {
            size_t len = strlen(names_[k]);
            if (!strcmp(argv[i], names_[k]))
                slot = slots[k];
            else if (!strncmp(argv[i], names_[k], len) && argv[i][len] == '=')
                slot = slots[k], inline_value = argv[i] + len + 1;
        }
        if (slot && inline_value) {
            *slot = inline_value;
        } else if (slot) {
            if (i + 1 >= argc) {
                free(rest);
                return usage_error("%s needs a value", argv[i]);
            }
            *slot = argv[++i];
        } else if (!strcmp(argv[i], "--simulate")) {
            /* bench --simulate: the flag that brought us here */
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            simulate_usage(stdout);
            printf("\nand the options of 'starpipe %s' (see starpipe %s --help).\n", sub, sub);
            free(rest);
            return 0;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    rest[nrest] = NULL;
    int rc = 1;
    char sim[SIM_PATH], home[SIM_PATH] = "", bus[SIM_PATH], codelets[SIM_PATH], models[SIM_PATH], names[1024];
    char why[512], a[SIM_PATH], b[SIM_PATH], tmp[] = "/tmp/starpipe-sim-XXXXXX";
    int made_tmp = 0;
    if (sp_simulated()) {
        fprintf(stderr, "starpipe-sim: this is the simulating program already: run 'starpipe-sim %s' with the "
                        "environment 'starpipe simulate' sets, or 'starpipe simulate' itself\n", sub);
        rc = 2;
        goto out;
    }
    if (find_sim(sim) != 0) {
        fprintf(stderr, "starpipe: simulate: starpipe-sim was not built (it needs the SimGrid StarPU): run "
                        "'bash scripts/setup.sh --simgrid', then configure and build again "
                        "(cmake -S . -B build && cmake --build build)\n");
        goto out;
    }
    /* 1. the calibration: a StarPU home with a bus description and models */
    if (!calibration)
        calibration = getenv("STARPU_HOME") ? getenv("STARPU_HOME") : getenv("HOME");
    if (!calibration || !is_dir(calibration)) {
        fprintf(stderr, "starpipe: simulate: calibration directory '%s' does not exist; record one with a real run: "
                        "starpipe %s --calibrate DIR [options]\n", calibration ? calibration : "(none)", sub);
        goto out;
    }
    pathf(bus, "%s/.starpu/sampling/bus", calibration);
    pathf(codelets, "%s/.starpu/sampling/codelets", calibration);
    int nmachines = list_machines(bus, names, sizeof(names));
    if (!nmachines || model_dir(codelets, models) != 0) {
        fprintf(stderr, "starpipe: simulate: '%s' holds no StarPU calibration (no .starpu/sampling/bus/*.platform.v4.xml "
                        "and .starpu/sampling/codelets/): not a StarPU home a real run used; record one with: "
                        "starpipe %s --calibrate %s [options]\n", calibration, sub, calibration);
        goto out;
    }
    /* 2. the machine: one the calibration holds, with bus figures and models */
    char only[256];
    if (!machine) {
        if (nmachines > 1) {
            fprintf(stderr, "starpipe: simulate: '%s' holds several machines (%s): choose one with --machine\n",
                    calibration, names);
            goto out;
        }
        snprintf(only, sizeof(only), "%s", names);
        machine = only;
    }
    static const char *bus_files[] = {"platform.v4.xml", "config", "bandwidth", "latency"};
    for (size_t i = 0; i < sizeof(bus_files) / sizeof(*bus_files); i++) {
        pathf(a, "%s/%s.%s", bus, machine, bus_files[i]);
        if (!is_file(a)) {
            fprintf(stderr, "starpipe: simulate: '%s' has no calibration of machine '%s' (%s is missing); it holds: %s\n",
                    calibration, machine, a, names);
            goto out;
        }
    }
    if (models_of(models, machine, NULL) <= 0) {
        fprintf(stderr, "starpipe: simulate: '%s' has no starpipe perf models recorded on '%s' (%s/starpipe_*.%s): "
                        "calibrate with a real run: starpipe %s --calibrate %s [options]\n",
                calibration, machine, models, machine, sub, calibration);
        goto out;
    }
    /* 3. the platform: the machine's own, or the one given */
    if (platform && check_platform(platform, why, sizeof(why)) != 0) {
        fprintf(stderr, "starpipe: simulate: platform file '%s' does not parse: %s\n", platform, why);
        goto out;
    }
    /* 4. a private StarPU home: the simulation reads copies, never the calibration */
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "starpipe: simulate: cannot create a directory in /tmp (%s)\n", strerror(errno));
        goto out;
    }
    made_tmp = 1;
    pathf(home, "%s", tmp);
    const char *version = strrchr(models, '/') + 1;
    pathf(a, "%s/.starpu/sampling/bus", home);
    pathf(b, "%s/.starpu/sampling/codelets/%s", home, version);
    if (mkdirs(a) != 0 || mkdirs(b) != 0 || models_of(models, machine, b) < 0) {
        fprintf(stderr, "starpipe: simulate: cannot copy the calibration into %s\n", home);
        goto out;
    }
    static const char *copied[] = {"config", "bandwidth", "latency", "affinity", "platform.xml", "platform.v4.xml"};
    for (size_t i = 0; i < sizeof(copied) / sizeof(*copied); i++) {
        char from[SIM_PATH], to[SIM_PATH];
        const int is_platform = !strcmp(copied[i], "platform.v4.xml");
        pathf(from, "%s/%s.%s", bus, machine, copied[i]);
        pathf(to, "%s/%s.%s", a, machine, copied[i]);
        if (is_platform && platform)
            pathf(from, "%s", platform);
        if (is_file(from) && copy_file(from, to) != 0) {
            fprintf(stderr, "starpipe: simulate: cannot copy %s into %s\n", from, home);
            goto out;
        }
    }
    /* 5. run starpipe-sim there, on the calibrated machine's models */
    setenv("STARPU_HOME", home, 1);
    setenv("STARPU_HOSTNAME", machine, 1);
    setenv("STARPU_CALIBRATE", "0", 1);
    if (!getenv("STARPU_PERF_MODEL_HOMOGENEOUS_CUDA")) /* N simulated GPUs of the one calibrated kind */
        setenv("STARPU_PERF_MODEL_HOMOGENEOUS_CUDA", "1", 1);
    unsetenv("STARPU_PERF_MODEL_DIR");
    unsetenv("STARPU_PERF_MODEL_PATH");
    fprintf(stderr, "starpipe: simulating (StarPU + SimGrid) machine '%s' from calibration '%s'%s%s: times are "
                    "simulated; losses, accuracies and checksums are not computed\n",
            machine, calibration, platform ? ", platform " : "", platform ? platform : "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "starpipe: simulate: fork failed (%s)\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        execv(sim, rest);
        fprintf(stderr, "starpipe: simulate: cannot run %s (%s)\n", sim, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
    } else {
        fprintf(stderr, "starpipe: simulate: starpipe-sim ended by signal %d\n", WTERMSIG(status));
        rc = 1;
    }
out:
    if (made_tmp)
        remove_tree(tmp);
    free(rest);
    return rc;
}

int cmd_simulate_train(int argc, char **argv) { return cmd_simulate("train", argc, argv); }
