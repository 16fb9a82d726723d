/* tomato-runtime-front: the verbs containerd calls most, answered without Python.
 *
 * bin/tomato-runtime runs us as:   tomato-runtime-front LAUNCHER ARGS...
 * (install.sh makes us the launcher's interpreter, as tomato-client is tomato's).
 *
 * containerd's shim runs the OCI runtime 4-6 times per container (create, start,
 * state, kill --all, delete, delete --force), and the CRI many more; every one
 * of those but create and exec only reads ROOT/<id>/state.json, looks at /proc
 * and the cgroup, and perhaps signals, freezes or removes.  A Python start-up
 * and its imports cost 20-25 ms for that; runc takes 5.  So state, start, kill,
 * delete, pause, resume and list are answered here when the case is an ordinary
 * one, and so is exec (exec.c: containerd's `exec --process F --detach --pid-file P`
 * and `exec ID cmd...` into a container without a user namespace, whose seccomp
 * program create left in its state directory), and so are create and run of the
 * configs create_check.c calls ordinary (create.c, the container's side init.c),
 * and everything else is handed to Python by exec'ing
 *
 *     PYTHON -I -S LAUNCHER ARGS...       (PYTHON: python3 beside LAUNCHER)
 *
 * which is what the launcher's sh line did before us.  Handed over, always
 * before anything was changed: any other command (update,
 * ps, events, spec, features), flags we do not know, --systemd-cgroup,
 * --explain, --help, --version, a caller that is not root (rootless), argv
 * bytes beyond ASCII, an id that is not valid, a state.json this parser does
 * not take in full (corrupt, truncated, unknown members, a cgroup record of
 * another driver), hooks to run (startContainer, poststart, poststop), mounts in
 * the caller's namespace to remove, and every error but the few containerd
 * meets in ordinary use.  TOMATO_RUNTIME_PYTHON=1 hands over everything (the
 * tests run every verb both ways and compare); TOMATO_RUNTIME_FRONT_ONLY=1 makes
 * a hand-over exit 3 instead (the tests' proof that the ordinary cases are ours);
 * for create and run it also says why (create_check.c, create.c's create_why).
 *
 * What is answered here is answered as Python would, byte for byte: stdout,
 * stderr, exit codes, and the --log/--log-format/--debug records.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "front.h"

#define DEFAULT_ROOT "/run/tomato-runtime"

static char *launcher;
static int saved_argc;
static char **saved_argv;

static const char *log_path = "";
static int log_json = 0, log_debug_on = 0;
static char *failure = NULL;

/* Records of this command, written once we know Python will not take it over
 * (it would write them again). */
static char *pending = NULL;
static size_t pending_len = 0, pending_cap = 0;

const char *handover_reason = NULL;

static void hand_to_python(void) {
    if (getenv("TOMATO_RUNTIME_FRONT_ONLY")) { /* the tests' proof that we answered */
        if (handover_reason)
            fprintf(stderr, "tomato-runtime-front: handed over to Python: %s\n",
                    handover_reason);
        else
            fprintf(stderr, "tomato-runtime-front: handed over to Python\n");
        exit(3);
    }
    char python[PATH_MAX];
    const char *slash = strrchr(launcher, '/');
    if (slash)
        snprintf(python, sizeof python, "%.*s/python3", (int)(slash - launcher), launcher);
    else
        snprintf(python, sizeof python, "python3");
    char **args = calloc((size_t)saved_argc + 4, sizeof *args); /* PYTHON -I -S ... NULL */
    if (!args) {
        perror("tomato-runtime");
        exit(1);
    }
    int n = 0;
    args[n++] = python;
    args[n++] = "-I";
    args[n++] = "-S";
    for (int i = 0; i < saved_argc; i++) /* LAUNCHER ARGS... */
        args[n++] = saved_argv[i];
    args[n] = NULL;
    execv(python, args);
    fprintf(stderr, "tomato-runtime: cannot run %s: %s\n", python, strerror(errno));
    exit(1);
}

