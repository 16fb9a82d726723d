/* state, start, kill, delete, pause, resume and list, as tomato.runtime.lifecycle
 * and tomato.cli.runtime do them (same checks in the same order, same words).
 *
 * Each verb first reads and decides (and may hand the command to Python), then
 * acts; once it has changed anything it finishes here, errors included.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "front.h"


/* cli.flags.parse for a verb's own flags: BOOL ones, and VALUE ones (value set).
 * Returns the index of the first positional argument, or -1 (Python's error). */
struct vflag {
    const char *name, *alias;
    int takes_value;
    const char *value; /* VALUE: the value; BOOL: "1" when on */
};

static int parse_verb(int argc, char **argv, struct vflag *flags, int *npos, char ***pos) {
    int i = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || strcmp(arg, "-") == 0)
            break;
        const char *name = arg + strspn(arg, "-");
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        struct vflag *f = NULL;
        for (struct vflag *g = flags; g && g->name; g++)
            if ((strlen(g->name) == n && strncmp(g->name, name, n) == 0) ||
                (g->alias && strlen(g->alias) == n && strncmp(g->alias, name, n) == 0))
                f = g;
        if (!f)
            return -1;
        if (!f->takes_value) {
            const char *v = eq ? eq + 1 : "true";
            f->value = strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
                       strcasecmp(v, "yes") == 0 ? "1" : NULL;
        } else if (eq) {
            f->value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return -1;
            f->value = argv[++i];
        }
    }
    *npos = argc - i;
    *pos = argv + i;
    return 0;
}

/* Flags, one container id (valid), its record and true status; or Python. */
static int load_one(const char *root, int argc, char **argv, struct vflag *flags,
                    struct record *rec, const char **status, char ***pos, int *npos) {
    if (parse_verb(argc, argv, flags, npos, pos) < 0 || *npos < 1 || !valid_id((*pos)[0]))
        return ASK_PYTHON;
    int r = record_load(root, (*pos)[0], rec);
    if (r < 0)
        return ASK_PYTHON;
    if (r == 1)
        return 1;
    *status = record_status(root, rec);
    return *status ? 0 : ASK_PYTHON;
}

static int not_found(const char *id) {
    return fail("container %s does not exist", id);
}

static int emit(char *out, size_t len) {
    if (fwrite(out, 1, len, stdout) != len)
        return fail_os(errno, NULL);
    return 0;
}

/* create.oci_state, rendered as fastjson.dumps_pretty renders it. */
int verb_state(const char *root, int argc, char **argv) {
    struct record rec;
    const char *status;
    char **pos;
    int npos;
    int r = load_one(root, argc, argv, NULL, &rec, &status, &pos, &npos);
    if (r == ASK_PYTHON)
        return r;
    if (r == 1)
        return not_found(pos[0]);
    int oci = rec.config >= 0 ? json_get(&rec.js, rec.config, "ociVersion") : -1;
    if (oci >= 0 && rec.js.n[oci].type != J_STR)
        return ASK_PYTHON;
    char *out = NULL;
    size_t len = 0, cap = 0;
    int bad = 0;
#define FIELD(key, value) \
    (buf_printf(&out, &len, &cap, "  \"%s\": ", key), bad |= json_put_string(&out, &len, &cap, value, 1), \
     buf_put(&out, &len, &cap, ",\n", 2))
    buf_put(&out, &len, &cap, "{\n", 2);
    FIELD("ociVersion", oci >= 0 ? rec.js.n[oci].s : "1.2.0");
    FIELD("id", rec.id);
    FIELD("status", status);
    buf_printf(&out, &len, &cap, "  \"pid\": %lld,\n", strcmp(status, "stopped") ? rec.pid : 0);
    FIELD("bundle", rec.bundle);
    FIELD("rootfs", rec.rootfs);
    FIELD("created", rec.created);
    FIELD("owner", rec.owner);
#undef FIELD
    if (rec.annotations < 0) {
        buf_put(&out, &len, &cap, "  \"annotations\": {}\n}\n", 22);
    } else {
        buf_put(&out, &len, &cap, "  \"annotations\": {\n", 19);
        const struct json *j = &rec.js;
        for (int k = j->n[rec.annotations].child; k >= 0; k = j->n[k].next) {
            buf_put(&out, &len, &cap, "    ", 4);
            bad |= json_put_string(&out, &len, &cap, j->n[k].s, 1);
            buf_put(&out, &len, &cap, ": ", 2);
            bad |= json_put_string(&out, &len, &cap, j->n[j->n[k].value].s, 1);
            buf_put(&out, &len, &cap, j->n[k].next >= 0 ? ",\n" : "\n", j->n[k].next >= 0 ? 2 : 1);
        }
        buf_put(&out, &len, &cap, "  }\n}\n", 6);
    }
    if (bad || !out)
        return ASK_PYTHON;
    return emit(out, len) < 0 ? 1 : 0;
}

