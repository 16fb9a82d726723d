/* Priming the cgroup move, from the first microsecond of create/run/exec.
 *
 * Moving a task between cgroups takes a global percpu rwsem for writing, and
 * the first writer after a quiet spell waits for an RCU grace period (~8 ms
 * here) while holding cgroup_mutex, so a mkdir of a cgroup meanwhile waits too.
 * Later writers, for about one more grace period after the last one, do not
 * wait.  The Python runtime used to start such a write itself (cgroups.
 * prime_migration), but only after the interpreter's start and imports, and its
 * grace period then delayed the container's cgroup mkdirs.
 *
 * Here, before Python even starts, a small child re-joins its own cgroup
 * (`echo 0 > cgroup.procs`: it moves nowhere, nothing else is touched) every few
 * milliseconds, so the grace period passes during Python's start and the path
 * stays quick until the runtime has moved the container's init (or exec's
 * process) and tells the child to stop: a byte on a pipe.  The runtime finds
 * the pipe and the child in TOMATO_RUNTIME_PRIMER="PID FD" (runtime/primer.py)
 * and reaps the child; its death (the pipe's other end closing) or a deadline
 * also ends it.  Anything unexpected: no primer, and Python primes as before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "front.h"

#define PRIME_EVERY_MS 4
#define PRIME_AT_MOST_MS 2000

/* Our cgroup.procs in the v1 pids hierarchy, else in cgroup2 (detect.py's choice). */
static int own_procs_file(char *out, size_t size) {
    char want[16] = "", path[4096] = "", line[8192];
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        int pids = 0;
        for (char *t = strtok(c1 + 1, ","); t; t = strtok(NULL, ","))
            pids |= strcmp(t, "pids") == 0;
        if (pids || (!want[0] && strcmp(line, "0") == 0 && c2 == c1 + 1)) {
            snprintf(want, sizeof want, "%s", pids ? "pids" : "cgroup2");
            snprintf(path, sizeof path, "%s", c2 + 1);
        }
    }
    fclose(f);
    if (!want[0] || strchr(path, '\\'))
        return -1;
    f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
        char *field[6] = {0}, *save = NULL, *tok = strtok_r(line, " \n", &save);
        int n = 0;
        for (; tok && n < 6; tok = strtok_r(NULL, " \n", &save))
            field[n++] = tok;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " \n", &save);
        char *fstype = tok ? strtok_r(NULL, " \n", &save) : NULL;
        char *source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
        char *super = source ? strtok_r(NULL, " \n", &save) : NULL;
        if (n < 5 || !super || strchr(field[3], '\\') || strchr(field[4], '\\'))
            continue;
        int match = 0;
        if (strcmp(want, "cgroup2") == 0) {
            match = strcmp(fstype, "cgroup2") == 0;
        } else if (strcmp(fstype, "cgroup") == 0) {
            for (char *t = strtok(super, ","); t; t = strtok(NULL, ","))
                match |= strcmp(t, "pids") == 0;
        }
        if (!match)
            continue;
        const char *root = field[3], *rel = path;
        size_t rlen = strlen(root);
        if (strcmp(root, "/") != 0) {
            if (strncmp(path, root, rlen) != 0 || (path[rlen] != '/' && path[rlen] != '\0'))
                continue;
            rel = path + rlen;
        }
        if (snprintf(out, size, "%s%s/cgroup.procs", field[4], strcmp(rel, "/") == 0 ? "" : rel)
            < (int)size)
            found = 0;
    }
    fclose(f);
    return found;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keep_priming(const char *procs, int stop) {
    long long deadline = now_ms() + PRIME_AT_MOST_MS;
    while (now_ms() < deadline) {
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) < 0)
            _exit(0); /* not ours to move: nothing to prime */
        close(fd);
        struct pollfd p = {.fd = stop, .events = POLLIN};
        if (poll(&p, 1, PRIME_EVERY_MS) != 0)
            _exit(0); /* a byte (the move is done), the runtime gone, or an error */
    }
    _exit(0);
}

/* Start the primer and name it in the environment; nothing if anything is off.
 * MIN_FD: the lowest fd the runtime may be handed (past the ones it preserves). */
void start_primer(int min_fd) {
    char procs[4096];
    int fds[2];
    if (own_procs_file(procs, sizeof procs) < 0 || pipe2(fds, O_CLOEXEC) < 0)
        return;
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        /* Hold nothing of the caller's (a pipe it waits on to close, a console). */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 ||
            dup2(fds[0], 3) < 0)
            _exit(0);
        syscall(SYS_close_range, 4U, ~0U, 0U);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* it died before we asked to die with it */
            _exit(0);
        keep_priming(procs, 3);
    }
    close(fds[0]);
    int fd = fcntl(fds[1], F_DUPFD, min_fd); /* kept across exec, for Python */
    close(fds[1]);
    char value[64];
    snprintf(value, sizeof value, "%d %d", (int)pid, fd);
    if (fd < 0 || setenv("TOMATO_RUNTIME_PRIMER", value, 1) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (fd >= 0)
            close(fd);
    }
}