char *beside_launcher(const char *name) {
    const char *slash = strrchr(launcher, '/');
    char *path = NULL;
    if (slash && asprintf(&path, "%.*s/%s", (int)(slash - launcher), launcher, name) < 0)
        return NULL;
    if (!slash && asprintf(&path, "%s", name) < 0)
        return NULL;
    return path;
}

void sleep_ms(double ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Go's %q, as runtime.log.go_quote (logrus quotes every msg of the text format). */
static void go_quote(char **buf, size_t *len, size_t *cap, const char *s) {
    buf_put(buf, len, cap, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            buf_put(buf, len, cap, esc, 2);
        } else if (*p == '\n') {
            buf_put(buf, len, cap, "\\n", 2);
        } else if (*p == '\t') {
            buf_put(buf, len, cap, "\\t", 2);
        } else if (*p == '\r') {
            buf_put(buf, len, cap, "\\r", 2);
        } else if (*p < 0x20 || *p == 0x7F) {
            buf_printf(buf, len, cap, "\\x%02x", *p);
        } else {
            buf_put(buf, len, cap, (const char *)p, 1);
        }
    }
    buf_put(buf, len, cap, "\"", 1);
}

/* runtime.log.RuntimeLog._write: one record, to --log or (debug/warning) to stderr. */
static void log_record(const char *level, const char *msg, int now) {
    char *line = NULL;
    size_t len = 0, cap = 0;
    if (!*log_path) {
        buf_printf(&line, &len, &cap, "tomato-runtime: %s: %s\n", level, msg);
    } else {
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        if (log_json) {
            buf_put(&line, &len, &cap, "{\"level\": ", 10);
            json_put_string(&line, &len, &cap, level, 1);
            buf_put(&line, &len, &cap, ", \"msg\": ", 9);
            json_put_string(&line, &len, &cap, msg, 1);
            buf_put(&line, &len, &cap, ", \"time\": ", 10);
            json_put_string(&line, &len, &cap, stamp, 1);
            buf_put(&line, &len, &cap, "}\n", 2);
        } else {
            buf_printf(&line, &len, &cap, "time=\"%s\" level=%s msg=", stamp, level);
            go_quote(&line, &len, &cap, msg);
            buf_put(&line, &len, &cap, "\n", 1);
        }
    }
    if (!line)
        return;
    if (!now) { /* held back until the command is ours (see commit) */
        buf_put(&pending, &pending_len, &pending_cap, line, len);
        free(line);
        return;
    }
    if (*log_path) {
        int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write(fd, line, len) < 0) {
                /* nothing better to do: the record is lost, as an unwritable log */
            }
            close(fd);
        }
    } else {
        fputs(line, stderr);
        fflush(stderr);
    }
    free(line);
}

static int committed = 0;

/* From here on the command is ours: the held-back records go out. */
static void commit(void);

void commit_now(void) {
    commit();
}

static void commit(void) {
    if (committed)
        return;
    committed = 1;
    if (pending_len == 0)
        return;
    if (*log_path) {
        /* one write per record, as Python's O_APPEND writes interleave with others' */
        char *p = pending;
        while (*p) {
            char *nl = strchr(p, '\n');
            char save = nl[1];
            nl[1] = '\0';
            int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) {
                if (write(fd, p, (size_t)(nl + 1 - p)) < 0) {
                    /* lost, as above */
                }
                close(fd);
            }
            nl[1] = save;
            p = nl + 1;
        }
    } else {
        fputs(pending, stderr);
        fflush(stderr);
    }
}

static void log_formatted(const char *level, const char *fmt, va_list ap) {
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        return;
    log_record(level, msg, committed);
    free(msg);
}

