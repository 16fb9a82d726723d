/* exec: a new process in a running (or created) container, as tomato.runtime.exec
 * and tomato.cli.runtime.cmd_exec do it, for the ordinary case.
 *
 * Ordinary is what containerd's shim sends (`exec --process F --detach --pid-file P
 * [--console-socket S]`) and `exec ID cmd...` with runc's common flags (-d, -t with
 * --console-socket, -e, --cwd, -u UID[:GID], -g, --cap, --no-new-privs, --preserve-fds):
 * a created or running container without a user namespace, cgroupfs records, root
 * with the capabilities it hands out, a process.json whose every member is understood,
 * and, for a seccomp profile, the program create left in ROOT/<id>/seccomp.bpf (this
 * code never compiles a profile).  Anything else -- and almost every error, so the
 * words stay Python's -- is handed to Python before anything was changed.
 *
 * The steps are exec.py's, in its security order: the record and its true status; the
 * process; the namespace fds and /proc/PID/root; the pid (and time) namespace joined
 * for the one fork only; the child (exec_child.c) waits until the parent has moved it
 * into every cgroup of the record, then enters the container and execs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "front.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define MAX_NS 8

/* exec.py's join order (user first is Python's: a user namespace goes there). */
static const struct {
    const char *kind, *proc_name;
    int flag;
} NAMESPACES[] = {
    {"ipc", "ipc", CLONE_NEWIPC},         {"uts", "uts", CLONE_NEWUTS},
    {"network", "net", CLONE_NEWNET},     {"cgroup", "cgroup", CLONE_NEWCGROUP},
    {"mount", "mnt", CLONE_NEWNS},        {NULL, NULL, 0},
};

/* ---- exec's flags (cli.runtime._exec_flags), as cli.flags.parse reads them ---- */

struct exec_flags {
    const char *process, *pid_file, *console_socket, *cwd, *user, *preserve_fds;
    int detach, tty, no_new_privs;
    const char *env[MAX_ARGS], *cap[MAX_ARGS], *gid[MAX_GIDS];
    int nenv, ncap, ngid;
    char **pos;
    int npos;
};

static int named(const char *name, size_t n, const char *flag) {
    return flag && strlen(flag) == n && strncmp(name, flag, n) == 0;
}

/* 0, or -1 for anything Python words or does (unknown flags, --cgroup, labels...). */
static int parse_flags(int argc, char **argv, struct exec_flags *f) {
    memset(f, 0, sizeof *f);
    int i = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || strcmp(arg, "-") == 0)
            break;
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        if (name[0] == '-' || name[0] == '=' || name[0] == '\0')
            return -1;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
#define IS(long_, short_) (named(name, n, long_) || named(name, n, short_))
        int *boolean = IS("detach", "d") ? &f->detach : IS("tty", "t") ? &f->tty
                       : IS("no-new-privs", NULL) ? &f->no_new_privs : NULL;
        int ignored = IS("ignore-paused", NULL);
        if (boolean || ignored) {
            int on = 1;
            if (eq) {
                if (strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "1") == 0)
                    on = 1;
                else if (strcmp(eq + 1, "false") == 0 || strcmp(eq + 1, "0") == 0)
                    on = 0;
                else
                    return -1;
            }
            if (boolean)
                *boolean = on;
            continue;
        }
        const char **value = IS("process", "p") ? &f->process
                             : IS("pid-file", NULL) ? &f->pid_file
                             : IS("console-socket", NULL) ? &f->console_socket
                             : IS("cwd", NULL) ? &f->cwd
                             : IS("user", "u") ? &f->user
                             : IS("preserve-fds", NULL) ? &f->preserve_fds : NULL;
        int multi = IS("env", "e") ? 1 : IS("cap", "c") ? 2 : IS("additional-gids", "g") ? 3 : 0;
#undef IS
        if (!value && !multi)
            return -1; /* unknown, or one Python's alone: --cgroup, --apparmor, -g... */
        const char *v;
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc)
                return -1;
            v = argv[++i];
        }
        if (value) {
            *value = v;
        } else if (multi == 1) {
            if (f->nenv >= MAX_ARGS)
                return -1;
            f->env[f->nenv++] = v;
        } else if (multi == 2) {
            if (f->ncap >= MAX_ARGS)
                return -1;
            f->cap[f->ncap++] = v;
        } else {
            if (f->ngid >= MAX_GIDS)
                return -1;
            f->gid[f->ngid++] = v;
        }
    }
    f->pos = argv + i;
    f->npos = argc - i;
    return 0;
}

