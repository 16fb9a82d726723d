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

#include "create_cgroup.h"

/* ---- the config, as Python's json.dumps writes it again ---- */

/* Python's dict keeps a key's first place and its last value, and prints floats its own
 * way: documents with either are Python's. */
static int plain(const struct json *j, int v) {
    const struct jnode *n = &j->n[v];
    if (n->type == J_NUM)
        return n->is_int;
    if (n->type == J_OBJ && json_has_duplicates(j, v))
        return 0;
    if (n->type == J_OBJ || n->type == J_ARR)
        for (int k = n->child; k >= 0; k = j->n[k].next)
            if (!plain(j, n->type == J_OBJ ? j->n[k].value : k))
                return 0;
    return 1;
}

static void dump(const struct json *j, int v, char **b, size_t *len, size_t *cap) {
    const struct jnode *n = &j->n[v];
    switch (n->type) {
    case J_NULL: buf_printf(b, len, cap, "null"); break;
    case J_TRUE: buf_printf(b, len, cap, "true"); break;
    case J_FALSE: buf_printf(b, len, cap, "false"); break;
    case J_NUM: buf_printf(b, len, cap, "%lld", n->i); break;
    case J_STR: json_put_string(b, len, cap, n->s, 1); break;
    case J_ARR:
    case J_OBJ:
        buf_printf(b, len, cap, n->type == J_ARR ? "[" : "{");
        for (int k = n->child; k >= 0; k = j->n[k].next) {
            if (k != n->child)
                buf_printf(b, len, cap, ", ");
            if (n->type == J_OBJ) {
                json_put_string(b, len, cap, j->n[k].s, 1);
                buf_printf(b, len, cap, ": ");
                dump(j, j->n[k].value, b, len, cap);
            } else {
                dump(j, k, b, len, cap);
            }
        }
        buf_printf(b, len, cap, n->type == J_ARR ? "]" : "}");
        break;
    }
}

static char *dumps(const struct json *j, int v) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    dump(j, v, &b, &len, &cap);
    return b;
}

/* ---- the record (statedir.Record) ---- */

struct create_state {
    const char *root, *id, *dir;
    const char *bundle, *rootfs;
    char created[64];
    long long pid, pid_start, creator_pid, creator_start;
    const char *status;
    char *annotations, *cgroup, *config; /* JSON texts */
    int no_pivot;
};

static int save(const struct create_state *s) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    buf_printf(&b, &len, &cap, "{\"id\": ");
    json_put_string(&b, &len, &cap, s->id, 1);
    buf_printf(&b, &len, &cap, ", \"bundle\": ");
    json_put_string(&b, &len, &cap, s->bundle, 1);
    buf_printf(&b, &len, &cap, ", \"rootfs\": ");
    json_put_string(&b, &len, &cap, s->rootfs, 1);
    buf_printf(&b, &len, &cap, ", \"created\": \"%s\", \"pid\": %lld, \"pid_start\": %lld, "
               "\"creator_pid\": %lld, \"creator_start\": %lld, \"status\": \"%s\", "
               "\"annotations\": %s, \"cgroup\": %s, \"config\": %s, \"owner\": \"\", "
               "\"no_pivot\": %s, \"host_mounts\": null}",
               s->created, s->pid, s->pid_start, s->creator_pid, s->creator_start, s->status,
               s->annotations, s->cgroup, s->config, s->no_pivot ? "true" : "false");
    char *tmp = NULL, *path = NULL;
    if (!b || asprintf(&tmp, "%s/state.json.tmp", s->dir) < 0 ||
        asprintf(&path, "%s/state.json", s->dir) < 0)
        return fail_os(ENOMEM, NULL);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail_os(errno, tmp);
    ssize_t w = write(fd, b, len);
    int err = w == (ssize_t)len ? 0 : (w < 0 ? errno : EIO);
    close(fd);
    if (err)
        return fail_os(err, NULL);
    if (rename(tmp, path) < 0)
        return fail_os(errno, tmp);
    free(b);
    free(tmp);
    free(path);
    return 0;
}

/* create.now_rfc3339: Go's RFC3339Nano (no trailing zeros) */
static void now_rfc3339(char *out, size_t size) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32], frac[16];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(frac, sizeof frac, "%09ld", ts.tv_nsec);
    for (int i = 8; i >= 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(out, size, "%s%s%s%s", stamp, frac[0] ? "." : "", frac, "Z");
}

/* os.path.abspath: lexical, ".." included */
static char *abspath(const char *path) {
    char cwd[PATH_MAX], *full = NULL;
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd))
        return NULL;
    if (asprintf(&full, "%s/%s", path[0] == '/' ? "" : cwd, path) < 0)
        return NULL;
    char *out = malloc(strlen(full) + 2);
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(full, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0) {
            while (n > 0 && out[--n] != '/')
                ;
            continue;
        }
        out[n++] = '/';
        memcpy(out + n, t, strlen(t));
        n += strlen(t);
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    free(full);
    return out;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- the config into struct init_config ---- */

