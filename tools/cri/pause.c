/* The pod sandbox's process, as Kubernetes' pause: it holds the pod's network, IPC
 * and UTS namespaces (and, with a shared pid namespace, reaps the pod's orphans)
 * until it is told to stop.  SIGINT and SIGTERM end it with 0, as upstream's.
 *
 * Built static (cc -static -O2) by tests/helpers/cri.py and packed as the CRI
 * lane's sandbox image; nothing else is in that image. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("pause (tomato CRI lane)");
        return 0;
    }
    if (getpid() != 1)
        fputs("pause: warning: not pid 1\n", stderr);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return 1;
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        return 2;
    for (;;)
        pause();
}
