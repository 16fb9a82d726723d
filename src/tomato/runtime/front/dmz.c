/* tomato-dmz from a sealed in-memory copy: the container's last execve (see
 * runtime/dmz/tomato-dmz.c for why, CVE-2019-5736; runtime/dmz_exec.py is Python's).
 *
 * The copy is made before anything of the container's is entered (the file is the
 * host's, out of reach after chroot) and sealed against writes; exec'ing it makes
 * /proc/self/exe the sealed copy, never a host file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

int dmz_sealed(void) {
    char *path = beside_launcher("tomato-dmz");
    int src = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    free(path);
    if (src < 0)
        return -1;
    struct stat st;
    int fd = fstat(src, &st) == 0 ? memfd_create("tomato-dmz", MFD_CLOEXEC | MFD_ALLOW_SEALING)
                                  : -1;
    off_t done = 0;
    while (fd >= 0 && done < st.st_size) {
        ssize_t sent = sendfile(fd, src, &done, (size_t)(st.st_size - done));
        if (sent <= 0) {
            close(fd);
            fd = -1;
        }
    }
    close(src);
    if (fd >= 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW |
                                              F_SEAL_WRITE) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

void dmz_execve(int dmz, const char *mode, int report_fd, const char *executable,
                char *const *args, char *const *env) {
    int n = 0;
    while (args[n])
        n++;
    char fd_text[16], self[32];
    snprintf(fd_text, sizeof fd_text, "%d", report_fd);
    const char *argv[n + 5];
    argv[0] = "tomato-dmz";
    argv[1] = mode;
    argv[2] = fd_text;
    argv[3] = executable;
    for (int i = 0; i <= n; i++)
        argv[4 + i] = args[i];
    if (report_fd >= 0)
        fcntl(report_fd, F_SETFD, 0); /* the dmz makes it close-on-exec again */
    execveat(dmz, "", (char *const *)argv, env, AT_EMPTY_PATH);
    snprintf(self, sizeof self, "/proc/self/fd/%d", dmz); /* a profile denying execveat */
    execve(self, (char *const *)argv, env);
}