static int absent(const struct json *j, int v) {
    return v < 0 || j->n[v].type == J_NULL;
}

static const char *str_or(const struct json *j, int obj, const char *key, const char *dflt) {
    int v = obj < 0 ? -1 : json_get(j, obj, key);
    return absent(j, v) ? dflt : j->n[v].s;
}

static const char **strings(const struct json *j, int v, int *count) {
    *count = absent(j, v) ? 0 : json_len(j, v);
    const char **out = calloc((size_t)*count + 1, sizeof *out);
    int i = 0;
    for (int e = absent(j, v) ? -1 : j->n[v].child; e >= 0; e = j->n[e].next)
        out[i++] = j->n[e].s;
    return out;
}

/* mountopts.parse_options */
static void parse_options(const struct json *j, int options, struct init_mount *m) {
    static const struct {
        const char *name;
        int clear;
        unsigned long flag;
    } FLAGS[] = {
        {"ro", 0, MS_RDONLY},        {"rw", 1, MS_RDONLY},          {"nosuid", 0, MS_NOSUID},
        {"suid", 1, MS_NOSUID},      {"nodev", 0, MS_NODEV},        {"dev", 1, MS_NODEV},
        {"noexec", 0, MS_NOEXEC},    {"exec", 1, MS_NOEXEC},        {"sync", 0, MS_SYNCHRONOUS},
        {"async", 1, MS_SYNCHRONOUS}, {"dirsync", 0, MS_DIRSYNC},   {"mand", 0, MS_MANDLOCK},
        {"nomand", 1, MS_MANDLOCK},  {"noatime", 0, MS_NOATIME},    {"atime", 1, MS_NOATIME},
        {"nodiratime", 0, MS_NODIRATIME}, {"diratime", 1, MS_NODIRATIME},
        {"relatime", 0, MS_RELATIME}, {"norelatime", 1, MS_RELATIME},
        {"strictatime", 0, MS_STRICTATIME}, {"nostrictatime", 1, MS_STRICTATIME},
        {"lazytime", 0, MS_LAZYTIME}, {"nolazytime", 1, MS_LAZYTIME},
        {"nosymfollow", 0, 256 /* MS_NOSYMFOLLOW */}, {"symfollow", 1, 256},
        {"remount", 0, MS_REMOUNT},  {"bind", 0, MS_BIND},          {"rbind", 0, MS_BIND | MS_REC},
        {"silent", 0, MS_SILENT},    {"loud", 1, MS_SILENT},
    };
    static const struct {
        const char *name;
        unsigned long flag;
    } PROPAGATION[] = {
        {"private", MS_PRIVATE},          {"rprivate", MS_PRIVATE | MS_REC},
        {"shared", MS_SHARED},            {"rshared", MS_SHARED | MS_REC},
        {"slave", MS_SLAVE},              {"rslave", MS_SLAVE | MS_REC},
        {"unbindable", MS_UNBINDABLE},    {"runbindable", MS_UNBINDABLE | MS_REC},
    };
    char *data = NULL;
    size_t len = 0, cap = 0;
    for (int o = absent(j, options) ? -1 : j->n[options].child; o >= 0; o = j->n[o].next) {
        const char *opt = j->n[o].s;
        int done = 0;
        if (strcmp(opt, "rro") == 0) {
            m->recursive_ro = 1;
            continue;
        }
        for (size_t k = 0; !done && k < sizeof FLAGS / sizeof *FLAGS; k++)
            if (strcmp(opt, FLAGS[k].name) == 0) {
                m->flags = FLAGS[k].clear ? m->flags & ~FLAGS[k].flag : m->flags | FLAGS[k].flag;
                done = 1;
            }
        for (size_t k = 0; !done && k < sizeof PROPAGATION / sizeof *PROPAGATION; k++)
            if (strcmp(opt, PROPAGATION[k].name) == 0) {
                if (m->npropagation < MAX_MOUNT_PROPAGATION)
                    m->propagation[m->npropagation++] = PROPAGATION[k].flag;
                done = 1;
            }
        static const char *const IGNORED[] = {"defaults", "tmpcopyup", "idmap", "ridmap",
                                              "rrw", "private-only", NULL};
        for (int k = 0; !done && IGNORED[k]; k++)
            done = strcmp(opt, IGNORED[k]) == 0;
        if (!done)
            buf_printf(&data, &len, &cap, "%s%s", len ? "," : "", opt);
    }
    m->data = data;
}