static int transition(const char *op, const char *id, const char *status, const char *allowed) {
    /* oci.state.check_transition; ALLOWED as a space-separated list */
    size_t n = strlen(status);
    for (const char *p = allowed; (p = strstr(p, status)) != NULL; p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 0;
    return fail("cannot %s container %s: it is %s", op, id, status);
}

int verb_start(const char *root, int argc, char **argv) {
    struct record rec;
    const char *status;
    char **pos;
    int npos;
    int r = load_one(root, argc, argv, NULL, &rec, &status, &pos, &npos);
    if (r == ASK_PYTHON)
        return r;
    if (r == 1)
        return not_found(pos[0]);
    const char *id = pos[0];
    if (transition("start", id, status, "created") < 0)
        return 1;
    /* startContainer hooks report through start.fifo, poststart ones run after: Python's. */
    if (config_hooks(&rec, "startContainer") != 0 || config_hooks(&rec, "poststart") != 0 ||
        rec.status_node < 0)
        return ASK_PYTHON;
    char *dir = state_dir(root, id), *fifo = NULL;
    if (!dir || asprintf(&fifo, "%s/exec.fifo", dir) < 0)
        return fail_os(ENOMEM, NULL), 1;
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENXIO)
            fail("container %s init is not waiting to start", id);
        else
            fail_os(errno, fifo);
        return 1;
    }
    ssize_t w = write(fd, "0", 1);
    int err = errno;
    close(fd);
    if (w < 0)
        return fail_os(err, NULL), 1;
    if (unlink(fifo) < 0)
        return fail_os(errno, fifo), 1;
    if (record_save_status(root, &rec, "running") < 0) {
        char *tmp = NULL;
        err = errno;
        if (asprintf(&tmp, "%s/state.json.tmp", dir) < 0)
            tmp = NULL;
        return fail_os(err, tmp), 1;
    }
    log_debug("start: container %s started (pid %lld)", id, rec.pid);
    return 0;
}

static const struct {
    const char *name;
    int num;
} SIGNALS[] = {
    /* signal.Signals on Linux, aliases included (SIGIOT, SIGCLD, SIGPOLL) */
    {"SIGHUP", 1},     {"SIGINT", 2},     {"SIGQUIT", 3},    {"SIGILL", 4},
    {"SIGTRAP", 5},    {"SIGABRT", 6},    {"SIGIOT", 6},     {"SIGBUS", 7},
    {"SIGFPE", 8},     {"SIGKILL", 9},    {"SIGUSR1", 10},   {"SIGSEGV", 11},
    {"SIGUSR2", 12},   {"SIGPIPE", 13},   {"SIGALRM", 14},   {"SIGTERM", 15},
    {"SIGSTKFLT", 16}, {"SIGCHLD", 17},   {"SIGCLD", 17},    {"SIGCONT", 18},
    {"SIGSTOP", 19},   {"SIGTSTP", 20},   {"SIGTTIN", 21},   {"SIGTTOU", 22},
    {"SIGURG", 23},    {"SIGXCPU", 24},   {"SIGXFSZ", 25},   {"SIGVTALRM", 26},
    {"SIGPROF", 27},   {"SIGWINCH", 28},  {"SIGIO", 29},     {"SIGPOLL", 29},
    {"SIGPWR", 30},    {"SIGSYS", 31},    {"SIGRTMIN", 34},  {"SIGRTMAX", 64},
    {NULL, 0},
};

