/* The few cgroup operations the front end's verbs need, step for step as
 * tomato.cgroups (base.py, v1.py, v2.py) does them: exists, frozen, freeze,
 * thaw, kill_all, destroy.  It reads only what Manager.to_dict() records:
 *
 *   v1: {"version": 1, "cgroups_path": S, "container_id": S,
 *        "paths": {controller: directory, ...}, "unified": S|null,
 *        "created": {directory: levels made, ...}}
 *   v2: {"version": 2, "cgroups_path": S, "container_id": S, "path": S,
 *        "mountpoint": S, "created": N}
 *
 * Any other member (another driver's, e.g. systemd's) or type: Python answers.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

#define MAX_PATHS 64
#define FREEZE_ATTEMPTS 1000

struct cgroup_rec {
    int version;
    const char *cgroups_path, *container_id;
    int npaths;                     /* v1: paths in order, the cgroup2 one ("") last */
    const char *ctrl[MAX_PATHS + 1], *dir[MAX_PATHS + 1];
    const struct json *js;
    int created_v1;                 /* object node or -1 */
    long long created_v2;
    const char *path;               /* v2 */
};

static int str_or_default(const struct json *j, int obj, const char *key, const char **out) {
    int v = json_get(j, obj, key);
    *out = "";
    if (v < 0)
        return 0;
    if (j->n[v].type != J_STR)
        return -1;
    *out = j->n[v].s;
    return 0;
}

static int only_keys(const struct json *j, int obj, const char *const *keys) {
    for (int k = j->n[obj].child; k >= 0; k = j->n[k].next) {
        int ok = 0;
        for (int i = 0; keys[i]; i++)
            ok |= strcmp(keys[i], j->n[k].s) == 0;
        if (!ok)
            return -1;
    }
    return json_has_duplicates(j, obj) ? -1 : 0;
}

int cgroup_from_state(struct record *rec, int node) {
    static const char *const v1_keys[] = {"version", "cgroups_path", "container_id", "paths",
                                          "unified", "created", NULL};
    static const char *const v2_keys[] = {"version", "cgroups_path", "container_id", "path",
                                          "mountpoint", "created", NULL};
    const struct json *j = &rec->js;
    if (j->n[node].type != J_OBJ)
        return -1;
    struct cgroup_rec *cg = calloc(1, sizeof *cg);
    if (!cg)
        return -1;
    cg->js = j;
    cg->created_v1 = -1;
    int v = json_get(j, node, "version");
    if (v < 0 || j->n[v].type != J_NUM || !j->n[v].is_int)
        return -1;
    cg->version = (int)j->n[v].i;
    if (str_or_default(j, node, "cgroups_path", &cg->cgroups_path) < 0 ||
        str_or_default(j, node, "container_id", &cg->container_id) < 0)
        return -1;
    int created = json_get(j, node, "created");
    if (cg->version == 1) {
        if (only_keys(j, node, v1_keys) < 0)
            return -1;
        int paths = json_get(j, node, "paths");
        if (paths < 0 || j->n[paths].type != J_OBJ || json_len(j, paths) > MAX_PATHS)
            return -1;
        for (int k = j->n[paths].child; k >= 0; k = j->n[k].next) {
            int d = j->n[k].value;
            if (j->n[d].type != J_STR || j->n[k].s[0] == '\0')
                return -1;
            cg->ctrl[cg->npaths] = j->n[k].s;
            cg->dir[cg->npaths++] = j->n[d].s;
        }
        int unified = json_get(j, node, "unified");
        if (unified >= 0 && j->n[unified].type != J_NULL) {
            if (j->n[unified].type != J_STR)
                return -1;
            if (j->n[unified].s[0] != '\0') {
                cg->ctrl[cg->npaths] = "";
                cg->dir[cg->npaths++] = j->n[unified].s;
            }
        }
        if (created >= 0) {
            if (j->n[created].type != J_OBJ || json_has_duplicates(j, created))
                return -1;
            for (int k = j->n[created].child; k >= 0; k = j->n[k].next)
                if (j->n[j->n[k].value].type != J_NUM || !j->n[j->n[k].value].is_int)
                    return -1;
            cg->created_v1 = created;
        }
    } else if (cg->version == 2) {
        if (only_keys(j, node, v2_keys) < 0)
            return -1;
        int path = json_get(j, node, "path"), mnt = json_get(j, node, "mountpoint");
        if (path < 0 || j->n[path].type != J_STR || mnt < 0 || j->n[mnt].type != J_STR)
            return -1;
        cg->path = j->n[path].s;
        cg->ctrl[0] = "";
        cg->dir[0] = cg->path;
        cg->npaths = 1;
        if (created >= 0) {
            if (j->n[created].type != J_NUM || !j->n[created].is_int)
                return -1;
            cg->created_v2 = j->n[created].i;
        }
    } else {
        return -1;
    }
    rec->cg = cg;
    return 0;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static char *join(const char *dir, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0) {
        perror("tomato-runtime");
        exit(1);
    }
    return p;
}

