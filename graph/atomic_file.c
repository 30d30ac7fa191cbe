/*
 * atomic_file.c — the temporary-file, fsync, rename write (see
 * atomic_file.h), and what a path must be to be written that way. It does
 * not decide what goes into the file, nor which MPI rank writes it.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "atomic_file.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

/* Where the file at path really is: path itself when it does not exist or
 * is a regular file, the file a symbolic link leads to when that is a
 * regular file (*target gets it, malloc'd); anything else is refused. */
static sp_status resolve(const char *path, char **target)
{
    struct stat st;
    *target = NULL;
    if (!path || !*path)
        return sp_set_error(SP_ERR_INVALID_ARG, "output: empty path");
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return SP_OK; /* a new file: its folder is checked when it is created */
        return sp_set_error(SP_ERR_IO, "%s: cannot look at it (%s)", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        if (!real) {
            char to[4096];
            ssize_t n = readlink(path, to, sizeof(to) - 1);
            to[n > 0 ? n : 0] = '\0';
            return sp_set_error(SP_ERR_IO, "%s: a symbolic link to %s, which does not exist (or cannot be reached)",
                                path, to);
        }
        if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
            sp_status s = sp_set_error(SP_ERR_IO, "%s: a symbolic link to %s, which is not a regular file (%s)",
                                       path, real, kind_of(st.st_mode));
            free(real);
            return s;
        }
        *target = real;
        return SP_OK;
    }
    if (!S_ISREG(st.st_mode))
        return sp_set_error(SP_ERR_IO, "%s: exists and is not a regular file (%s); starpipe writes only regular "
                                       "files", path, kind_of(st.st_mode));
    return SP_OK;
}

sp_status sp_output_path_check(const char *path)
{
    sp_clear_error();
    char *target;
    sp_status s = resolve(path, &target);
    if (s != SP_OK)
        return s;
    char *copy = strdup(target ? target : path);
    if (!copy) {
        free(target);
        return sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    }
    const char *dir = dirname(copy);
    struct stat st;
    if (stat(dir, &st) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: the folder %s does not exist (%s)", path, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        s = sp_set_error(SP_ERR_IO, "%s: the folder %s is not a folder", path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: cannot write in the folder %s (%s)", path, dir, strerror(errno));
    free(copy);
    free(target);
    return s;
}

static void release(sp_atomic_file *a, int remove)
{
    if (remove && a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    free(a->target);
    a->tmp = a->target = NULL;
    a->f = NULL;
}

/* Linux: an unnamed file in dest's folder (O_TMPFILE), named only once it is
 * complete, so that a process killed while writing leaves nothing behind.
 * -1 where the file system or the kernel cannot, or /proc (which linkat
 * needs to name it) is not mounted. */
static int open_unnamed(const char *dest)
{
#if defined(O_TMPFILE)
    char *copy = strdup(dest);
    int fd = copy && access("/proc/self/fd", X_OK) == 0
                 ? open(dirname(copy), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666) /* 0666 & ~umask */
                 : -1;
    free(copy);
    return fd;
#else
    (void)dest;
    return -1;
#endif
}

sp_status sp_atomic_file_open(sp_atomic_file *a, const char *path)
{
    memset(a, 0, sizeof(*a));
    a->path = path;
    sp_status rs = resolve(path, &a->target);
    if (rs != SP_OK)
        return rs;
    const char *dest = a->target ? a->target : path;
    const size_t n = strlen(dest) + 16;
    if (!(a->tmp = malloc(n))) {
        release(a, 0);
        return sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(a->tmp, n, "%s.tmp.XXXXXX", dest);
    int fd = open_unnamed(dest);
    a->unnamed = fd >= 0;
    if (!a->unnamed) { /* a named temporary file, removed on failure (not if the process is killed) */
        if ((fd = mkstemp(a->tmp)) < 0) {
            sp_status s = sp_set_error(SP_ERR_IO, "%s: cannot create a temporary file beside it (%s)", path,
                                       strerror(errno));
            release(a, 0);
            return s;
        }
        /* mkstemp makes the file 0600; what we write gets the usual 0666 & ~umask */
        mode_t um = umask(0);
        umask(um);
        if (fchmod(fd, 0666 & ~um) != 0) {
            sp_status s = sp_set_error(SP_ERR_IO, "%s: cannot set up the temporary file %s (%s)", path, a->tmp,
                                       strerror(errno));
            close(fd);
            release(a, 1);
            return s;
        }
    }
    if (!(a->f = fdopen(fd, "w"))) {
        sp_status s = sp_set_error(SP_ERR_IO, "%s: cannot set up the temporary file (%s)", path, strerror(errno));
        close(fd);
        release(a, !a->unnamed);
        return s;
    }
    return SP_OK;
}

sp_status sp_atomic_file_write(sp_atomic_file *a, const void *p, size_t n)
{
    errno = 0;
    if (a->s == SP_OK && n && fwrite(p, 1, n, a->f) != n)
        a->s = sp_set_error(SP_ERR_IO, "%s: write failed (%s)", a->path, strerror(errno ? errno : EIO));
    return a->s;
}

/* Gives the complete unnamed file the name a->tmp (a fresh one each try):
 * from here to the rename it has a name, for a moment. */
static int name_unnamed(sp_atomic_file *a)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fileno(a->f));
    const size_t len = strlen(a->tmp);
    for (int tries = 0; tries < 100; tries++) {
        char *x = a->tmp + len - 6;
        uint64_t r = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)a ^ (uint64_t)tries * 0xbf58476d1ce4e5b9ULL;
        for (int i = 0; i < 6; i++, r /= 62)
            x[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[r % 62];
        if (linkat(AT_FDCWD, proc, AT_FDCWD, a->tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

sp_status sp_atomic_file_commit(sp_atomic_file *a)
{
    sp_status s = a->s;
    errno = 0;
    if (s == SP_OK && (fflush(a->f) != 0 || ferror(a->f)))
        s = sp_set_error(SP_ERR_IO, "%s: write failed (%s)", a->path, strerror(errno ? errno : EIO));
    if (s == SP_OK && fsync(fileno(a->f)) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: fsync failed (%s)", a->path, strerror(errno));
    int named = !a->unnamed;
    if (s == SP_OK && !named) {
        if (name_unnamed(a) == 0)
            named = 1;
        else
            s = sp_set_error(SP_ERR_IO, "%s: cannot name the complete temporary file (%s)", a->path, strerror(errno));
    }
    if (fclose(a->f) != 0 && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: close failed (%s)", a->path, strerror(errno));
    const char *dest = a->target ? a->target : a->path;
    if (s == SP_OK && rename(a->tmp, dest) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: cannot rename the temporary file into place (%s)", a->path,
                         strerror(errno));
    if (s == SP_OK) { /* make the rename itself durable */
        char *dir_copy = strdup(dest);
        int dfd = dir_copy ? open(dirname(dir_copy), O_RDONLY | O_DIRECTORY) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir_copy);
    }
    release(a, s != SP_OK && named);
    return s;
}

void sp_atomic_file_abort(sp_atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    release(a, !a->unnamed);
}
