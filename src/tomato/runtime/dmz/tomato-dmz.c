/* tomato-dmz: the container's last execve, made from a sealed in-memory copy of us.
 *
 * CVE-2019-5736: until its final execve, the process that becomes the container's is
 * the runtime's own binary (the front end, or Python), so /proc/self/exe in it is a
 * host file.  A container whose program is "#!/proc/self/exe" (or /proc/self/exe
 * itself) has the kernel run that host binary inside the container, under the
 * container's loader and LD_PRELOAD, and its code can keep an fd of the file and
 * write it once the runtime exits.  runc answers with a sealed memfd clone of itself;
 * we answer at the one step that matters: the runtime execs this small static program
 * from a sealed memfd (runtime/dmz_exec.py, front/dmz.c), and it execs the container's
 * program.  /proc/self/exe is then the sealed copy (unwritable), and being static
 * nothing of the container's (loader, LD_PRELOAD) ever runs inside it.
 *
 *     tomato-dmz MODE FD EXECUTABLE ARG0 ARG1 ...
 *
 * Everything else (namespaces, cgroups, user, capabilities, no_new_privs, seccomp)
 * was done by the runtime before; we only exec.  If the execve fails, the words are
 * process.exec_failure's (execfail.c), told where the runtime would have told them:
 *   MODE "exec": written to FD (exec's error pipe), exit 126;
 *   MODE "init": written to FD (start.fifo) if it takes them, else to stderr as
 *               "tomato-runtime: WORDS", exit 127 for ENOENT, else 126.
 * FD is kept across our own execve only until we make it close-on-exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../front/execfail.h"

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv, char **envp) {
    /* Run any other way (the kernel starting us as an interpreter: a "#!/proc/self/exe"
     * script, or /proc/self/exe exec'd), we do nothing. */
    if (argc < 5 || (strcmp(argv[1], "exec") != 0 && strcmp(argv[1], "init") != 0))
        return 126;
    char *end;
    long fd = strtol(argv[2], &end, 10);
    if (*end || fd < -1 || fd > 1 << 30)
        return 126;
    if (fd >= 0)
        fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    execve(argv[3], argv + 4, envp);
    int err = errno;
    static char words[8192], line[8192 + 32];
    exec_failure_words(argv[3], err, words, sizeof words);
    if (strcmp(argv[1], "exec") == 0) {
        write_all((int)fd, words, strlen(words));
        return 126;
    }
    size_t n = strlen(words);
    if (fd < 0 || write_all((int)fd, words, n < 4096 ? n : 4096) < 0) {
        snprintf(line, sizeof line, "tomato-runtime: %s\n", words);
        write_all(2, line, strlen(line));
    }
    return err == ENOENT ? 127 : 126;
}