static const char *controller_dir(const struct cgroup_rec *cg, const char *ctrl) {
    for (int i = 0; i < cg->npaths; i++)
        if (strcmp(cg->ctrl[i], ctrl) == 0)
            return cg->dir[i];
    return NULL;
}

int cg_exists(const struct cgroup_rec *cg) {
    for (int i = 0; i < cg->npaths; i++)
        if (is_dir(cg->dir[i]))
            return 1;
    return 0;
}

static int require(const struct cgroup_rec *cg) {
    if (cg_exists(cg))
        return 0;
    return fail("cgroup %s does not exist", cg->npaths ? cg->dir[0] : "?");
}

/* base.read: the whole small file, stripped; -errno on failure. */
static int read_stripped(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    while (n > 0 && strchr(" \t\n\r\v\f", buf[n - 1]))
        buf[--n] = '\0';
    size_t lead = strspn(buf, " \t\n\r\v\f");
    memmove(buf, buf + lead, (size_t)n - lead + 1);
    return 0;
}

/* base.write, with base.write_error's words for a refusal. */
static int write_value(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int err = 0;
    if (fd < 0) {
        err = errno;
    } else {
        if (write(fd, value, strlen(value)) < 0)
            err = errno;
        close(fd);
    }
    if (err == 0)
        return 0;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (err == ENOENT)
        return fail("cannot set %s: the kernel has no such file in %.*s", name,
                    (int)(name - path > 1 ? name - path - 1 : name - path), path);
    char reason[256];
    snprintf(reason, sizeof reason, "%s", strerror(err));
    for (char *c = reason; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return fail("cannot set %s to '%s': %s%s", name, value, reason,
                err == EBUSY ? " (below current usage, or in use by a child cgroup)" : "");
}

int cg_write_file(const char *path, const char *value) {
    return write_value(path, value);
}

int cg_read_file(const char *path, char *buf, size_t size) {
    return read_stripped(path, buf, size);
}

static long long read_int(const char *path) {
    char buf[64], *end;
    if (read_stripped(path, buf, sizeof buf) < 0 || buf[0] == '\0')
        return 0;
    long long v = strtoll(buf, &end, 10);
    return *end == '\0' ? v : 0;
}

int cg_frozen(const struct cgroup_rec *cg) {
    if (cg->version == 2) {
        char *f = join(cg->path, "cgroup.freeze");
        int frozen = read_int(f) == 1;
        free(f);
        return frozen;
    }
    const char *d = controller_dir(cg, "freezer");
    if (!d)
        return -1;
    char *f = join(d, "freezer.state"), buf[64];
    int r = read_stripped(f, buf, sizeof buf);
    free(f);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return -1;
    return strcmp(buf, "FROZEN") == 0 || strcmp(buf, "FREEZING") == 0;
}

static int v2_freeze(const struct cgroup_rec *cg, const char *value) {
    char *f = join(cg->path, "cgroup.freeze"), *events = join(cg->path, "cgroup.events");
    int r = 0;
    if (!exists(f)) {
        r = is_dir(cg->path) ? fail("cgroup.freeze needs linux 5.2 or later")
                             : fail("cgroup %s does not exist", cg->path);
    } else if ((r = write_value(f, value)) == 0) {
        /* cgroup.events reports "frozen 1" once every task has stopped. */
        int done = 0;
        for (int i = 0; i < FREEZE_ATTEMPTS && !done; i++) {
            char buf[512], want[16];
            snprintf(want, sizeof want, "frozen %s", value);
            if (read_stripped(events, buf, sizeof buf) == 0) {
                for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
                    done |= strcmp(line, want) == 0;
            }
            if (!done)
                sleep_ms(i < 10 ? 1 : 10);
        }
        if (!done && strcmp(value, "1") == 0) {
            write_value(f, "0");
            r = fail("cgroup %s did not freeze in time", cg->path);
        }
    }
    free(f);
    free(events);
    return r;
}

int cg_freeze(const struct cgroup_rec *cg) {
    if (cg->version == 2)
        return v2_freeze(cg, "1");
    if (require(cg) < 0)
        return -1;
    const char *d = controller_dir(cg, "freezer");
    if (!d)
        return fail("the freezer cgroup controller is not mounted");
    char *path = join(d, "freezer.state"), buf[64];
    /* FREEZING may last a while (tasks in uninterruptible sleep): ask again, bounded. */
    for (int i = 0; i < FREEZE_ATTEMPTS; i++) {
        if (i % 50 == 0 && write_value(path, "FROZEN") < 0)
            goto failed;
        int r = read_stripped(path, buf, sizeof buf);
        if (r < 0) {
            fail_os(-r, path);
            goto failed;
        }
        if (strcmp(buf, "FROZEN") == 0) {
            free(path);
            return 0;
        }
        sleep_ms(i < 10 ? 1 : 10);
    }
    if (write_value(path, "THAWED") == 0)
        fail("cgroup %s did not freeze in time", d);
failed:
    free(path);
    return -1;
}

int cg_thaw(const struct cgroup_rec *cg) {
    if (cg->version == 2)
        return v2_freeze(cg, "0");
    if (require(cg) < 0)
        return -1;
    const char *d = controller_dir(cg, "freezer");
    if (!d)
        return fail("the freezer cgroup controller is not mounted");
    char *path = join(d, "freezer.state"), buf[64];
    int r = write_value(path, "THAWED");
    for (int i = 0; r == 0 && i < FREEZE_ATTEMPTS; i++) {
        int got = read_stripped(path, buf, sizeof buf);
        if (got < 0) {
            r = fail_os(-got, path);
            break;
        }
        if (strcmp(buf, "THAWED") == 0)
            break;
        sleep_ms(1);
    }
    free(path);
    return r;
}

struct pids {
    long long *v;
    size_t n, cap;
};

/* base.cgroup_pids: every process in DIR and the cgroups below it. */
static void collect_pids(const char *dir, struct pids *out, int depth) {
    char *procs = join(dir, "cgroup.procs");
    FILE *f = fopen(procs, "re");
    free(procs);
    if (f) {
        long long pid;
        while (fscanf(f, "%lld", &pid) == 1) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->v = realloc(out->v, out->cap * sizeof *out->v);
                if (!out->v) {
                    perror("tomato-runtime");
                    exit(1);
                }
            }
            out->v[out->n++] = pid;
        }
        fclose(f);
    }
    DIR *d = depth < 64 ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *sub = join(dir, e->d_name);
        collect_pids(sub, out, depth + 1);
        free(sub);
    }
    if (d)
        closedir(d);
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Manager.pids (v1 prefers a controller every task is in) then signal_pids. */
static int signal_all(const struct cgroup_rec *cg, int sig) {
    const char *top = NULL;
    if (cg->version == 2) {
        if (!is_dir(cg->path))
            return fail("cgroup %s does not exist", cg->path);
        top = cg->path;
    } else {
        static const char *const order[] = {"pids", "freezer", "devices", "memory", "cpu", NULL};
        for (int i = 0; order[i] && !top; i++) {
            const char *d = controller_dir(cg, order[i]);
            if (d && is_dir(d))
                top = d;
        }
        for (int i = 0; i < cg->npaths && !top; i++)
            if (is_dir(cg->dir[i]))
                top = cg->dir[i];
        if (!top)
            return fail("cgroup %s does not exist", cg->npaths ? cg->dir[0] : "?");
    }
    struct pids pids = {0};
    collect_pids(top, &pids, 0);
    if (pids.n)
        qsort(pids.v, pids.n, sizeof *pids.v, by_value);
    int r = 0;
    for (size_t i = 0; i < pids.n && r == 0; i++) {
        if (i > 0 && pids.v[i] == pids.v[i - 1])
            continue;
        if (kill((pid_t)pids.v[i], sig) < 0 && errno != ESRCH)
            r = fail_os(errno, NULL);
    }
    free(pids.v);
    return r;
}