/* lifecycle.parse_signal for the values it accepts; -1: Python words the error. */
static int parse_signal(const char *value) {
    size_t n = strlen(value);
    if (n == 0 || n > 16)
        return -1;
    if (strspn(value, "0123456789") == n) {
        int num = atoi(value);
        return num < 65 ? num : -1; /* signal.NSIG */
    }
    char name[24] = "";
    if (strncasecmp(value, "SIG", 3) != 0)
        strcpy(name, "SIG");
    for (size_t i = 0, k = strlen(name); i < n; i++, k++) {
        char c = value[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return -1;
        name[k] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        name[k + 1] = '\0';
    }
    for (int i = 0; SIGNALS[i].name; i++)
        if (strcmp(SIGNALS[i].name, name) == 0)
            return SIGNALS[i].num;
    return -1;
}

/* kill(2) of the init through a pidfd taken before its start time was read again
 * (statedir.signal_pinned): a pid reused since the status check -- the init died,
 * another process got the number -- is never signalled.  0; -1 with errno (ESRCH: it
 * is gone). */
static int signal_init(const struct record *rec, int sig) {
    int pin = (int)syscall(SYS_pidfd_open, (pid_t)rec->pid, 0);
    if (pin < 0 && errno == ENOSYS) /* before Linux 5.3: checked, then kill */
        return alive(rec->pid, rec->pid_start) ? kill((pid_t)rec->pid, sig)
                                               : (errno = ESRCH, -1);
    if (pin < 0)
        return -1;
    int r = proc_start_time(rec->pid) == rec->pid_start
                ? (int)syscall(SYS_pidfd_send_signal, pin, sig, NULL, 0)
                : (errno = ESRCH, -1);
    int err = errno;
    close(pin);
    errno = err;
    return r;
}

int verb_kill(const char *root, int argc, char **argv) {
    struct vflag flags[] = {{"all", "a", 0, NULL}, {NULL, NULL, 0, NULL}};
    struct record rec;
    const char *status;
    char **pos;
    int npos;
    if (parse_verb(argc, argv, flags, &npos, &pos) < 0 || npos < 1)
        return ASK_PYTHON;
    int sig = parse_signal(npos > 1 ? pos[1] : "SIGTERM");
    if (sig < 0)
        return ASK_PYTHON;
    int r = load_one(root, argc, argv, flags, &rec, &status, &pos, &npos);
    if (r == ASK_PYTHON)
        return r;
    if (r == 1)
        return not_found(pos[0]);
    const char *id = pos[0];
    int all = flags[0].value != NULL;
    if (strcmp(status, "stopped") == 0) {
        if (all) {
            /* runc 1.1: --all signals whatever the cgroup still holds, and succeeds
             * (containerd's shim runs `kill --all ID 9` after every exit). */
            if (rec.cg && cg_exists(rec.cg) && cg_kill_all(rec.cg, sig) < 0)
                return 1;
            return 0;
        }
        if (sig == 0)
            return 0;
        /* runc's words: containerd's shim matches "container not running" */
        return fail("container not running: %s", id), 1;
    }
    if (transition("kill", id, status, "created running paused") < 0)
        return 1;
    if (all && rec.cg)
        return cg_kill_all(rec.cg, sig) < 0 ? 1 : 0;
    if (signal_init(&rec, sig) < 0)
        return errno == ESRCH ? ASK_PYTHON : (fail_os(errno, NULL), 1); /* gone: Python's */
    if (strcmp(status, "paused") == 0 && rec.cg && sig == SIGKILL && cg_thaw(rec.cg) < 0)
        return 1;
    return 0;
}

int verb_delete(const char *root, int argc, char **argv) {
    struct vflag flags[] = {{"force", "f", 0, NULL}, {NULL, NULL, 0, NULL}};
    struct record rec;
    const char *status;
    char **pos;
    int npos;
    int r = load_one(root, argc, argv, flags, &rec, &status, &pos, &npos);
    if (r == ASK_PYTHON)
        return r;
    const char *id = pos[0];
    int force = flags[0].value != NULL;
    if (r == 1)
        return force ? 0 : (not_found(id), 1);
    int stopped = strcmp(status, "stopped") == 0, paused = strcmp(status, "paused") == 0;
    if (!force && (strcmp(status, "running") == 0 || paused || strcmp(status, "creating") == 0))
        return fail("cannot delete container %s that is not stopped: %s", id, status), 1;
    /* poststop hooks to run, mounts in the caller's namespace to remove: Python's. */
    if ((rec.config >= 0 && config_hooks(&rec, "poststop") != 0) || rec.host_mounts >= 0)
        return ASK_PYTHON;
    const struct cgroup_rec *cg = rec.cg;
    if (!stopped) {
        if (cg && (shares_pid_ns(&rec) || paused) && cg_kill_all(cg, SIGKILL) < 0)
            return 1;
        if (signal_init(&rec, SIGKILL) < 0 && errno != ESRCH)
            return fail_os(errno, NULL), 1;
        if (cg && paused && cg_thaw(cg) < 0)
            return 1;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (alive(rec.pid, rec.pid_start)) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 > 10.0)
                return fail("container %s init (pid %lld) did not die", id, rec.pid), 1;
            sleep_ms(5);
        }
    } else if (cg && (shares_pid_ns(&rec) || strcmp(rec.status, "creating") == 0) &&
               cg_exists(cg)) {
        /* The init is gone but, sharing the host pid namespace, its children may not
         * be; or its creator was killed and the init waits for a start that never comes. */
        if (cg_kill_all(cg, SIGKILL) < 0)
            return 1;
    }
    if (cg && cg_destroy(cg) < 0)
        return 1;
    remove_state_dir(root, id);
    log_debug("delete: container %s removed", id);
    return 0;
}

