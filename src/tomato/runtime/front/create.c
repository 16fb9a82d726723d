/* create.c: `create` and `run` in C, the runtime's side (see create.h), for the configs
 * create_check.c calls ordinary; runtime/create.py's order, step for step.
 *
 * Before the first change (the state directory) anything unexpected -- an error Python
 * words, a value it would warn about, no sealed dmz -- returns ASK_PYTHON, and Python
 * answers the whole command.  From the state directory on, a failure rolls back what was
 * made, in reverse (the init killed and reaped, its cgroups, the state directory), and
 * fails with Python's words and exit code.
 *
 * state.json is written as statedir.StateDir.save writes it (temp 0600 + rename), with
 * json.dumps' text of the record (docs/runtime.md), at Python's three points: reserved
 * with its cgroup record before the cgroups exist, with the init's pid, and "created".
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
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "create_runtime.h"

const char *create_why = NULL;

/* ---- after the first change ---- */

struct made {
    struct create_state *s;
    struct cgroup_rec *cg;   /* the cgroups, once made (or half made) */
    pid_t pid;               /* the init, once cloned */
};

/* SIGINT, SIGTERM or SIGHUP while things are made: everything is rolled back, as
 * Python's Undo does on KeyboardInterrupt, before we go (130 for SIGINT, as Python's
 * CLI; else the signal's own death). */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) {
    stop_signal = sig;
}

static void undo(struct made *m);

static int interrupted(struct made *m) {
    undo(m);
    char *why = failure_take();
    free(why);
    if (stop_signal != SIGINT) {
        signal(stop_signal, SIG_DFL);
        raise(stop_signal);
    }
    return 130;
}

#define STOPPED_YET(m) do { if (stop_signal) return interrupted(m); } while (0)

static void undo(struct made *m) {
    if (m->pid > 0) {
        kill(m->pid, SIGKILL);
        while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (m->cg)
        cg_destroy(m->cg);
    remove_state_dir(m->s->root, m->s->id);
}

/* Roll back in reverse (create.py's Undo), keeping the failure's words. */
static int roll_back(struct made *m) {
    if (stop_signal)
        return interrupted(m);
    char *why = failure_copy();
    undo(m);
    fail("%s", why ? why : "unknown error");
    free(why);
    return 1;
}

/* The plan's record, for cgroup.c's apply and destroy. */
static struct cgroup_rec *cgroup_rec_of(const struct cg_plan *p, const char *id) {
    static struct record rec;
    memset(&rec, 0, sizeof rec);
    char *text = cg_plan_json(p, id);
    if (!text || json_parse(text, strlen(text), &rec.js) < 0 || cgroup_from_state(&rec, 0) < 0)
        return NULL;
    return rec.cg;
}

/* console.connect: the caller's unix socket, which gets the pty's master */
static int connect_console(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* process.set_oom_score_adj */
static int set_oom_score_adj(pid_t pid, const struct json *j, int process) {
    int v = json_get(j, process, "oomScoreAdj");
    if (absent(j, v))
        return 0;
    char path[64], value[32];
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)pid);
    snprintf(value, sizeof value, "%lld", j->n[v].i);
    int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;
    if (fd < 0 || write(fd, value, strlen(value)) < 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    if (err == EPERM || err == EACCES)
        log_warning("oomScoreAdj %s not permitted here (needs CAP_SYS_RESOURCE); left unchanged",
                    value);
    else if (err)
        return fail("oomScoreAdj %s: %s", value, strerror(err));
    return 0;
}

/* _await_ready: 'W' warnings logged, 'E' or EOF fails, 'R' ready. */
static int await_ready(int fd) {
    static char msg[65536];
    for (;;) {
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        if (n < 0 && errno == EINTR && stop_signal)
            return fail("interrupted");
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("container init exited before it was ready");
        msg[n] = '\0';
        if (msg[0] == 'R')
            return 0;
        if (msg[0] == 'W')
            log_warning("%s", msg + 1);
        else if (msg[0] == 'E')
            return fail("%s", n > 1 ? msg + 1 : "container init failed");
    }
}

static pid_t forward_to;

static void forward(int sig) {
    if (forward_to > 0)
        kill(forward_to, sig);
}

/* run after create: lifecycle.start, waiting.wait_for, lifecycle.delete (cmd_run) */
static int run_started(struct create_state *s, const struct create_flags *f) {
    static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    forward_to = (pid_t)s->pid;
    struct sigaction sa = {.sa_handler = forward};
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++)
        sigaction(FORWARDED[i], &sa, NULL);
    char *delete_args[] = {"--force", (char *)s->id, NULL};
    char *fifo = NULL;
    if (asprintf(&fifo, "%s/exec.fifo", s->dir) < 0)
        return fail_os(ENOMEM, NULL), 1;
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC), err = 0;
    if (fd < 0)
        err = errno;
    else if (write(fd, "0", 1) < 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    if (!err && unlink(fifo) < 0)
        err = errno;
    if (!err) {
        s->status = "running";
        if (record_save(s) < 0)
            err = -1;
    }
    if (err) {
        char *why = NULL;
        if (err == ENXIO)
            fail("container %s init is not waiting to start", s->id);
        else if (err > 0)
            fail_os(err, fifo);
        why = failure_copy();
        verb_delete(s->root, 2, delete_args);
        fail("%s", why);
        free(why);
        return 1;
    }
    log_debug("start: container %s started (pid %lld)", s->id, s->pid);
    if (f->detach)
        return 0;
    int status = 0;
    while (waitpid((pid_t)s->pid, &status, 0) < 0)
        if (errno != EINTR)
            return fail_os(errno, NULL), 1;
    int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (!f->keep && verb_delete(s->root, 2, delete_args) != 0)
        return 1;
    return code;
}

