/* init.c: the container's init in C, from clone to execve (create.h; create.c clones us).
 *
 * runtime/init.py's and rootfs.py's order, for the configs create_check.c calls ordinary
 * (a mount namespace of our own, no user namespace, no hooks, pivot_root):
 *
 *   'G' from the runtime (we are in our cgroups) -> not dumpable -> setsid
 *   -> setns into the namespaces given by path -> (cgroup v2: unshare the cgroup ns)
 *   -> hostname, domainname -> the mounts (rootfs.mount_all: "/" slave or the spec's
 *   propagation, the rootfs's parent mount private, the rootfs bound on itself, each
 *   spec mount through an O_PATH fd checked to be inside the rootfs, /dev's devices)
 *   -> (cgroup v1: unshare the cgroup ns) -> the cwd made -> pivot_root -> sysctls,
 *   masked and read-only paths, read-only tmpfs and /dev, the root's propagation,
 *   read-only root -> the process's last steps (exec_child.c: pty ... no_new_privs)
 *   -> 'R' -> one byte on exec.fifo from `start` -> signals, seccomp -> tomato-dmz.
 *
 * Errors are Python's words (init.describe of what rootfs.py would raise), sent as one
 * 'E' packet; then exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "create.h"

#define die child_die
#define die_os child_die_os
#define die_path child_die_path

static const struct init_config *cfg;

/* ---- the init ---- */

static void send_packet(char kind) {
    if (send(cfg->sync_fd, &kind, 1, MSG_NOSIGNAL) < 0)
        _exit(1); /* the runtime is gone */
}

/* 'G' from the runtime; anything else (its death: EOF) ends us before anything */
static void await_go(void) {
    char kind = 0;
    ssize_t got;
    while ((got = recv(cfg->sync_fd, &kind, 1, 0)) < 0 && errno == EINTR)
        ;
    if (got != 1 || kind != 'G')
        _exit(1);
}

/* mkdir_all_in_root of the process's cwd (as runc makes it) */
static void make_cwd(const char *rootfs, const char *cwd) {
    char host[PATH_MAX];
    char low[256];
    if (resolve_in_root(rootfs, cwd, 0, host, sizeof host) < 0 ||
        make_dirs_in(rootfs, host, 0755) < 0)
        die("%s: cannot create it: %s", cwd, lower(strerror(errno), low, sizeof low));
    if (!real_within(rootfs, host))
        die("%s: path escapes the root", cwd);
}

void container_init_c(struct init_config *c) {
    cfg = c;
    child_reports_to(c->sync_fd, 1);
    prctl(PR_SET_NAME, "tomato-init", 0, 0, 0); /* until execve, as runc's "runc:[2:INIT]" */
    await_go();
    /* Until execve this process is the runtime's: nothing that joins the container may
     * open /proc/<us>/exe or ptrace us (CVE-2019-5736). */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        die_os(errno);
    if (setsid() < 0)
        die_os(errno);
    for (int i = 0; i < c->njoined; i++) {
        int fd = open(c->joined[i].path, O_RDONLY | O_CLOEXEC);
        char low[256];
        if (fd < 0)
            die("%s: cannot open %s namespace: %s", c->joined[i].path, c->joined[i].kind,
                lower(strerror(errno), low, sizeof low));
        if (setns(fd, c->joined[i].flag) < 0)
            die_path(errno, c->joined[i].path);
        close(fd);
    }
    /* a cgroup2 mount must be made inside the new cgroup namespace; the runtime placed us
     * in our cgroups before 'G' */
    if (c->cgroup_unified && c->new_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
        die_os(errno);
    if (c->hostname && c->hostname[0] && sethostname(c->hostname, strlen(c->hostname)) < 0)
        die_os(errno);
    if (c->domainname && c->domainname[0] &&
        setdomainname(c->domainname, strlen(c->domainname)) < 0)
        die_os(errno);
    struct later later[c->nmounts + 1];
    int nlater = init_mount_all(c, later);
    if (!c->cgroup_unified && c->new_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
        die_os(errno);
    make_cwd(c->rootfs, c->proc.cwd);
    init_pivot_root();
    init_after_pivot(c, later, nlater);

    struct prepared ready;
    process_prepare(&c->proc, c->console_fd, &ready);
    send_packet('R');
    /* until `start` writes a byte to exec.fifo (or run does) */
    char byte;
    ssize_t got;
    while ((got = read(c->fifo_fd, &byte, 1)) < 0 && errno == EINTR)
        ;
    close(c->fifo_fd);
    if (got != 1)
        _exit(1);
    close(c->sync_fd);
    child_reports_to(2, INIT_STARTED); /* from here, as Python's init: on stderr */
    process_exec(&c->proc, &ready, "init", -1);
}