int cg_kill_all(const struct cgroup_rec *cg, int sig) {
    if (require(cg) < 0)
        return -1;
    int can_freeze;
    if (cg->version == 2) {
        char *kill_file = join(cg->path, "cgroup.kill");
        int atomic = sig == SIGKILL && exists(kill_file);
        int r = atomic ? write_value(kill_file, "1") : 0; /* races no fork (linux 5.14) */
        free(kill_file);
        if (atomic)
            return r;
        char *freeze = join(cg->path, "cgroup.freeze");
        can_freeze = exists(freeze);
        free(freeze);
    } else {
        const char *d = controller_dir(cg, "freezer");
        can_freeze = d && is_dir(d);
    }
    /* Frozen meanwhile so a forking process cannot escape between listing and
     * signalling; a paused container stays paused unless SIGKILL. */
    int was_frozen = can_freeze && cg_frozen(cg) == 1;
    if (can_freeze && !was_frozen && cg_freeze(cg) < 0)
        return -1;
    int r = signal_all(cg, sig);
    if (can_freeze && (sig == SIGKILL || !was_frozen) && cg_thaw(cg) < 0)
        r = -1;
    return r;
}

/* posixpath.dirname */
static char *dirname_of(const char *p) {
    const char *slash = strrchr(p, '/');
    size_t i = slash ? (size_t)(slash - p) + 1 : 0;
    char *head = strndup(p, i);
    size_t n = strlen(head), all = strspn(head, "/");
    if (n > 0 && all != n)
        while (n > 0 && head[n - 1] == '/')
            head[--n] = '\0';
    return head;
}