void log_debug(const char *fmt, ...) {
    if (!log_debug_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_formatted("debug", fmt, ap);
    va_end(ap);
}

/* RuntimeLog.warning: to --log, or to stderr (held back until the command is ours). */
void log_warning(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_formatted("warning", fmt, ap);
    va_end(ap);
}

/* str.splitlines()[0]: Python's line boundaries, in UTF-8. */
static void first_line(char *s) {
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\v' || *p == '\f' || *p == 0x1c ||
            *p == 0x1d || *p == 0x1e || (p[0] == 0xC2 && p[1] == 0x85) ||
            (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9))) {
            *p = '\0';
            return;
        }
    }
}

int fail(const char *fmt, ...) {
    commit();
    va_list ap;
    va_start(ap, fmt);
    free(failure);
    if (vasprintf(&failure, fmt, ap) < 0)
        failure = NULL;
    va_end(ap);
    return -1;
}

char *failure_copy(void) {
    return failure ? strdup(failure) : NULL;
}

char *failure_take(void) {
    char *taken = failure;
    failure = NULL;
    return taken;
}

int fail_os(int err, const char *path) {
    return path ? fail("%s %s", strerror(err), path) : fail("%s", strerror(err));
}

struct flag {
    const char *name, *alias;
    enum { F_BOOL, F_VALUE } kind;
};

static const struct flag GLOBAL_FLAGS[] = {
    {"root", NULL, F_VALUE},      {"log", NULL, F_VALUE},   {"log-format", NULL, F_VALUE},
    {"debug", NULL, F_BOOL},      {"systemd-cgroup", NULL, F_BOOL},
    {"rootless", NULL, F_VALUE},  {"criu", NULL, F_VALUE},  {NULL, NULL, F_BOOL},
};

/* cli.flags.parse for the flags above (anything else: Python words the error). */
static int parse_globals(int argc, char **argv, int *first_arg, const char **root) {
    int i = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0)
            return -1;
        if (arg[0] != '-' || strcmp(arg, "-") == 0)
            break;
        const char *name = arg + strspn(arg, "-");
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = NULL;
        for (const struct flag *g = GLOBAL_FLAGS; g->name; g++)
            if (strlen(g->name) == n && strncmp(g->name, name, n) == 0)
                f = g;
        if (!f)
            return -1;
        const char *value;
        if (f->kind == F_BOOL) {
            value = eq ? eq + 1 : "true";
            int on = strcasecmp(value, "1") == 0 || strcasecmp(value, "true") == 0 ||
                     strcasecmp(value, "yes") == 0;
            if (strcmp(f->name, "debug") == 0)
                log_debug_on = on;
            else if (on) /* --systemd-cgroup: Python's (another cgroup driver) */
                return -1;
            continue;
        }
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return -1;
            value = argv[++i];
        }
        if (strcmp(f->name, "root") == 0)
            *root = value;
        else if (strcmp(f->name, "log") == 0)
            log_path = value;
        else if (strcmp(f->name, "log-format") == 0) {
            if (strcmp(value, "json") == 0)
                log_json = 1;
            else if (strcmp(value, "text") == 0)
                log_json = 0;
            else
                return -1;
        }
    }
    *first_arg = i;
    return 0;
}

/* Python opens --log at its first record; a log it could not open would end in
 * a traceback there, so only a log we can surely write is ours. */
static int log_usable(void) {
    if (!*log_path)
        return 1;
    if (access(log_path, W_OK) == 0)
        return 1;
    if (errno != ENOENT)
        return 0;
    char *dir = strdup(log_path), *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    int ok = access(slash ? dir : ".", W_OK | X_OK) == 0;
    free(dir);
    return ok;
}

static const struct {
    const char *name;
    int (*run)(const char *root, int argc, char **argv);
} VERBS[] = {
    {"state", verb_state},   {"start", verb_start},   {"kill", verb_kill},
    {"delete", verb_delete}, {"pause", verb_pause},   {"resume", verb_resume},
    {"list", verb_list},     {"exec", verb_exec},     {"create", verb_create},
    {"run", verb_run},       {NULL, NULL},
};

/* 3 + --preserve-fds N: the first fd the runtime does not hand to the container
 * (any mention of the flag counts; a value we cannot read: no primer). */
