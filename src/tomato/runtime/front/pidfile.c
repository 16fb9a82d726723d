/* --pid-file of exec, create and run, as statedir.write_pid_file writes it: under a
 * temporary name beside it (PATH.PID.tmp), made with O_EXCL|O_NOFOLLOW -- whatever was
 * planted there (a symlink to a file of the host's) is never followed nor truncated:
 * EEXIST, as runc's O_EXCL -- mode 0666 less the umask (runc's), then renamed over
 * PATH; what we made is removed on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "front.h"

/* 0 or -errno */
int write_pid_file(const char *path, pid_t pid) {
    char *tmp = NULL, text[32];
    if (asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0)
        return -ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    int err = 0;
    if (fd < 0) {
        err = errno;
    } else {
        int n = snprintf(text, sizeof text, "%d", (int)pid);
        errno = 0;
        if (write(fd, text, (size_t)n) != n)
            err = errno ? errno : EIO;
        if (close(fd) < 0 && !err)
            err = errno;
        if (!err && rename(tmp, path) < 0)
            err = errno;
        if (err)
            unlink(tmp); /* ours: made above */
    }
    free(tmp);
    return -err;
}
