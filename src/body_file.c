/*
 * A 2xx body written to a file as it arrives (the body_file request
 * option): plain write(2), every byte checked, then fsync and close
 * checked too, so that a full disk is an error, never a short file that
 * passes for the whole body.
 */
#define _POSIX_C_SOURCE 200809L
#include "la_core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void la_body_file_init(la_body_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = path;
}

static int failed(la_body_file *f, const char *what, int error)
{
    if (!f->error) {
        f->error = error ? error : EIO;
        snprintf(f->message, sizeof f->message, "%s the body file: %s", what, strerror(f->error));
    }
    return -1;
}

static int open_file(la_body_file *f)
{
    if (!f->path || !f->path[0])
        return failed(f, "cannot open", ENOENT);
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
    if (f->fd < 0)
        return failed(f, "cannot open", errno);
    return 0;
}

int la_body_file_write(void *ud, const char *data, size_t len)
{
    la_body_file *f = ud;
    if (f->error || (f->fd < 0 && open_file(f) != 0))
        return -1;
    while (len > 0) {
        ssize_t n = write(f->fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return failed(f, "cannot write", errno);
        }
        if (n == 0)
            return failed(f, "cannot write", ENOSPC);
        data += n;
        len -= (size_t)n;
        f->bytes += (unsigned long long)n;
    }
    return 0;
}

int la_body_file_close(la_body_file *f, int create)
{
    int rc;
    if (f->fd < 0 && create && !f->error)
        open_file(f);  /* an empty body makes an empty file */
    rc = f->error ? -1 : 0;
    if (f->fd < 0)
        return rc;
    /* a regular file's delayed write errors (disk full, quota) show here;
     * a device or a pipe cannot be synced, which is no failure */
    if (!f->error && fsync(f->fd) != 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP)
        rc = failed(f, "cannot write", errno);
    if (close(f->fd) != 0 && !f->error && errno != EINTR)
        rc = failed(f, "cannot close", errno);
    f->fd = -1;
    return rc;
}
