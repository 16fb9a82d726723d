/* ROOT/<id>/state.json read as tomato.runtime.statedir reads it, and the true
 * status computed as tomato.runtime.lifecycle.status_of does.
 *
 * A record is taken only when every member is one statedir.Record knows, with
 * the type it declares; anything else (a corrupt, truncated or unknown file, a
 * record of a create that died before its first save) goes to Python, which
 * words the error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

#define STATE_FILE "state.json"
#define EXEC_FIFO "exec.fifo"

/* runc's rule (oci/state.validate_id): letters, digits, then also _+-. */
int valid_id(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 1024)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '+' && c != '-' && c != '.')))
            return 0;
    }
    return 1;
}

/* os.path.join(root, id) */
char *state_dir(const char *root, const char *id) {
    char *path = NULL;
    size_t n = strlen(root);
    if (asprintf(&path, "%s%s%s", root, n == 0 || root[n - 1] == '/' ? "" : "/", id) < 0)
        return NULL;
    return path;
}

static char *state_file(const char *root, const char *id, const char *name) {
    char *dir = state_dir(root, id), *path = NULL;
    if (dir && asprintf(&path, "%s/%s", dir, name) < 0)
        path = NULL;
    free(dir);
    return path;
}

static int read_file(const char *path, char **text, size_t *len) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not hang us */
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_STATE_SIZE) {
        close(fd);
        return -EINVAL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (1) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && n + (size_t)r >= cap)) { /* an error, or it grew */
            free(buf);
            close(fd);
            return -EINVAL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

static int str_member(struct record *rec, const char *key, const char **out, const char *dflt,
                      int required) {
    int v = json_get(&rec->js, 0, key);
    if (v < 0) {
        *out = dflt;
        return required ? -1 : 0;
    }
    if (rec->js.n[v].type != J_STR)
        return -1;
    *out = rec->js.n[v].s;
    return 0;
}

static int int_member(struct record *rec, const char *key, long long *out) {
    int v = json_get(&rec->js, 0, key);
    *out = 0;
    if (v < 0)
        return 0;
    if (rec->js.n[v].type != J_NUM || !rec->js.n[v].is_int)
        return -1;
    *out = rec->js.n[v].i;
    return 0;
}

static const char *const KNOWN[] = {
    "id", "bundle", "rootfs", "created", "pid", "pid_start", "creator_pid", "creator_start",
    "status", "annotations", "cgroup", "config", "owner", "no_pivot", "host_mounts", NULL,
};

static int known_member(const char *key) {
    for (int i = 0; KNOWN[i]; i++)
        if (strcmp(KNOWN[i], key) == 0)
            return 1;
    return 0;
}

int record_load(const char *root, const char *id, struct record *rec) {
    memset(rec, 0, sizeof *rec);
    rec->status_node = rec->annotations = rec->config = rec->host_mounts = -1;
    char *path = state_file(root, id, STATE_FILE);
    if (!path)
        return -1;
    int r = read_file(path, &rec->text, &rec->len);
    free(path);
    if (r == -ENOENT) {
        /* No record: no container, unless its directory is there (a create that
         * died before its first save, which Python describes). */
        char *dir = state_dir(root, id);
        struct stat st;
        int is_dir = dir && stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
        free(dir);
        return is_dir ? -1 : 1;
    }
    if (r < 0 || json_parse(rec->text, rec->len, &rec->js) < 0 || rec->js.n[0].type != J_OBJ)
        return -1;
    struct json *j = &rec->js;
    for (int k = j->n[0].child; k >= 0; k = j->n[k].next)
        if (!known_member(j->n[k].s))
            return -1;
    if (str_member(rec, "id", &rec->id, "", 1) < 0 ||
        str_member(rec, "bundle", &rec->bundle, "", 1) < 0 ||
        str_member(rec, "rootfs", &rec->rootfs, "", 1) < 0 ||
        str_member(rec, "created", &rec->created, "", 1) < 0 ||
        str_member(rec, "status", &rec->status, "creating", 0) < 0 ||
        str_member(rec, "owner", &rec->owner, "", 0) < 0 ||
        int_member(rec, "pid", &rec->pid) < 0 ||
        int_member(rec, "pid_start", &rec->pid_start) < 0 ||
        int_member(rec, "creator_pid", &rec->creator_pid) < 0 ||
        int_member(rec, "creator_start", &rec->creator_start) < 0 || strcmp(rec->id, id) != 0)
        return -1;
    rec->status_node = json_get(j, 0, "status");
    int v = json_get(j, 0, "annotations");
    if (v >= 0) {
        if (j->n[v].type != J_OBJ || json_has_duplicates(j, v))
            return -1;
        for (int k = j->n[v].child; k >= 0; k = j->n[k].next)
            if (j->n[j->n[k].value].type != J_STR)
                return -1;
        rec->annotations = j->n[v].child >= 0 ? v : -1;
    }
    v = json_get(j, 0, "config");
    if (v >= 0 && j->n[v].type != J_OBJ)
        return -1;
    rec->config = v;
    v = json_get(j, 0, "no_pivot");
    if (v >= 0 && j->n[v].type != J_TRUE && j->n[v].type != J_FALSE)
        return -1;
    v = json_get(j, 0, "host_mounts");
    if (v >= 0 && j->n[v].type != J_NULL) {
        if (j->n[v].type != J_OBJ)
            return -1;
        rec->host_mounts = v;
    }
    v = json_get(j, 0, "cgroup");
    if (v >= 0 && j->n[v].type != J_NULL && cgroup_from_state(rec, v) < 0)
        return -1;
    return 0;
}

/* Field 22 of /proc/PID/stat (clock ticks since boot), 0 if gone or a zombie. */
long long proc_start_time(long long pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] == '\0')
        return 0;
    p += 2;
    if (*p == 'Z' || *p == 'X')
        return 0;
    for (int field = 0; field < 19; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoll(p, NULL, 10);
}

