/* exec: a new process in a running (or created) container, as tomato.runtime.exec
 * and tomato.cli.runtime.cmd_exec do it, for the ordinary case.
 *
 * Ordinary is what containerd's shim sends (`exec --process F --detach --pid-file P
 * [--console-socket S]`) and `exec ID cmd...` with runc's common flags (-d, -t with
 * --console-socket, -e, --cwd, -u UID[:GID], --cap, --no-new-privs, --preserve-fds):
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
#define MAX_ARGS 4096
#define SECCOMP_FILE "seccomp.bpf"
#define SECCOMP_MAGIC "TSECCOMP"

/* exec.py's join order (user first is Python's: a user namespace goes there). */
static const struct {
    const char *kind, *proc_name;
    int flag;
} NAMESPACES[] = {
    {"ipc", "ipc", CLONE_NEWIPC},         {"uts", "uts", CLONE_NEWUTS},
    {"network", "net", CLONE_NEWNET},     {"cgroup", "cgroup", CLONE_NEWCGROUP},
    {"mount", "mnt", CLONE_NEWNS},        {NULL, NULL, 0},
};

static const char *const CAP_NAMES[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE", NULL,
};

/* caps.cap_name */
const char *cap_name(int number, char *buf, size_t size) {
    if (number >= 0 && number < (int)(sizeof CAP_NAMES / sizeof *CAP_NAMES) - 1)
        return CAP_NAMES[number];
    snprintf(buf, size, "CAP_%d", number);
    return buf;
}

static const struct {
    const char *name;
    int resource;
} RLIMITS[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {NULL, 0},
};

/* ---- exec's flags (cli.runtime._exec_flags), as cli.flags.parse reads them ---- */