static void take_mounts(const struct json *j, int v, struct init_config *c) {
    c->nmounts = absent(j, v) ? 0 : json_len(j, v);
    c->mounts = calloc((size_t)c->nmounts + 1, sizeof *c->mounts);
    int i = 0;
    for (int e = absent(j, v) ? -1 : j->n[v].child; e >= 0; e = j->n[e].next, i++) {
        struct init_mount *m = &c->mounts[i];
        m->destination = str_or(j, e, "destination", "");
        m->type = str_or(j, e, "type", "");
        parse_options(j, json_get(j, e, "options"), m);
        m->bind = strcmp(m->type, "bind") == 0 || (m->flags & MS_BIND);
        const char *source = str_or(j, e, "source", "");
        m->source = m->bind ? source : (*source ? source : m->type); /* the init joins a
                                                                      * relative bind's */
    }
}

static void take_devices(const struct json *j, int v, struct init_config *c) {
    c->ndevices = absent(j, v) ? 0 : json_len(j, v);
    c->devices = calloc((size_t)c->ndevices + 1, sizeof *c->devices);
    int i = 0;
    for (int e = absent(j, v) ? -1 : j->n[v].child; e >= 0; e = j->n[e].next, i++) {
        struct init_device *d = &c->devices[i];
        long long num[5] = {0, 0, 0666, 0, 0};
        static const char *const keys[] = {"major", "minor", "fileMode", "uid", "gid"};
        for (int k = 0; k < 5; k++) {
            int x = json_get(j, e, keys[k]);
            if (!absent(j, x))
                num[k] = j->n[x].i;
        }
        d->path = str_or(j, e, "path", "");
        d->type = str_or(j, e, "type", "c")[0];
        d->major = num[0];
        d->minor = num[1];
        d->mode = (unsigned)num[2];
        d->uid = (uid_t)num[3];
        d->gid = (gid_t)num[4];
    }
}

/* The namespaces: clone flags for the new ones; those given by path joined by the init
 * (create.h), but pid, which this process joins for its child alone (create.py). */
