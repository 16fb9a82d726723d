"""An LD_PRELOAD library for the CVE-2019-5736 tests (runtime's and engine's): its
constructor reports, in /report, the binary it woke up in (/proc/self/exe) and, from a
child that outlives the runtime by a second, whether that file could be written
(access(2) only: it never writes)."""

EVIL = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void woke(void) {
    unsetenv("LD_PRELOAD");
    int fd = open("/proc/self/exe", O_PATH);
    char link[64], target[512] = "";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if (readlink(link, target, sizeof target - 1) < 0)
        snprintf(target, sizeof target, "unreadable");
    FILE *out = fopen("/report", "a");
    if (out) {
        fprintf(out, "exe %s\n", target);
        fclose(out);
    }
    if (fork() == 0) {  /* outlive the runtime, keep the fd: could it be written? */
        sleep(1);
        FILE *again = fopen("/report", "a");
        if (again) {
            fprintf(again, "%s\n", access(link, W_OK) == 0 ? "WRITABLE" : "not writable");
            fclose(again);
        }
        _exit(0);
    }
    _exit(0);
}
"""