static int freeze_verb(const char *root, int argc, char **argv, int freeze) {
    struct record rec;
    const char *status;
    char **pos;
    int npos;
    int r = load_one(root, argc, argv, NULL, &rec, &status, &pos, &npos);
    if (r == ASK_PYTHON)
        return r;
    if (r == 1)
        return not_found(pos[0]);
    const char *op = freeze ? "pause" : "resume";
    if (transition(op, pos[0], status, freeze ? "running" : "paused") < 0)
        return 1;
    if (!rec.cg)
        return fail("container %s has no cgroup to %s", pos[0], freeze ? "freeze" : "thaw"), 1;
    return (freeze ? cg_freeze(rec.cg) : cg_thaw(rec.cg)) < 0 ? 1 : 0;
}

int verb_pause(const char *root, int argc, char **argv) {
    return freeze_verb(root, argc, argv, 1);
}

int verb_resume(const char *root, int argc, char **argv) {
    return freeze_verb(root, argc, argv, 0);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void owner_of(const char *root, const char *id, char *out, size_t size) {
    char *dir = state_dir(root, id);
    struct stat st;
    out[0] = '\0';
    if (dir && stat(dir, &st) == 0) {
        struct passwd *pw = getpwuid(st.st_uid);
        if (pw)
            snprintf(out, size, "%s", pw->pw_name);
        else
            snprintf(out, size, "#%u", (unsigned)st.st_uid);
    }
    free(dir);
}

struct row {
    char *cell[6];
};

/* cli.runtime.cmd_list: runc's tabwriter table, compact JSON, or ids. */
int verb_list(const char *root, int argc, char **argv) {
    struct vflag flags[] = {{"format", "f", 1, NULL}, {"quiet", "q", 0, NULL},
                            {NULL, NULL, 0, NULL}};
    char **pos;
    int npos;
    if (parse_verb(argc, argv, flags, &npos, &pos) < 0)
        return ASK_PYTHON;
    const char *fmt = flags[0].value ? flags[0].value : "table";
    int quiet = flags[1].value != NULL, json = strcmp(fmt, "json") == 0;
    if (!quiet && !json && strcmp(fmt, "table") != 0)
        return ASK_PYTHON;
    DIR *d = opendir(root);
    char **names = NULL;
    size_t n = 0;
    if (!d && errno != ENOENT)
        return ASK_PYTHON;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* the runtime's own (.seccomp), never ids */
        char *path = state_dir(root, e->d_name);
        struct stat st;
        int dir = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        free(path);
        if (!dir)
            continue;
        if (!valid_id(e->d_name)) {
            closedir(d);
            return ASK_PYTHON;
        }
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    char *out = NULL;
    size_t len = 0, cap = 0;
    struct row *rows = calloc(n + 1, sizeof *rows);
    size_t nrows = 0;
    int bad = 0;
    buf_put(&out, &len, &cap, json ? "[" : "", json ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        struct record rec;
        int r = record_load(root, names[i], &rec);
        if (r == 1)
            continue; /* gone meanwhile (NotFound) */
        const char *status = r == 0 ? record_status(root, &rec) : NULL;
        int oci = status && rec.config >= 0 ? json_get(&rec.js, rec.config, "ociVersion") : -1;
        if (!status || (oci >= 0 && rec.js.n[oci].type != J_STR))
            return ASK_PYTHON;
        const char *version = oci >= 0 ? rec.js.n[oci].s : "1.2.0";
        long long pid = strcmp(status, "stopped") ? rec.pid : 0;
        char owner[256];
        if (quiet) {
            buf_printf(&out, &len, &cap, "%s\n", rec.id);
            continue;
        }
        owner_of(root, rec.id, owner, sizeof owner);
        if (json) {
            const char *keys[] = {"ociVersion", "id", NULL, "status", "bundle", "rootfs",
                                  "created"};
            const char *values[] = {version, rec.id, NULL, status, rec.bundle, rec.rootfs,
                                    rec.created};
            buf_put(&out, &len, &cap, nrows ? ",{" : "{", nrows ? 2 : 1);
            nrows++;
            for (int k = 0; k < 7; k++) {
                if (!keys[k]) {
                    buf_printf(&out, &len, &cap, "\"pid\":%lld,", pid);
                    continue;
                }
                buf_printf(&out, &len, &cap, "\"%s\":", keys[k]);
                bad |= json_put_string(&out, &len, &cap, values[k], 0);
                buf_put(&out, &len, &cap, ",", 1);
            }
            if (rec.annotations >= 0) {
                buf_put(&out, &len, &cap, "\"annotations\":{", 15);
                const struct json *j = &rec.js;
                for (int k = j->n[rec.annotations].child; k >= 0; k = j->n[k].next) {
                    bad |= json_put_string(&out, &len, &cap, j->n[k].s, 0);
                    buf_put(&out, &len, &cap, ":", 1);
                    bad |= json_put_string(&out, &len, &cap, j->n[j->n[k].value].s, 0);
                    if (j->n[k].next >= 0)
                        buf_put(&out, &len, &cap, ",", 1);
                }
                buf_put(&out, &len, &cap, "},", 2);
            }
            buf_put(&out, &len, &cap, "\"owner\":", 8);
            bad |= json_put_string(&out, &len, &cap, owner, 0);
            buf_put(&out, &len, &cap, "}", 1);
        } else {
            struct row *row = &rows[nrows++];
            row->cell[0] = strdup(rec.id);
            if (asprintf(&row->cell[1], "%lld", pid) < 0)
                return ASK_PYTHON;
            row->cell[2] = strdup(status);
            row->cell[3] = strdup(rec.bundle);
            row->cell[4] = strdup(rec.created);
            row->cell[5] = strdup(owner);
        }
    }
    if (json) {
        if (nrows == 0) {
            len = 0;
            buf_put(&out, &len, &cap, "null", 4);
        } else {
            buf_put(&out, &len, &cap, "]", 1);
        }
        buf_put(&out, &len, &cap, "\n", 1);
    } else if (!quiet) {
        static char *const header[6] = {"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"};
        size_t width[5];
        for (int c = 0; c < 5; c++) {
            size_t w = strlen(header[c]);
            for (size_t i = 0; i < nrows; i++)
                if (strlen(rows[i].cell[c]) > w)
                    w = strlen(rows[i].cell[c]);
            width[c] = w + 3 > 12 ? w + 3 : 12;
        }
        for (size_t i = 0; i <= nrows; i++) {
            char *const *cell = i == 0 ? header : rows[i - 1].cell;
            for (int c = 0; c < 6; c++) {
                for (const unsigned char *p = (const unsigned char *)cell[c]; *p; p++)
                    bad |= *p >= 0x80; /* widths count characters there: Python's */
                if (c < 5)
                    buf_printf(&out, &len, &cap, "%-*s", (int)width[c], cell[c]);
                else
                    buf_printf(&out, &len, &cap, "%s\n", cell[c]);
            }
        }
    }
    if (bad)
        return ASK_PYTHON;
    return out && len ? (emit(out, len) < 0 ? 1 : 0) : 0;
}