static int take_namespaces(const struct json *j, int v, struct init_config *c, int *flags,
                           int *pid_ns_fd, const char **pid_ns_path) {
    static const struct {
        const char *type;
        int flag;
    } KINDS[] = {{"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},
                 {"uts", CLONE_NEWUTS}, {"mount", CLONE_NEWNS},    {"cgroup", CLONE_NEWCGROUP}};
    *flags = 0;
    for (int e = absent(j, v) ? -1 : j->n[v].child; e >= 0; e = j->n[e].next) {
        const char *type = str_or(j, e, "type", ""), *path = str_or(j, e, "path", "");
        int flag = 0;
        for (size_t k = 0; k < sizeof KINDS / sizeof *KINDS; k++)
            if (strcmp(type, KINDS[k].type) == 0)
                flag = KINDS[k].flag;
        if (!flag)
            return ASK_PYTHON; /* user, time: Python's */
        c->has_network_ns |= flag == CLONE_NEWNET;
        c->has_ipc_ns |= flag == CLONE_NEWIPC;
        c->has_uts_ns |= flag == CLONE_NEWUTS;
        c->cgroupns |= flag == CLONE_NEWCGROUP;
        if (!*path) {
            if (flag == CLONE_NEWCGROUP)
                c->new_cgroupns = 1;
            else
                *flags |= flag;
        } else if (flag == CLONE_NEWPID) {
            *pid_ns_fd = open(path, O_RDONLY | O_CLOEXEC);
            *pid_ns_path = path;
            if (*pid_ns_fd < 0)
                return ASK_PYTHON; /* Python words it */
        } else {
            if (c->njoined >= MAX_JOINED)
                return ASK_PYTHON;
            c->joined[c->njoined].kind = type;
            c->joined[c->njoined].path = path;
            c->joined[c->njoined++].flag = flag;
        }
    }
    return 0;
}

/* The caller is in the initial user namespace (a user namespace's root: Python's). */
static int initial_userns(void) {
    size_t len;
    char *map = read_small("/proc/self/uid_map", 4096, &len);
    if (!map)
        return 0;
    unsigned long a, b, n;
    int ok = sscanf(map, " %lu %lu %lu", &a, &b, &n) == 3 && a == 0 && b == 0 &&
             n == 4294967295UL && !strchr(strchr(map, '\n') ? strchr(map, '\n') + 1 : "", ' ');
    free(map);
    return ok;
}

/* ---- after the first change ---- */

struct made {
    struct create_state *s;
    struct cgroup_rec *cg;   /* the cgroups, once made (or half made) */
    pid_t pid;               /* the init, once cloned */
};

/* Roll back in reverse (create.py's Undo), keeping the failure's words. */
static int roll_back(struct made *m) {
    char *why = failure_copy();
    if (m->pid > 0) {
        kill(m->pid, SIGKILL);
        while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (m->cg)
        cg_destroy(m->cg);
    remove_state_dir(m->s->root, m->s->id);
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
        if (save(s) < 0)
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
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    if (!plain(j, 0))
        return ASK_PYTHON;
    char *bundle = abspath(f->bundle);
    if (!bundle || strncmp(f->bundle, "//", 2) == 0 || !is_dir(bundle))
        return ASK_PYTHON;
    c.bundle = bundle;
    int rootv = json_get(j, 0, "root"), linux_ = json_get(j, 0, "linux");
    int process = json_get(j, 0, "process");
    const char *root_path = str_or(j, rootv, "path", "");
    char *rootfs = NULL;
    if (asprintf(&rootfs, "%s%s%s", root_path[0] == '/' ? "" : bundle,
                 root_path[0] == '/' ? "" : "/", root_path) < 0 || !is_dir(rootfs))
        return ASK_PYTHON;
    char *real = realpath(rootfs, NULL);
    if (!real)
        return ASK_PYTHON;
    c.rootfs = real;
    c.propagation = absent(j, linux_) ? "" : str_or(j, linux_, "rootfsPropagation", "");
    c.no_pivot = f->no_pivot;
    if (f->no_pivot || !initial_userns())
        return ASK_PYTHON; /* the init in C pivots, and knows no user namespace */
    int ro = json_get(j, rootv, "readonly");
    c.root_readonly = ro >= 0 && j->n[ro].type == J_TRUE;
    c.proc.last_cap = last_cap;
    if (take_process(j, process, &c.proc, NULL, NULL, 0) < 0)
        return ASK_PYTHON;
    c.proc.preserve_fds = f->preserve_fds;
    int lx = absent(j, linux_) ? -1 : linux_;
    if (cg_plan_new(lx < 0 ? "" : str_or(j, lx, "cgroupsPath", ""), f->id, &plan) != 0 ||
        cg_plan_check(j, lx < 0 ? -1 : json_get(j, lx, "resources"),
                      lx < 0 ? -1 : json_get(j, lx, "devices"), &plan, &res) != 0)
        return ASK_PYTHON;
    take_mounts(j, json_get(j, 0, "mounts"), &c);
    take_devices(j, lx < 0 ? -1 : json_get(j, lx, "devices"), &c);
    c.masked = strings(j, lx < 0 ? -1 : json_get(j, lx, "maskedPaths"), &c.nmasked);
    c.readonly = strings(j, lx < 0 ? -1 : json_get(j, lx, "readonlyPaths"), &c.nreadonly);
    int sysctl = lx < 0 ? -1 : json_get(j, lx, "sysctl");
    c.nsysctl = absent(j, sysctl) ? 0 : json_len(j, sysctl);
    c.sysctl_keys = calloc((size_t)c.nsysctl + 1, sizeof *c.sysctl_keys);
    c.sysctl_values = calloc((size_t)c.nsysctl + 1, sizeof *c.sysctl_values);
    for (int k = absent(j, sysctl) ? -1 : j->n[sysctl].child, i = 0; k >= 0; k = j->n[k].next, i++) {
        c.sysctl_keys[i] = j->n[k].s;
        c.sysctl_values[i] = j->n[j->n[k].value].s;
    }
    c.hostname = str_or(j, 0, "hostname", NULL);
    c.domainname = str_or(j, 0, "domainname", NULL);
    int clone_flags, pid_ns = -1;
    const char *pid_ns_path = NULL;
    if (take_namespaces(j, lx < 0 ? -1 : json_get(j, lx, "namespaces"), &c, &clone_flags,
                        &pid_ns, &pid_ns_path) != 0)
        return ASK_PYTHON;
    int annotations = json_get(j, 0, "annotations");
    s.annotations = absent(j, annotations) ? strdup("{}") : dumps(j, annotations);
    s.config = dumps(j, 0);
    s.cgroup = cg_plan_json(&plan, f->id);
    int dmz = dmz_sealed();
    if (dmz < 0)
        return ASK_PYTHON; /* Python warns dmz_exec.MISSING and goes on without */
    c.proc.dmz = dmz;
    c.console_fd = -1;

    /* ---- the point of no return: the state directory ---- */
    commit_now();
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
    if (save(&s) < 0)
        return roll_back(&m);
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
    s.pid = pid;
    s.pid_start = proc_start_time(pid);
    if (save(&s) < 0)
        return roll_back(&m);
    if (send(sv[0], "G", 1, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
        return fail_os(errno, NULL), roll_back(&m);
    if (await_ready(sv[0]) < 0)
        return roll_back(&m);
    if (res.swap_ignored) /* the manager's warnings, after the placement (create.py) */
        log_warning("linux.resources.memory.swap: this kernel has no swap accounting (memsw); "
                    "ignored");
    s.status = "created";
    if (save(&s) < 0)
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