int alive(long long pid, long long start) {
    return pid > 0 && proc_start_time(pid) == start;
}

const char *record_status(const char *root, const struct record *rec) {
    if (strcmp(rec->status, "creating") == 0) {
        /* Creation in progress only while the creating runtime still lives. */
        return alive(rec->creator_pid, rec->creator_start) && rec->creator_pid != getpid()
                   ? "creating" : "stopped";
    }
    if (!alive(rec->pid, rec->pid_start))
        return "stopped";
    char *fifo = state_file(root, rec->id, EXEC_FIFO);
    struct stat st;
    int created = fifo && stat(fifo, &st) == 0;
    int err = errno;
    free(fifo);
    if (created)
        return "created";
    if (err != ENOENT && err != ENOTDIR)
        return NULL;
    if (rec->cg) {
        int frozen = cg_frozen(rec->cg);
        if (frozen < 0)
            return NULL;
        if (frozen)
            return "paused";
    }
    return "running";
}

int record_save_status(const char *root, struct record *rec, const char *status) {
    if (rec->status_node < 0) {
        errno = EINVAL;
        return -1;
    }
    const struct jnode *n = &rec->js.n[rec->status_node];
    size_t head = (size_t)(n->raw - rec->text), tail = head + n->rawlen;
    char *tmp = state_file(root, rec->id, STATE_FILE ".tmp");
    char *path = state_file(root, rec->id, STATE_FILE);
    int fd = tmp && path ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    int ok = fd >= 0;
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", status);
    const char *parts[3] = {rec->text, quoted, rec->text + tail};
    size_t sizes[3] = {head, strlen(quoted), rec->len - tail};
    for (int i = 0; ok && i < 3; i++) {
        size_t done = 0;
        while (ok && done < sizes[i]) {
            ssize_t w = write(fd, parts[i] + done, sizes[i] - done);
            if (w < 0 && errno == EINTR)
                continue;
            ok = w > 0;
            done += w > 0 ? (size_t)w : 0;
        }
    }
    int err = errno;
    if (fd >= 0 && close(fd) < 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (ok && rename(tmp, path) < 0) {
        ok = 0;
        err = errno;
    }
    if (!ok && fd >= 0)
        unlink(tmp);
    free(tmp);
    free(path);
    errno = err;
    return ok ? 0 : -1;
}

/* Remove what DFD holds, depth first, never following a symlink (best effort). */
static void remove_below(int dfd) {
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM))
            continue;
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            remove_below(sub);
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
    }
    closedir(d);
}

/* StateDir.remove: the directory and whatever is in it; errors are ignored, as there. */
void remove_state_dir(const char *root, const char *id) {
    char *dir = state_dir(root, id);
    if (!dir)
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd >= 0) {
        remove_below(dfd);
        rmdir(dir);
    }
    free(dir);
}

/* config.hooks.KIND: a non-empty list (1), nothing (0), or something else (-1). */
int config_hooks(const struct record *rec, const char *kind) {
    if (rec->config < 0)
        return 0;
    int hooks = json_get(&rec->js, rec->config, "hooks");
    if (hooks < 0 || rec->js.n[hooks].type == J_NULL)
        return 0;
    if (rec->js.n[hooks].type != J_OBJ)
        return -1;
    int list = json_get(&rec->js, hooks, kind);
    if (list < 0 || rec->js.n[list].type == J_NULL)
        return 0;
    if (rec->js.n[list].type != J_ARR)
        return -1;
    return rec->js.n[list].child >= 0;
}

/* lifecycle._shares_pid_ns: no pid namespace of its own, or one joined by path. */
int shares_pid_ns(const struct record *rec) {
    const struct json *j = &rec->js;
    int linux_ = rec->config >= 0 ? json_get(j, rec->config, "linux") : -1;
    int list = linux_ >= 0 ? json_get(j, linux_, "namespaces") : -1;
    if (list < 0 || j->n[list].type != J_ARR)
        return 1;
    for (int e = j->n[list].child; e >= 0; e = j->n[e].next) {
        int type = json_get(j, e, "type");
        if (type >= 0 && j->n[type].type == J_STR && strcmp(j->n[type].s, "pid") == 0) {
            int path = json_get(j, e, "path");
            return path >= 0 && j->n[path].type == J_STR && j->n[path].s[0] != '\0';
        }
    }
    return 1;
}
