/* create_config.c: config.json into struct init_config (create.h) for create.c: the
 * mounts as mountopts.parse_options reads them, the devices, paths, sysctls, names and
 * namespaces, the process (take_process); everything the init only reads. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "create_runtime.h"

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

/* ---- the config into struct init_config ---- */

int absent(const struct json *j, int v) {
    return v < 0 || j->n[v].type == J_NULL;
}

const char *str_or(const struct json *j, int obj, const char *key, const char *dflt) {
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
            return PYTHONS("linux.namespaces[].type"); /* user, time: Python's */
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
                return PYTHONS("linux.namespaces[].path (pid)"); /* Python words it */
        } else {
            if (c->njoined >= MAX_JOINED)
                return PYTHONS("linux.namespaces (too many joined)");
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


/* create.py's checks and parse_spec, up to the clone's flags: C, or ASK_PYTHON for anything
 * Python is to word (a missing bundle or rootfs, a caller in a user namespace...). */
int create_config(const struct json *j, const struct create_flags *f, int last_cap,
                  struct init_config *c, struct config_extra *x) {
    memset(c, 0, sizeof *c);
    memset(x, 0, sizeof *x);
    x->pid_ns = -1;
    c->console_fd = -1;
    if (!config_plain(j, 0))
        return PYTHONS("a config.json with a float or a key twice");
    char *bundle = abspath(f->bundle);
    if (!bundle || strncmp(f->bundle, "//", 2) == 0 || !is_dir(bundle))
        return PYTHONS("the bundle");
    c->bundle = bundle;
    x->bundle = bundle;
    int rootv = json_get(j, 0, "root"), linux_ = json_get(j, 0, "linux");
    int process = json_get(j, 0, "process");
    const char *root_path = str_or(j, rootv, "path", "");
    char *rootfs = NULL;
    if (asprintf(&rootfs, "%s%s%s", root_path[0] == '/' ? "" : bundle,
                 root_path[0] == '/' ? "" : "/", root_path) < 0 || !is_dir(rootfs))
        return PYTHONS("root.path");
    char *real = realpath(rootfs, NULL);
    if (!real)
        return PYTHONS("root.path");
    c->rootfs = real;
    c->propagation = absent(j, linux_) ? "" : str_or(j, linux_, "rootfsPropagation", "");
    c->no_pivot = f->no_pivot;
    if (f->no_pivot || !initial_userns())
        return PYTHONS("--no-pivot, or a caller in a user namespace"); /* the init in C pivots, and knows no user namespace */
    int ro = json_get(j, rootv, "readonly");
    c->root_readonly = ro >= 0 && j->n[ro].type == J_TRUE;
    c->proc.last_cap = last_cap;
    if (take_process(j, process, &c->proc, NULL, NULL, 0) < 0)
        return PYTHONS("process");
    c->proc.preserve_fds = f->preserve_fds;
    if (f->console_socket && strlen(f->console_socket) >= 108) /* sun_path */
        return PYTHONS("--console-socket (a path longer than a socket's)");
    /* the preserved fds are the caller's: a gap there would hand the container one of
     * ours (the sync socket, exec.fifo, the dmz), which open at the lowest free number */
    for (int fd = 3; fd < 3 + f->preserve_fds; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            return PYTHONS("--preserve-fds (a preserved fd is not open)");
    int lx = absent(j, linux_) ? -1 : linux_;
    x->linux_ = lx;
    x->process = process;
    take_mounts(j, json_get(j, 0, "mounts"), c);
    take_devices(j, lx < 0 ? -1 : json_get(j, lx, "devices"), c);
    c->masked = strings(j, lx < 0 ? -1 : json_get(j, lx, "maskedPaths"), &c->nmasked);
    c->readonly = strings(j, lx < 0 ? -1 : json_get(j, lx, "readonlyPaths"), &c->nreadonly);
    int sysctl = lx < 0 ? -1 : json_get(j, lx, "sysctl");
    c->nsysctl = absent(j, sysctl) ? 0 : json_len(j, sysctl);
    c->sysctl_keys = calloc((size_t)c->nsysctl + 1, sizeof *c->sysctl_keys);
    c->sysctl_values = calloc((size_t)c->nsysctl + 1, sizeof *c->sysctl_values);
    for (int k = absent(j, sysctl) ? -1 : j->n[sysctl].child, i = 0; k >= 0; k = j->n[k].next, i++) {
        c->sysctl_keys[i] = j->n[k].s;
        c->sysctl_values[i] = j->n[j->n[k].value].s;
    }
    c->hostname = str_or(j, 0, "hostname", NULL);
    c->domainname = str_or(j, 0, "domainname", NULL);
    if (take_namespaces(j, lx < 0 ? -1 : json_get(j, lx, "namespaces"), c, &x->clone_flags,
                        &x->pid_ns, &x->pid_ns_path) != 0)
        return PYTHONS("linux.namespaces");
    return 0;
}