/* A decimal in [0, max]; -1 otherwise. */
static long long decimal(const char *s, long long max) {
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 12)
        return -1;
    long long v = strtoll(s, NULL, 10);
    return v <= max ? v : -1;
}

/* exec.build_process: the container's process BASE with exec's command and flags. */
static int build_process(const struct json *j, int base, const struct exec_flags *f,
                         struct exec_proc *p) {
    if (take_process(j, base, p, f->pos + 1, f->env, f->nenv) < 0)
        return -1;
    p->terminal = f->tty;
    if (f->cwd && *f->cwd) {
        if (f->cwd[0] != '/')
            return -1;
        p->cwd = f->cwd;
    }
    if (f->user && *f->user) { /* UID[:GID], as {"uid": UID, "gid": GID or 0} */
        const char *colon = strchr(f->user, ':');
        char uid[16] = "";
        if (!colon && strlen(f->user) < sizeof uid)
            snprintf(uid, sizeof uid, "%s", f->user);
        else if (colon && (size_t)(colon - f->user) < sizeof uid)
            snprintf(uid, sizeof uid, "%.*s", (int)(colon - f->user), f->user);
        long long u = decimal(uid, 0xFFFFFFFEll);
        long long g = colon && colon[1] ? decimal(colon + 1, 0xFFFFFFFEll) : 0;
        if (u < 0 || g < 0)
            return -1;
        p->uid = (uid_t)u;
        p->gid = (gid_t)g;
        p->umask = -1;
        p->ngids = 0;
    }
    if (f->ncap) { /* each --cap joins the bounding, effective, permitted and ambient sets */
        static struct json names; /* the flags' names, parsed as a JSON list */
        char *list = NULL;
        size_t len = 0, cap = 0;
        buf_put(&list, &len, &cap, "[", 1);
        for (int i = 0; i < f->ncap; i++) {
            if (i)
                buf_put(&list, &len, &cap, ",", 1);
            if (json_put_string(&list, &len, &cap, f->cap[i], 1) < 0)
                return -1;
        }
        buf_put(&list, &len, &cap, "]", 1);
        uint64_t add;
        if (!list || json_parse(list, len, &names) < 0 ||
            cap_set(&names, 0, p->last_cap, &add) < 0)
            return -1;
        p->has_caps = 1;
        p->caps.bounding |= add;
        p->caps.effective |= add;
        p->caps.permitted |= add;
        p->caps.ambient |= add;
    }
    if (f->no_new_privs)
        p->no_new_privs = 1;
    if (f->ngid) { /* -g: the user's additionalGids, replaced */
        for (int i = 0; i < f->ngid; i++) {
            long long g = decimal(f->gid[i], 0xFFFFFFFEll);
            if (g < 0)
                return -1;
            p->gids[i] = (gid_t)g;
        }
        p->ngids = f->ngid;
    }
    return 0;
}

/* ---- what this process may hand out ---- */

/* Root of the host's user namespace, with what the child will need; and whether it
 * can give CAPS (else capset's refusal is Python's to word). */
static int can_hand_out(const struct exec_proc *p, int holds_sys_admin) {
    size_t len;
    char *map = read_small("/proc/self/uid_map", 4096, &len);
    int initial = map && strcmp(map, "         0          0 4294967295\n") == 0;
    free(map);
    if (!initial)
        return 0;
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        return 0;
    uint64_t eff = data[0].effective | (uint64_t)data[1].effective << 32;
    uint64_t perm = data[0].permitted | (uint64_t)data[1].permitted << 32;
    uint64_t needed = 1ULL << CAP_SETPCAP | 1ULL << CAP_SYS_ADMIN | 1ULL << CAP_SETUID |
                      1ULL << CAP_SETGID | 1ULL << CAP_SYS_CHROOT;
    if ((eff & needed) != needed)
        return 0;
    if (!p->has_caps)
        return 1;
    uint64_t want = p->caps.permitted | p->caps.effective;
    if (holds_sys_admin)
        want |= 1ULL << CAP_SYS_ADMIN;
    if ((p->caps.effective & ~p->caps.permitted) || (want & ~perm))
        return 0; /* caps.apply's refusals */
    for (int c = 0; c <= p->last_cap; c++) /* inheritable within our bounding set */
        if ((p->caps.inheritable >> c & 1) && prctl(PR_CAPBSET_READ, c) != 1)
            return 0;
    return 1;
}

