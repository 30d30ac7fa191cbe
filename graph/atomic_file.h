/*
 * atomic_file.h — a file that appears at its path only once it is complete:
 * written to a temporary file beside the path, flushed to the disk, then
 * renamed over it. On Linux the temporary file has no name until it is
 * complete (O_TMPFILE, then linkat), so a process killed mid-write (kill -9,
 * the OOM killer) leaves nothing; elsewhere it is "<path>.tmp.XXXXXX",
 * removed on every failure the process survives. Checkpoints and traces are written this way, so a reader
 * never sees half a file and a failed write leaves the old file as it was.
 * Not installed.
 *
 *     sp_atomic_file a;
 *     if ((s = sp_atomic_file_open(&a, path)) != SP_OK)
 *         return s;
 *     fprintf(a.f, ...);                 // or sp_atomic_file_write
 *     return sp_atomic_file_commit(&a);  // closes, renames or removes
 *
 * A path that exists must be a regular file, or a symbolic link to one: the
 * new file then replaces the file the link leads to (the link stays). A
 * directory, a device node, a FIFO, a socket or a dangling link is refused
 * (sp_output_path_check, public, says so before a run).
 *
 * It knows nothing of what the file holds.
 */
#ifndef SP_ATOMIC_FILE_H
#define SP_ATOMIC_FILE_H

#include "starpipe.h"

#include <stdio.h>

typedef struct sp_atomic_file {
    FILE *f;          /* write here (fprintf, fwrite, or sp_atomic_file_write) */
    char *tmp;        /* the temporary file's name: "<path>.tmp.XXXXXX" */
    int unnamed;      /* O_TMPFILE: tmp is given to the file only at commit */
    char *target;     /* where a symbolic link at path leads, else NULL */
    const char *path; /* the caller's, kept until commit or abort */
    sp_status s;      /* the first failure of sp_atomic_file_write */
} sp_atomic_file;

/* Creates the temporary file beside path with the usual permissions
 * (0666 & ~umask). On failure nothing is left behind. */
sp_status sp_atomic_file_open(sp_atomic_file *a, const char *path);
/* Writes n bytes; a failure is reported here and again by commit. */
sp_status sp_atomic_file_write(sp_atomic_file *a, const void *p, size_t n);
/* Flushes, fsyncs and closes the temporary file, renames it over path and
 * fsyncs the folder. On any failure (including an earlier write error) the
 * temporary file is removed and path is left as it was. Always releases a. */
sp_status sp_atomic_file_commit(sp_atomic_file *a);
/* Closes and removes the temporary file; path is left as it was. */
void sp_atomic_file_abort(sp_atomic_file *a);

#endif /* SP_ATOMIC_FILE_H */
