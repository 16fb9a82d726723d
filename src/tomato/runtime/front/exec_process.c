/* exec's process: process.json (or the container's process and exec's flags) read as
 * oci.spec.parse_process and runtime.exec.build_process read it, strictly -- anything
 * Python would refuse, warn of or do that this code does not is a -1, and exec is then
 * Python's -- and the container's seccomp program as create left it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"


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
    /* (no RLIMIT_LOCKS: Python's resource module lacks it and warns; that case is its) */
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {NULL, 0},
};

/* ---- the process: oci.spec.parse_process's rules, strictly (else Python) ---- */

int is_null(const struct json *j, int v) {
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
int cap_set(const struct json *j, int v, int last_cap, uint64_t *mask) {
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

int take_caps(const struct json *j, int v, struct exec_proc *p) {
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

/* An rlimit's value: an integer of 0 .. 2^64-1 (docker's --ulimit core=-1 writes
 * 18446744073709551615, Go's RLIM_INFINITY); from 2^63 up it is RLIM_INFINITY, as
 * process.apply_rlimits reads it. */
static int rlim_value(const struct json *j, int v, unsigned long long *out) {
    if (j->n[v].type != J_NUM)
        return -1;
    if (j->n[v].is_int) {
        if (j->n[v].i < 0)
            return -1;
        *out = (unsigned long long)j->n[v].i;
        return 0;
    }
    const char *raw = j->n[v].raw;
    size_t n = j->n[v].rawlen;
    if (n == 0 || n > 20 || strspn(raw, "0123456789") < n)
        return -1; /* a float, or a negative one */
    char digits[24];
    memcpy(digits, raw, n);
    digits[n] = '\0';
    errno = 0;
    unsigned long long x = strtoull(digits, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = x >= (1ULL << 63) ? (unsigned long long)RLIM_INFINITY : x;
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
        unsigned long long soft, hard;
        if (t < 0 || j->n[t].type != J_STR || s < 0 || h < 0 || rlim_value(j, s, &soft) < 0 ||
            rlim_value(j, h, &hard) < 0 || soft > hard)
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
                                                         soft, hard};
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

/* The process.json members exec understands (front.h). */
int take_process(const struct json *j, int v, struct exec_proc *p, char **args,
                 const char *const *env_extra, int nextra) {
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
        if (only_members(j, m, size_keys) < 0 ||
            (!is_null(j, hv) && int_in(j, hv, 0, 65535, &h) < 0) ||
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
char *read_small(const char *path, size_t max, size_t *len) {
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
int take_seccomp(const char *root, const char *id, struct exec_proc *p) {
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

int read_int_file(const char *path, long long *out) {
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


int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* FMT with two strings, malloc'd; out of memory ends the command (nothing to roll back
 * can be done without memory either) */
char *dupf(const char *fmt, const char *a, const char *b) {
    char *s = NULL;
    if (asprintf(&s, fmt, a, b) < 0) {
        perror("tomato-runtime");
        exit(1);
    }
    return s;
}
