/*
 * atomic_file.c — the temporary-file, fsync, rename write (see
 * atomic_file.h). It does not decide what goes into the file, nor which MPI
 * rank writes it.
 */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void release(sp_atomic_file *a, int remove)
{
    if (remove && a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    a->tmp = NULL;
    a->f = NULL;
}

sp_status sp_atomic_file_open(sp_atomic_file *a, const char *path)
{
    memset(a, 0, sizeof(*a));
    a->path = path;
    const size_t n = strlen(path) + 16;
    if (!(a->tmp = malloc(n)))
        return sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(a->tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        sp_status s = sp_set_error(SP_ERR_IO, "%s: cannot create a temporary file beside it (%s)", path,
                                   strerror(errno));
        release(a, 0);
        return s;
    }
    /* mkstemp makes the file 0600; what we write gets the usual 0666 & ~umask */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0 || !(a->f = fdopen(fd, "w"))) {
        sp_status s = sp_set_error(SP_ERR_IO, "%s: cannot set up the temporary file %s (%s)", path, a->tmp,
                                   strerror(errno));
        close(fd);
        release(a, 1);
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

sp_status sp_atomic_file_commit(sp_atomic_file *a)
{
    sp_status s = a->s;
    errno = 0;
    if (s == SP_OK && (fflush(a->f) != 0 || ferror(a->f)))
        s = sp_set_error(SP_ERR_IO, "%s: write failed (%s)", a->path, strerror(errno ? errno : EIO));
    if (s == SP_OK && fsync(fileno(a->f)) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: fsync failed (%s)", a->path, strerror(errno));
    if (fclose(a->f) != 0 && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: close failed (%s)", a->path, strerror(errno));
    if (s == SP_OK && rename(a->tmp, a->path) != 0)
        s = sp_set_error(SP_ERR_IO, "%s: cannot rename the temporary file into place (%s)", a->path,
                         strerror(errno));
    if (s == SP_OK) { /* make the rename itself durable */
        char *dir_copy = strdup(a->path);
        int dfd = dir_copy ? open(dirname(dir_copy), O_RDONLY | O_DIRECTORY) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir_copy);
    }
    release(a, s != SP_OK);
    return s;
}

void sp_atomic_file_abort(sp_atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    release(a, 1);
}