struct exec_flags {
    const char *process, *pid_file, *console_socket, *cwd, *user, *preserve_fds;
    int detach, tty, no_new_privs;
    const char *env[MAX_ARGS], *cap[MAX_ARGS];
    int nenv, ncap;
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
        int multi = IS("env", "e") ? 1 : IS("cap", "c") ? 2 : 0;
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
        } else {
            if (f->ncap >= MAX_ARGS)
                return -1;
            f->cap[f->ncap++] = v;
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

/* ---- the process: oci.spec.parse_process's rules, strictly (else Python) ---- */

static int is_null(const struct json *j, int v) {
    return v < 0 || j->n[v].type == J_NULL;
}

static int int_in(const struct json *j, int v, long long lo, long long hi, long long *out) {
    if (j->n[v].type != J_NUM || !j->n[v].is_int || j->n[v].i < lo || j->n[v].i > hi)
        return -1;
    *out = j->n[v].i;
    return 0;
}

static int only_members(const struct json *j, int obj, const char *const *keys) {
    if (j->n[obj].type != J_OBJ || json_has_duplicates(j, obj))
        return -1;
    for (int k = j->n[obj].child; k >= 0; k = j->n[k].next) {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= strcmp(keys[i], j->n[k].s) == 0;
        if (!known)
            return -1;
    }
    return 0;
}

/* caps.parse for one set: names to a mask; -1 for a name Python would refuse or warn of. */
static int cap_set(const struct json *j, int v, int last_cap, uint64_t *mask) {
    *mask = 0;
    if (is_null(j, v))
        return 0;
    if (j->n[v].type != J_ARR)
        return -1;
    for (int e = j->n[v].child; e >= 0; e = j->n[e].next) {
        if (j->n[e].type != J_STR)
            return -1;
        const char *s = j->n[e].s;
        char name[64];
        size_t lead = strspn(s, " \t\n\r\v\f"), len = strlen(s + lead);
        while (len > 0 && strchr(" \t\n\r\v\f", s[lead + len - 1]))
            len--;
        if (len == 0 || len > 40)
            return -1;
        int prefixed = len >= 4 && strncasecmp(s + lead, "CAP_", 4) == 0;
        snprintf(name, sizeof name, "%s%.*s", prefixed ? "" : "CAP_", (int)len, s + lead);
        for (char *c = name; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        int found = -1;
        for (int i = 0; CAP_NAMES[i]; i++)
            if (strcmp(CAP_NAMES[i], name) == 0)
                found = i;
        if (found < 0 || found > last_cap)
            return -1; /* unknown (an error) or beyond this kernel (a warning): Python's */
        *mask |= 1ULL << found;
    }
    return 0;
}

static int take_caps(const struct json *j, int v, struct exec_proc *p) {
    static const char *const keys[] = {"bounding", "effective", "permitted", "inheritable",
                                       "ambient", NULL};
    if (only_members(j, v, keys) < 0)
        return -1;
    struct exec_caps *c = &p->caps;
    p->has_caps = 1;
    return cap_set(j, json_get(j, v, "bounding"), p->last_cap, &c->bounding) < 0 ||
                   cap_set(j, json_get(j, v, "effective"), p->last_cap, &c->effective) < 0 ||
                   cap_set(j, json_get(j, v, "permitted"), p->last_cap, &c->permitted) < 0 ||
                   cap_set(j, json_get(j, v, "inheritable"), p->last_cap, &c->inheritable) < 0 ||
                   cap_set(j, json_get(j, v, "ambient"), p->last_cap, &c->ambient) < 0
               ? -1 : 0;
}

static int strings(const struct json *j, int v, const char ***out, int *n) {
    *n = 0;
    if (is_null(j, v))
        return 0;
    if (j->n[v].type != J_ARR || json_len(j, v) > MAX_ARGS)
        return -1;
    *out = calloc((size_t)json_len(j, v) + 1, sizeof **out);
    if (!*out)
        return -1;
    for (int e = j->n[v].child; e >= 0; e = j->n[e].next) {
        if (j->n[e].type != J_STR)
            return -1;
        (*out)[(*n)++] = j->n[e].s;
    }
    return 0;
}

static int take_user(const struct json *j, int v, struct exec_proc *p) {
    static const char *const keys[] = {"uid", "gid", "umask", "additionalGids", "username",
                                       NULL};
    p->uid = 0;
    p->gid = 0;
    p->umask = -1;
    p->ngids = 0;
    if (is_null(j, v))
        return 0;
    if (only_members(j, v, keys) < 0)
        return -1;
    long long x;
    int m = json_get(j, v, "uid");
    if (!is_null(j, m) && int_in(j, m, 0, 0xFFFFFFFEll, &x) == 0)
        p->uid = (uid_t)x;
    else if (!is_null(j, m))
        return -1;
    m = json_get(j, v, "gid");
    if (!is_null(j, m) && int_in(j, m, 0, 0xFFFFFFFEll, &x) == 0)
        p->gid = (gid_t)x;
    else if (!is_null(j, m))
        return -1;
    m = json_get(j, v, "umask");
    if (!is_null(j, m)) {
        if (int_in(j, m, 0, 07777, &x) < 0)
            return -1;
        p->umask = (long)x;
    }
    m = json_get(j, v, "username");
    if (!is_null(j, m) && j->n[m].type != J_STR)
        return -1;
    m = json_get(j, v, "additionalGids");
    if (!is_null(j, m)) {
        if (j->n[m].type != J_ARR || json_len(j, m) > MAX_GIDS)
            return -1;
        for (int e = j->n[m].child; e >= 0; e = j->n[e].next) {
            if (int_in(j, e, 0, 0xFFFFFFFEll, &x) < 0)
                return -1;
            p->gids[p->ngids++] = (gid_t)x;
        }
    }
    return 0;
}

static int take_rlimits(const struct json *j, int v, struct exec_proc *p) {
    static const char *const keys[] = {"type", "soft", "hard", NULL};
    p->nrlimits = 0;
    if (is_null(j, v))
        return 0;
    if (j->n[v].type != J_ARR)
        return -1;
    for (int e = j->n[v].child; e >= 0; e = j->n[e].next) {
        if (only_members(j, e, keys) < 0 || p->nrlimits >= MAX_RLIMITS)
            return -1;
        int t = json_get(j, e, "type"), s = json_get(j, e, "soft"), h = json_get(j, e, "hard");
        long long soft, hard;
        if (t < 0 || j->n[t].type != J_STR || s < 0 || h < 0 ||
            int_in(j, s, 0, LLONG_MAX, &soft) < 0 || int_in(j, h, 0, LLONG_MAX, &hard) < 0 ||
            soft > hard)
            return -1;
        int found = -1;
        for (int i = 0; RLIMITS[i].name; i++)
            if (strcmp(RLIMITS[i].name, j->n[t].s) == 0)
                found = i;
        for (int i = 0; i < p->nrlimits && found >= 0; i++)
            if (p->rlimits[i].resource == RLIMITS[found].resource)
                found = -1; /* given twice: Python's error */
        if (found < 0)
            return -1;
        p->rlimits[p->nrlimits++] = (struct exec_rlimit){RLIMITS[found].resource,
                                                         RLIMITS[found].name,
                                                         (unsigned long long)soft,
                                                         (unsigned long long)hard};
    }
    return 0;
}

static int boolean(const struct json *j, int v, int *out) {
    *out = 0;
    if (is_null(j, v))
        return 0;
    if (j->n[v].type != J_TRUE && j->n[v].type != J_FALSE)
        return -1;
    *out = j->n[v].type == J_TRUE;
    return 0;
}

/* The process.json members exec understands; ENV_EXTRA (exec's -e) appended to env.
 * ARGS (exec's command) replaces args when given.  0, or -1: Python's. */
static int take_process(const struct json *j, int v, struct exec_proc *p, char **args,
                        int nargs, const char *const *env_extra, int nextra) {
    static const char *const keys[] = {
        "args", "env", "cwd", "terminal", "user", "rlimits", "noNewPrivileges",
        "capabilities", "consoleSize", "oomScoreAdj", "apparmorProfile", "selinuxLabel",
        NULL,
    };
    if (v < 0 || only_members(j, v, keys) < 0)
        return -1;
    const char **list = NULL;
    int n = 0;
    if (args) {
        p->args = args;
    } else {
        if (strings(j, json_get(j, v, "args"), &list, &n) < 0 || n == 0)
            return -1;
        p->args = (char **)list;
    }
    (void)nargs;
    /* env: env_dict's order (first place, last value), one slot more for HOME */
    int envn = 0;
    if (strings(j, json_get(j, v, "env"), &list, &envn) < 0)
        return -1;
    p->env = calloc((size_t)(envn + nextra + 2), sizeof *p->env);
    if (!p->env)
        return -1;
    int used = 0;
    for (int i = 0; i < envn + nextra; i++) {
        const char *e = i < envn ? list[i] : env_extra[i - envn];
        const char *eq = strchr(e, '=');
        if (!eq || eq == e)
            return -1; /* not KEY=value (Python's error), or a name execve refuses */
        size_t key = (size_t)(eq - e) + 1;
        int at = used;
        for (int k = 0; k < used; k++)
            if (strncmp(p->env[k], e, key) == 0)
                at = k;
        p->env[at] = (char *)e;
        if (at == used)
            used++;
    }
    for (int k = 0; k < used; k++) {
        p->has_home |= strncmp(p->env[k], "HOME=", 5) == 0;
        if (strncmp(p->env[k], "PATH=", 5) == 0) {
            p->has_path = 1;
            p->path_value = p->env[k] + 5;
        }
    }
    int m = json_get(j, v, "cwd");
    p->cwd = "/";
    if (!is_null(j, m)) {
        if (j->n[m].type != J_STR)
            return -1;
        if (j->n[m].s[0] != '\0')
            p->cwd = j->n[m].s;
        if (p->cwd[0] != '/')
            return -1;
    }
    if (boolean(j, json_get(j, v, "terminal"), &p->terminal) < 0 ||
        boolean(j, json_get(j, v, "noNewPrivileges"), &p->no_new_privs) < 0 ||
        take_user(j, json_get(j, v, "user"), p) < 0 ||
        take_rlimits(j, json_get(j, v, "rlimits"), p) < 0)
        return -1;
    m = json_get(j, v, "capabilities");
    if (!is_null(j, m) && take_caps(j, m, p) < 0)
        return -1;
    m = json_get(j, v, "consoleSize");
    if (!is_null(j, m)) {
        static const char *const size_keys[] = {"height", "width", NULL};
        long long h = 0, w = 0;
        int hv = json_get(j, m, "height"), wv = json_get(j, m, "width");
        if (only_members(j, m, size_keys) < 0 || (!is_null(j, hv) && int_in(j, hv, 0, 65535, &h) < 0) ||
            (!is_null(j, wv) && int_in(j, wv, 0, 65535, &w) < 0))
            return -1;
        p->has_size = 1;
        p->rows = (unsigned)h;
        p->cols = (unsigned)w;
    }
    m = json_get(j, v, "oomScoreAdj"); /* exec leaves it as the container's */
    long long ignored;
    if (!is_null(j, m) && int_in(j, m, LLONG_MIN, LLONG_MAX, &ignored) < 0)
        return -1;
    for (int k = 0; k < 2; k++) { /* an LSM label to apply: Python's (lsm.py) */
        m = json_get(j, v, k ? "selinuxLabel" : "apparmorProfile");
        if (!is_null(j, m) && (j->n[m].type != J_STR || j->n[m].s[0] != '\0'))
            return -1;
    }
    return 0;
}

/* A regular file of at most MAX bytes, whole (procfs's report a size of 0). */
static char *read_small(const char *path, size_t max, size_t *len) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    size_t cap = 0, n = 0;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= max) {
        cap = (size_t)st.st_size > 4096 ? (size_t)st.st_size + 1 : 4096;
        buf = malloc(cap + 1);
    }
    while (buf) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            break;
        if (r < 0 || (n += (size_t)r) > max) {
            free(buf);
            buf = NULL;
        } else if (n == cap) {
            char *more = realloc(buf, (cap *= 2) + 1);
            if (!more)
                free(buf);
            buf = more;
        }
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* ROOT/<id>/seccomp.bpf (seccomp_cache.save_for_exec); -1: none to take. */
static int take_seccomp(const char *root, const char *id, struct exec_proc *p) {
    char *dir = state_dir(root, id), *path = NULL;
    if (!dir || asprintf(&path, "%s/%s", dir, SECCOMP_FILE) < 0)
        return -1;
    free(dir);
    size_t len = 0;
    char *data = read_small(path, 16 + 8 * 65535, &len);
    free(path);
    if (!data || len < 16 || memcmp(data, SECCOMP_MAGIC, 8) != 0)
        return -1;
    uint32_t flags, count;
    memcpy(&flags, data + 8, 4);
    memcpy(&count, data + 12, 4);
    if (len != 16 + 8 * (size_t)count || count > 65535 || (flags & ~7u) != 0)
        return -1;
    p->filter_flags = flags;
    p->filter_len = (unsigned short)count;
    p->filter = count ? data + 16 : NULL;
    return 0;
}

/* ---- what this process may hand out ---- */

static int read_int_file(const char *path, long long *out) {
    size_t len;
    char *text = read_small(path, 64, &len);
    if (!text)
        return -1;
    char *end;
    *out = strtoll(text, &end, 10);
    int ok = end != text && (*end == '\n' || *end == '\0');
    free(text);
    return ok ? 0 : -1;
}

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

/* statedir.write_pid_file; 0 or -errno */
static int write_pid_file(const char *path, pid_t pid) {
    char *tmp = NULL, text[32];
    if (asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0)
        return -ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = 0;
    if (fd < 0) {
        err = errno;
    } else {
        int n = snprintf(text, sizeof text, "%d", (int)pid);
        if (write(fd, text, (size_t)n) != n)
            err = errno ? errno : EIO;
        if (close(fd) < 0 && !err)
            err = errno;
        if (!err && rename(tmp, path) < 0)
            err = errno;
    }
    free(tmp);
    return -err;
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
    if (f.pid_file) { /* its directory must be there (else Python's words) */
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
    if (f.process) {
        size_t len;
        char *text = read_small(f.process, MAX_STATE_SIZE, &len);
        static struct json pj;
        if (!text || json_parse(text, len, &pj) < 0 || pj.n[0].type != J_OBJ ||
            take_process(&pj, 0, &p, NULL, 0, NULL, 0) < 0)
            return ASK_PYTHON;
        /* as runc: without capabilities of its own it gets the container's */
        int base_caps = ct.process >= 0 ? json_get(&rec.js, ct.process, "capabilities") : -1;
        if (!p.has_caps && !is_null(&rec.js, base_caps) && take_caps(&rec.js, base_caps, &p) < 0)
            return ASK_PYTHON;
    } else {
        /* build_process: the container's process and the flags */
        if (f.npos < 2 || ct.process < 0 ||
            take_process(&rec.js, ct.process, &p, f.pos + 1, f.npos - 1, f.env, f.nenv) < 0)
            return ASK_PYTHON;
        p.terminal = f.tty;
        if (f.cwd && *f.cwd) {
            if (f.cwd[0] != '/')
                return ASK_PYTHON;
            p.cwd = f.cwd;
        }
        if (f.user && *f.user) {
            const char *colon = strchr(f.user, ':');
            char uid[16] = "";
            if (!colon && strlen(f.user) < sizeof uid)
                snprintf(uid, sizeof uid, "%s", f.user);
            else if (colon && (size_t)(colon - f.user) < sizeof uid)
                snprintf(uid, sizeof uid, "%.*s", (int)(colon - f.user), f.user);
            long long u = decimal(uid, 0xFFFFFFFEll);
            long long g = colon && colon[1] ? decimal(colon + 1, 0xFFFFFFFEll) : 0;
            if (u < 0 || g < 0)
                return ASK_PYTHON;
            p.uid = (uid_t)u;
            p.gid = (gid_t)g;
            p.umask = -1;
            p.ngids = 0;
        }
        if (f.ncap) {
            static struct json cj; /* the flags' names, parsed as a JSON list */
            char *list = NULL;
            size_t len = 0, cap = 0;
            buf_put(&list, &len, &cap, "[", 1);
            for (int i = 0; i < f.ncap; i++) {
                if (i)
                    buf_put(&list, &len, &cap, ",", 1);
                if (json_put_string(&list, &len, &cap, f.cap[i], 1) < 0)
                    return ASK_PYTHON;
            }
            buf_put(&list, &len, &cap, "]", 1);
            uint64_t add;
            if (!list || json_parse(list, len, &cj) < 0 || cap_set(&cj, 0, p.last_cap, &add) < 0)
                return ASK_PYTHON;
            p.has_caps = 1;
            p.caps.bounding |= add;
            p.caps.effective |= add;
            p.caps.permitted |= add;
            p.caps.ambient |= add;
        }
        if (f.no_new_privs)
            p.no_new_privs = 1;
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

    /* The container's namespaces and root, opened while it still runs. */
    int ns_fds[MAX_NS], ns_types[MAX_NS], nns = 0;
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
        ns_fds[nns++] = fd;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%lld/root", rec.pid);
    int root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return ASK_PYTHON;
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

    /* pid and time namespaces apply to our children: joined for this one fork and left
     * right after it, so nothing else we fork is ever born in the container's. */
    static const struct {
        const char *name;
        int flag;
    } FOR_CHILDREN[] = {{"pid", CLONE_NEWPID}, {"time", CLONE_NEWTIME}};
    int own[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        if (!(k == 0 ? ct.pid_ns : ct.time_ns))
            continue;
        char mine[64], theirs[64];
        snprintf(mine, sizeof mine, "/proc/self/ns/%s", FOR_CHILDREN[k].name);
        snprintf(theirs, sizeof theirs, "/proc/%lld/ns/%s", rec.pid, FOR_CHILDREN[k].name);
        own[k] = open(mine, O_RDONLY | O_CLOEXEC);
        int fd = open(theirs, O_RDONLY | O_CLOEXEC);
        if (own[k] < 0 || fd < 0 || setns(fd, FOR_CHILDREN[k].flag) < 0) {
            int err = errno;
            for (int b = k; b >= 0; b--)
                if (own[b] >= 0 && setns(own[b], FOR_CHILDREN[b].flag) < 0)
                    _exit(1); /* cannot happen: our active namespace is always ours */
            return fd < 0 ? fail("container process %lld is gone", rec.pid), 255
                          : (fail_os(err, theirs), 255);
        }
        close(fd);
    }
    pid_t child = fork();
    int fork_err = errno;
    if (child == 0) {
        close(err_pipe[0]);
        close(go_pipe[1]);
        exec_child(&p, ns_fds, ns_types, nns, root_fd, go_pipe[0], console, err_pipe[1]);
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
    close(err_pipe[1]);
    close(go_pipe[0]);
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
    char failure[4096];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(err_pipe[0], failure + got, sizeof failure - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (got += (size_t)r) == sizeof failure - 1)
            break;
    }
    close(err_pipe[0]);
    if (got > 0) {
        failure[got] = '\0';
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        return fail("%s", failure), 255;
    }
    if (console >= 0)
        close(console);
    if (f.pid_file) {
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