static int preserved_fds(int argc, char **argv, int *min_fd) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i] + strspn(argv[i], "-"), *value = NULL;
        if (a == argv[i] || strncmp(a, "preserve-fds", 12) != 0)
            continue;
        if (a[12] == '=')
            value = a + 13;
        else if (a[12] == '\0' && i + 1 < argc)
            value = argv[i + 1];
        else
            return -1;
        char *end;
        long n = strtol(value, &end, 10);
        if (*value == '\0' || *end != '\0' || n < 0 || n > 4096)
            return -1;
        if (3 + n > *min_fd)
            *min_fd = 3 + (int)n;
    }
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return -1;
    return 0;
}

static int only_ascii(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
            if (*p >= 0x80)
                return 0;
    return 1;
}

/* To Python; for create, run and exec with a primer first: Python's cgroup moves will
 * be quick (primer.c). */
static void hand_over(const char *name, int nargs, char **args) {
    int min_fd = 3;
    if ((strcmp(name, "create") == 0 || strcmp(name, "run") == 0 ||
         strcmp(name, "exec") == 0) && preserved_fds(nargs - 1, args + 1, &min_fd) == 0)
        start_primer(min_fd);
    hand_to_python();
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tomato-runtime-front LAUNCHER [ARGS...] (the launcher's "
                        "interpreter, see bin/tomato-runtime)\n");
        return 1;
    }
    launcher = argv[1];
    saved_argc = argc - 1;
    saved_argv = argv + 1;
    const char *force = getenv("TOMATO_RUNTIME_PYTHON");
    if ((force && *force && strcmp(force, "0") != 0) || geteuid() != 0 ||
        !only_ascii(argc - 2, argv + 2))
        hand_to_python();

    int first = 0;
    const char *root = "";
    if (parse_globals(argc - 2, argv + 2, &first, &root) < 0 || first >= argc - 2 ||
        !log_usable())
        hand_to_python();
    if (!*root)
        root = DEFAULT_ROOT;
    char **args = argv + 2 + first;
    int nargs = argc - 2 - first;
    const char *name = args[0];
    int (*run)(const char *, int, char **) = NULL;
    for (int i = 0; VERBS[i].name; i++)
        if (strcmp(VERBS[i].name, name) == 0)
            run = VERBS[i].run;
    if (!run || (nargs > 1 && (strcmp(args[1], "-h") == 0 || strcmp(args[1], "--help") == 0)))
        hand_over(name, nargs, args);

    if (log_debug_on) {
        /* f"{name}: {' '.join(rest)}".rstrip(": ") */
        char *line = NULL;
        size_t len = 0, cap = 0;
        buf_printf(&line, &len, &cap, "%s: ", name);
        for (int i = 1; i < nargs; i++)
            buf_printf(&line, &len, &cap, "%s%s", i > 1 ? " " : "", args[i]);
        while (len > 0 && (line[len - 1] == ':' || line[len - 1] == ' '))
            line[--len] = '\0';
        log_debug("%s", line);
        free(line);
    }
    int code = run(root, nargs - 1, args + 1);
    if (code == ASK_PYTHON) {
        if (committed) { /* a verb must never do this: say so rather than act twice */
            fprintf(stderr, "tomato-runtime: internal error: %s handed over too late\n", name);
            return 1;
        }
        hand_over(name, nargs, args);
    }
    commit();
    if (fflush(stdout) != 0 && !failure)
        fail_os(errno, NULL);
    if (failure || code < 0) {
        char *msg = failure && *failure ? failure : "unknown error";
        first_line(msg);
        if (*log_path) {
            char *rec = NULL;
            if (asprintf(&rec, "%s failed: %s", name, msg) >= 0)
                log_record("error", rec, 1);
            free(rec);
        }
        fprintf(stderr, "tomato-runtime: %s\n", msg);
        /* exec, as runc's: 255 is the runtime's own failure, any other code the process's */
        return strcmp(name, "exec") == 0 ? 255 : 1;
    }
    log_debug("%s: exit status %d", name, code);
    return code;
}