/* ---- the container's config ---- */

struct container {
    int kinds[MAX_NS]; /* indexes into NAMESPACES */
    int nkinds, pid_ns, time_ns;
    int process;       /* config.process node or -1 */
    int seccomp;       /* linux.seccomp present */
};

static int read_config(const struct record *rec, struct container *c) {
    const struct json *j = &rec->js;
    memset(c, 0, sizeof *c);
    c->process = -1;
    if (rec->config < 0)
        return -1;
    int linux_ = json_get(j, rec->config, "linux");
    if (is_null(j, linux_) || j->n[linux_].type != J_OBJ)
        return -1;
    for (int k = 0; k < 2; k++) {
        int maps = json_get(j, linux_, k ? "gidMappings" : "uidMappings");
        if (!is_null(j, maps) && (j->n[maps].type != J_ARR || j->n[maps].child >= 0))
            return -1;
    }
    int list = json_get(j, linux_, "namespaces");
    if (!is_null(j, list)) {
        if (j->n[list].type != J_ARR)
            return -1;
        for (int e = j->n[list].child; e >= 0; e = j->n[e].next) {
            int t = j->n[e].type == J_OBJ ? json_get(j, e, "type") : -1;
            if (t < 0 || j->n[t].type != J_STR)
                return -1;
            const char *kind = j->n[t].s;
            if (strcmp(kind, "pid") == 0) {
                c->pid_ns = 1;
                continue;
            }
            if (strcmp(kind, "time") == 0) {
                c->time_ns = 1;
                continue;
            }
            int found = -1;
            for (int i = 0; NAMESPACES[i].kind; i++)
                if (strcmp(NAMESPACES[i].kind, kind) == 0)
                    found = i;
            if (found < 0) /* user (the two-pass join), or unknown: Python's */
                return -1;
            c->kinds[c->nkinds++] = found;
            if (c->nkinds >= MAX_NS)
                return -1;
        }
    }
    int seccomp = json_get(j, linux_, "seccomp");
    c->seccomp = !is_null(j, seccomp);
    int process = json_get(j, rec->config, "process");
    c->process = is_null(j, process) ? -1 : process;
    return 0;
}

/* ---- running it ---- */

static pid_t forward_to;

static void forward(int sig) {
    if (forward_to > 0)
        kill(forward_to, sig);
}