int create_in_c(const char *root, const struct create_flags *f, const struct json *j,
                int last_cap, int is_run) {
    /* ---- everything checked and parsed before anything is made ---- */
    static struct init_config c;
    static struct create_state s;
    static struct cg_plan plan;
    static struct cg_res res;
    memset(&s, 0, sizeof s);
    int lx = -1, process = -1, clone_flags = 0, pid_ns = -1;
    const char *pid_ns_path = NULL;
    struct config_extra x;
    if (create_config(j, f, last_cap, &c, &x) != 0)
        return ASK_PYTHON; /* (it said why) */
    lx = x.linux_;
    process = x.process;
    clone_flags = x.clone_flags;
    pid_ns = x.pid_ns;
    pid_ns_path = x.pid_ns_path;
    const char *bundle = x.bundle, *real = c.rootfs;
    if (cg_plan_new(lx < 0 ? "" : str_or(j, lx, "cgroupsPath", ""), f->id, &plan) != 0 ||
        cg_plan_check(j, lx < 0 ? -1 : json_get(j, lx, "resources"),
                      lx < 0 ? -1 : json_get(j, lx, "devices"), &plan, &res) != 0)
        return ASK_PYTHON; /* (they said why) */
    int annotations = json_get(j, 0, "annotations");
    s.annotations = absent(j, annotations) ? strdup("{}") : json_dumps_py(j, annotations);
    s.config = json_dumps_py(j, 0);
    s.cgroup = cg_plan_json(&plan, f->id);
    int profile = lx < 0 ? -1 : json_get(j, lx, "seccomp");
    if (!absent(j, profile) && seccomp_from_cache(root, j, profile, &c.proc) < 0)
        return PYTHONS("linux.seccomp (not compiled yet)");
    int dmz = dmz_sealed();
    if (dmz < 0)
        return PYTHONS("no tomato-dmz to seal"); /* Python warns (dmz_exec.MISSING) */
    c.proc.dmz = dmz;
    c.console_fd = -1;

    /* ---- the point of no return: the state directory ---- */
    commit_now();
    struct sigaction stop = {.sa_handler = on_stop}; /* (no SA_RESTART: recv returns) */
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGHUP, &stop, NULL);
    s.root = root;
    s.id = f->id;
    s.bundle = bundle;
    s.rootfs = real;
    s.no_pivot = f->no_pivot;
    s.status = "creating";
    s.creator_pid = getpid();
    s.creator_start = proc_start_time(s.creator_pid);
    char *dir = state_dir(root, f->id);
    s.dir = dir;
    /* statedir.reserve: os.makedirs(root, 0o711, exist_ok=True), then mkdir ROOT/<id> */
    char *walk = strdup(root);
    for (char *p = walk + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char save_c = *p;
            *p = '\0';
            if (mkdir(walk, save_c ? 0777 : 0711) < 0 && errno != EEXIST)
                return fail_os(errno, walk), 1;
            *p = save_c;
            if (!save_c)
                break;
        }
    }
    free(walk);
    if (mkdir(dir, 0711) < 0) {
        if (errno == EEXIST)
            return fail("container with id %s already exists", f->id), 1;
        return fail_os(errno, dir), 1;
    }
    struct made m = {.s = &s};
    now_rfc3339(s.created, sizeof s.created);
    if (record_save(&s) < 0)
        return roll_back(&m);
    if (!absent(j, profile)) /* for the front end's exec (front/exec.c), as create.py */
        seccomp_save_for_exec(dir, &c.proc);
    STOPPED_YET(&m);
    char *fifo = NULL;
    if (asprintf(&fifo, "%s/exec.fifo", dir) < 0 || mkfifo(fifo, 0622) < 0)
        return fail_os(errno, fifo), roll_back(&m);
    int r = cg_plan_create(&plan);
    m.cg = cgroup_rec_of(&plan, f->id);
    if (!m.cg)
        return fail("cannot record cgroup %s", plan.dirs[0]), roll_back(&m);
    if (r < 0 || cg_plan_set(&plan, &res) < 0)
        return roll_back(&m);
    free(s.cgroup);
    s.cgroup = cg_plan_json(&plan, f->id);
    STOPPED_YET(&m);
    cg_plan_mount_dirs(&plan, &c);
    if (c.proc.terminal && f->console_socket) {
        c.console_fd = connect_console(f->console_socket);
        if (c.console_fd < 0)
            return fail("cannot connect to console socket %s: %s", f->console_socket,
                        strerror(errno)), roll_back(&m);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return fail_os(errno, NULL), roll_back(&m);
    c.sync_fd = sv[1];
    c.fifo_fd = open(fifo, O_RDWR | O_CLOEXEC);
    if (c.fifo_fd < 0)
        return fail_os(errno, fifo), roll_back(&m);
    int own_pid_ns = -1;
    if (pid_ns >= 0) { /* for the child alone; we go back right after the clone */
        own_pid_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (own_pid_ns < 0 || setns(pid_ns, CLONE_NEWPID) < 0)
            return fail_os(errno, own_pid_ns < 0 ? "/proc/self/ns/pid" : pid_ns_path),
                   roll_back(&m);
        close(pid_ns);
    }
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)clone_flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        close(sv[0]);
        container_init_c(&c);
    }
    int clone_err = errno;
    if (own_pid_ns >= 0) {
        if (setns(own_pid_ns, CLONE_NEWPID) < 0 && pid > 0)
            return m.pid = pid, fail_os(errno, "/proc/self/ns/pid"), roll_back(&m);
        close(own_pid_ns);
    }
    if (pid < 0)
        return fail("cannot create namespaces: %s", strerror(clone_err)), roll_back(&m);
    m.pid = pid;
    close(sv[1]);
    close(c.fifo_fd);
    close(dmz);
    if (cg_apply(m.cg, pid) < 0 || set_oom_score_adj(pid, j, process) < 0)
        return roll_back(&m);
    STOPPED_YET(&m);
    s.pid = pid;
    s.pid_start = proc_start_time(pid);
    if (record_save(&s) < 0)
        return roll_back(&m);
    if (send(sv[0], "G", 1, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
        return fail_os(errno, NULL), roll_back(&m);
    if (await_ready(sv[0]) < 0)
        return roll_back(&m);
    if (res.swap_ignored) /* the manager's warnings, after the placement (create.py) */
        log_warning("linux.resources.memory.swap: this kernel has no swap accounting (memsw); "
                    "ignored");
    for (int i = 0; i < plan.nwarnings; i++)
        log_warning("%s", plan.warnings[i]);
    STOPPED_YET(&m);
    s.status = "created";
    if (record_save(&s) < 0)
        return roll_back(&m);
    log_debug("create: container %s created, init pid %d", f->id, (int)pid);
    if (f->pid_file) {
        int err = write_pid_file(f->pid_file, pid);
        if (err < 0) { /* statedir._pid_file_error's words */
            char reason[256];
            snprintf(reason, sizeof reason, "%s", strerror(-err));
            for (char *p = reason; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            return fail("cannot write --pid-file %s: %s", f->pid_file, reason), roll_back(&m);
        }
    }
    close(sv[0]);
    if (c.console_fd >= 0)
        close(c.console_fd);
    return is_run ? run_started(&s, f) : 0;
}