/* One bottom-up pass of rmdir; 0, or the errno that stopped it. */
static int rmdir_tree(const char *dir, int depth) {
    DIR *d = depth < 64 ? opendir(dir) : NULL;
    struct dirent *e;
    int err = 0;
    while (d && !err && (e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *sub = join(dir, e->d_name);
        err = rmdir_tree(sub, depth + 1);
        free(sub);
    }
    if (d)
        closedir(d);
    if (!err && rmdir(dir) < 0 && errno != ENOENT)
        err = errno;
    return err;
}

/* base.remove_tree: the kernel refuses (EBUSY) until exiting tasks have left. */
static int remove_tree(const char *dir) {
    for (int i = 0; i < 20; i++) {
        int err = rmdir_tree(dir, 0);
        if (err == 0)
            return 0;
        if (err != EBUSY && err != ENOTEMPTY && err != EAGAIN) {
            char reason[256];
            snprintf(reason, sizeof reason, "%s", strerror(err));
            for (char *c = reason; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            return fail("cannot remove cgroup %s: %s", dir, reason);
        }
        if (i == 19)
            return fail("cannot remove cgroup %s: still in use", dir);
        sleep_ms(10.0 * (i + 1));
    }
    return 0;
}

/* base.parents_to_remove, then base.remove_empty_parents. */
static void remove_parents(const struct cgroup_rec *cg, const char *dir, long long created) {
    char expected[1100];
    snprintf(expected, sizeof expected, "tomato/%s", cg->container_id);
    const char *p = cg->cgroups_path;
    size_t lead = strspn(p, "/"), n = strlen(p);
    while (n > lead && p[n - 1] == '/')
        n--;
    int is_default = cg->container_id[0] != '\0' && n - lead == strlen(expected) &&
                     strncmp(p + lead, expected, n - lead) == 0;
    long long levels = created - 1 > (is_default ? 1 : 0) ? created - 1 : (is_default ? 1 : 0);
    char *parent = dirname_of(dir);
    for (long long i = 0; i < levels; i++) {
        if (rmdir(parent) < 0)
            break;
        char *up = dirname_of(parent);
        free(parent);
        parent = up;
    }
    free(parent);
}

int cg_destroy(const struct cgroup_rec *cg) {
    for (int i = 0; i < cg->npaths; i++) {
        const char *d = cg->dir[i];
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= strcmp(cg->dir[k], d) == 0;
        if (seen)
            continue;
        if (is_dir(d) && remove_tree(d) < 0)
            return -1;
        long long created = cg->created_v2;
        if (cg->version == 1) {
            created = 0;
            int v = json_get(cg->js, cg->created_v1, d);
            if (v >= 0)
                created = cg->js->n[v].i;
        }
        remove_parents(cg, d, created);
    }
    return 0;
}

/* Whether Manager.apply would only write cgroup.procs: every directory there, a v1
 * cpuset with its cpus and mems (else _fill_cpuset's writes: Python's). */
int cg_ready_for_exec(const struct cgroup_rec *cg) {
    for (int i = 0; i < cg->npaths; i++)
        if (!is_dir(cg->dir[i]))
            return 0;
    const char *cs = cg->version == 1 ? controller_dir(cg, "cpuset") : NULL;
    if (!cs)
        return 1;
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    for (int k = 0; k < 2; k++) {
        char *f = join(cs, files[k]), buf[4096];
        int r = read_stripped(f, buf, sizeof buf);
        free(f);
        if (r < 0 || buf[0] == '\0')
            return 0;
    }
    return 1;
}

/* Manager.apply(pid): the pid into each directory's cgroup.procs, in the record's order
 * (v1's paths, then the cgroup2 one).  0, or -1 after fail(). */
int cg_apply(const struct cgroup_rec *cg, int pid) {
    char value[32];
    snprintf(value, sizeof value, "%d", pid);
    for (int i = 0; i < cg->npaths; i++) {
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= strcmp(cg->dir[k], cg->dir[i]) == 0;
        if (seen)
            continue;
        char *procs = join(cg->dir[i], "cgroup.procs");
        int r = write_value(procs, value);
        free(procs);
        if (r < 0) {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/%d", pid);
            if (!exists(proc))
                fail("process %d does not exist", pid);
            return -1;
        }
    }
    return 0;
}