static void kill_child(pid_t pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int lower_fail(const char *prefix, int err) {
    char reason[256];
    snprintf(reason, sizeof reason, "%s", strerror(err));
    for (char *c = reason; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return fail("%s: %s", prefix, reason);
}

int verb_exec(const char *root, int argc, char **argv) {
    struct exec_flags f;
    if (parse_flags(argc, argv, &f) < 0)
        return ASK_PYTHON;
    long long preserve = f.preserve_fds ? decimal(f.preserve_fds, 4096) : 0;
    if (preserve < 0)
        return ASK_PYTHON;
    if (f.npos < 1 || !valid_id(f.pos[0]))
        return ASK_PYTHON;
    const char *id = f.pos[0];
    struct record rec;
    if (record_load(root, id, &rec) != 0)
        return ASK_PYTHON;
    const char *status = record_status(root, &rec);
    if (!status || (strcmp(status, "created") != 0 && strcmp(status, "running") != 0))
        return ASK_PYTHON;
    if (f.pid_file && *f.pid_file) { /* its directory must be there (else Python's words) */
        char *copy = strdup(f.pid_file), *slash = copy ? strrchr(copy, '/') : NULL;
        struct stat st;
        if (slash)
            *(slash == copy ? slash + 1 : slash) = '\0';
        int there = copy && stat(slash ? copy : ".", &st) == 0 && S_ISDIR(st.st_mode);
        free(copy);
        if (!there)
            return ASK_PYTHON;
    }
    struct container ct;
    if (read_config(&rec, &ct) < 0)
        return ASK_PYTHON;

    static struct exec_proc p;
    long long last_cap;
    if (read_int_file("/proc/sys/kernel/cap_last_cap", &last_cap) < 0 || last_cap < 0 ||
        last_cap > 63)
        return ASK_PYTHON;
    p.last_cap = (int)last_cap;
    p.preserve_fds = (int)preserve;
    p.container_pid = rec.pid;
    if (f.process) {
        size_t len;
        char *text = read_small(f.process, MAX_STATE_SIZE, &len);
        static struct json pj;
        if (!text || json_parse(text, len, &pj) < 0 || pj.n[0].type != J_OBJ ||
            take_process(&pj, 0, &p, NULL, NULL, 0) < 0)
            return ASK_PYTHON;
        /* as runc: without capabilities of its own it gets the container's */
        int base_caps = ct.process >= 0 ? json_get(&rec.js, ct.process, "capabilities") : -1;
        if (!p.has_caps && !is_null(&rec.js, base_caps) && take_caps(&rec.js, base_caps, &p) < 0)
            return ASK_PYTHON;
    } else {
        /* build_process: the container's process and the flags */
        if (f.npos < 2 || ct.process < 0 || build_process(&rec.js, ct.process, &f, &p) < 0)
            return ASK_PYTHON;
    }
    if (p.terminal && !f.console_socket)
        return ASK_PYTHON; /* the error, or a pty Python proxies */
    if (ct.seccomp && take_seccomp(root, id, &p) < 0)
        return ASK_PYTHON; /* no program left by create (an older tomato's, or warnings) */
    int seccomp = ct.seccomp && p.filter;
    int holds_sys_admin = seccomp && !p.no_new_privs && p.has_caps &&
                          !(p.caps.effective >> CAP_SYS_ADMIN & 1);
    if (!can_hand_out(&p, holds_sys_admin) || (rec.cg && !cg_ready_for_exec(rec.cg)))
        return ASK_PYTHON;

    /* The container's namespaces and root, opened while its init is pinned (exec.py's
     * _open_init): a pidfd taken once the start time matched the record's names that
     * very process, and if it can still be signalled after the opens, its pid was never
     * another's in between -- so nothing opened is a later process's (the host's
     * namespaces and root).  Gone, reused, or no pidfds: Python's to word. */
    int pin = (int)syscall(SYS_pidfd_open, (pid_t)rec.pid, 0);
    if (pin < 0 || proc_start_time(rec.pid) != rec.pid_start)
        return ASK_PYTHON;
    int ns_fds[MAX_NS], ns_types[MAX_NS], nns = 0;
    const char *ns_names[MAX_NS];
    for (int i = 0; NAMESPACES[i].kind; i++) {
        int wanted = 0;
        for (int k = 0; k < ct.nkinds; k++)
            wanted |= ct.kinds[k] == i;
        if (!wanted)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%lld/ns/%s", rec.pid, NAMESPACES[i].proc_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ASK_PYTHON;
        ns_types[nns] = NAMESPACES[i].flag;
        ns_names[nns] = NAMESPACES[i].proc_name;
        ns_fds[nns++] = fd;
    }
    /* pid and time namespaces apply to our children: joined for the one fork below */
    static const struct {
        const char *name;
        int flag;
    } FOR_CHILDREN[] = {{"pid", CLONE_NEWPID}, {"time", CLONE_NEWTIME}};
    int theirs[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        if (!(k == 0 ? ct.pid_ns : ct.time_ns))
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%lld/ns/%s", rec.pid, FOR_CHILDREN[k].name);
        if ((theirs[k] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            return ASK_PYTHON;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%lld/root", rec.pid);
    int root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return ASK_PYTHON;
    if (syscall(SYS_pidfd_send_signal, pin, 0, NULL, 0) < 0 && errno != EPERM)
        return ASK_PYTHON; /* it died meanwhile: its pid may be another's by now */
    close(pin);
    p.dmz = dmz_sealed(); /* the host's file: copied before anything is entered */
    if (p.dmz < 0)
        return ASK_PYTHON; /* Python says it is missing, and goes on without */
    int console = -1;
    if (f.console_socket) {
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        if (strlen(f.console_socket) >= sizeof addr.sun_path)
            return ASK_PYTHON;
        strcpy(addr.sun_path, f.console_socket);
        console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (console < 0 || connect(console, (struct sockaddr *)&addr, sizeof addr) < 0)
            return ASK_PYTHON; /* nothing was sent: Python connects again and words it */
    }
    /* No hand-over from here on. */
    commit_now();
    int err_pipe[2], go_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(go_pipe, O_CLOEXEC) < 0)
        return fail_os(errno, NULL), 255;

    /* The pid and time namespaces: joined for this one fork and left right after it,
     * so nothing else we fork is ever born in the container's. */
    int own[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        if (theirs[k] < 0)
            continue;
        char mine[64];
        snprintf(mine, sizeof mine, "/proc/self/ns/%s", FOR_CHILDREN[k].name);
        own[k] = open(mine, O_RDONLY | O_CLOEXEC);
        if (own[k] < 0 || setns(theirs[k], FOR_CHILDREN[k].flag) < 0) {
            int err = errno;
            for (int b = k; b >= 0; b--)
                if (own[b] >= 0 && setns(own[b], FOR_CHILDREN[b].flag) < 0)
                    _exit(1); /* cannot happen: our active namespace is always ours */
            if (own[k] >= 0) /* (else Python's words name /proc/self/ns/NAME too) */
                snprintf(mine, sizeof mine, "/proc/%lld/ns/%s", rec.pid, FOR_CHILDREN[k].name);
            return fail_os(err, mine), 255;
        }
        close(theirs[k]);
    }
    pid_t child = fork();
    int fork_err = errno;
    if (child == 0) {
        close(err_pipe[0]);
        close(go_pipe[1]);
        exec_child(&p, ns_fds, ns_types, ns_names, nns, root_fd, go_pipe[0], console,
                   err_pipe[1]);
    }
    for (int k = 1; k >= 0; k--) {
        if (own[k] >= 0 && setns(own[k], FOR_CHILDREN[k].flag) < 0) {
            if (child > 0)
                kill_child(child);
            fprintf(stderr, "tomato-runtime: cannot return to our own %s namespace: %s\n",
                    FOR_CHILDREN[k].name, strerror(errno));
            _exit(255); /* never go on inside the container's */
        }
        if (own[k] >= 0)
            close(own[k]);
    }
    if (child < 0)
        return fail_os(fork_err, NULL), 255;
    signal(SIGPIPE, SIG_IGN); /* a child already gone is an EPIPE here, as in Python */
    close(err_pipe[1]);
    close(go_pipe[0]);
    close(p.dmz);
    for (int i = 0; i < nns; i++)
        close(ns_fds[i]);
    close(root_fd);
    /* No primer here (main.c starts one only for a hand-over): this move comes ~1 ms
     * after our start, too soon for a primer's grace period to have passed, and a
     * primer's fork and reaping cost more than it saved (bench: isolated execs 11.7
     * ms median without, 14.6 with). */
    int moved = rec.cg ? cg_apply(rec.cg, child) : 0;
    if (moved < 0)
        kill_child(child); /* never a process left outside the container's cgroups */
    if (write(go_pipe[1], "1", 1) < 0) {
        /* the child is gone (killed above) */
    }
    close(go_pipe[1]);
    if (moved < 0)
        return 255;
    log_debug("exec: process %d joined container %s", (int)child, id);
    size_t got;
    char *failure = read_failure(err_pipe[0], &got); /* whole, as Python prints it */
    close(err_pipe[0]);
    if (got > 0) {
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        return fail("%s", failure ? failure : "unknown error"), 255;
    }
    free(failure);
    if (console >= 0)
        close(console);
    if (f.pid_file && *f.pid_file) { /* "" is no pid file, as Python's */
        int err = write_pid_file(f.pid_file, child);
        if (err < 0) {
            kill_child(child); /* as runc: not left running unaccounted for */
            char *prefix = NULL;
            if (asprintf(&prefix, "cannot write --pid-file %s", f.pid_file) < 0)
                prefix = NULL;
            return lower_fail(prefix ? prefix : "cannot write --pid-file", -err), 255;
        }
    }
    if (f.detach)
        return 0;
    /* runc exec's foreground: our signals go to the process; its status is ours */
    forward_to = child;
    struct sigaction sa = {.sa_handler = forward};
    sigemptyset(&sa.sa_mask);
    static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++)
        sigaction(FORWARDED[i], &sa, NULL);
    int wstatus;
    while (waitpid(child, &wstatus, 0) < 0)
        if (errno != EINTR)
            return fail_os(errno, NULL), 255;
    return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
}
