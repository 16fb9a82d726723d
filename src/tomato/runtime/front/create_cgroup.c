/* create_cgroup.c: a new container's cgroups, for create.c, as tomato.cgroups does them
 * on a cgroup v1 (legacy or hybrid) host with the cgroupfs driver:
 *
 *   detect.hierarchies          -> the hierarchies of /proc/self/mountinfo showing our cgroup
 *   new_manager(path, id)       -> each controller's directory (V1Manager's paths, unified)
 *   manager.to_dict()           -> cg_plan_json (the state record's "cgroup" member)
 *   manager.create()            -> cg_plan_create (mkdir -p, counting levels; cpuset filled)
 *   manager.set(Resources)      -> cg_plan_set (create_resources.c: v1.py's plan)
 *   rootfs.cgroup_mount_dirs    -> cg_plan_mount_dirs
 *
 * On a cgroup v2 host (no v1 hierarchy) the V2Manager's: create_cgroup2.c.
 *
 * Whatever Python would warn about or refuse (a controller a limit needs is missing, a
 * value out of Resources.from_oci's range) is found by
 * cg_plan_new (and create_resources.c's cg_plan_check) before anything is made, and the
 * create is then Python's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "create_runtime.h"

static const char *const V1_CONTROLLERS[] = {
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
    "net_cls", "net_prio", "perf_event", "pids", "rdma", "misc", NULL,
};

/* os.path.normpath of an absolute path without "..": one slash, no "." parts. */
static char *cg_normpath(const char *path) {
    char *out = malloc(strlen(path) + 2), *o = out;
    if (!out)
        return NULL;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (!(n == 1 && p[0] == '.')) {
            *o++ = '/';
            memcpy(o, p, n);
            o += n;
        }
        p += n;
    }
    if (o == out)
        *o++ = '/';
    *o = '\0';
    return out;
}

/* detect._unescape: mountinfo's \ooo */
static void unescape(char *s) {
    char *o = s;
    for (char *p = s; *p;) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
}

/* The comma-separated words of A and B, controllers and names only, as sets: equal? */
static int same_set(const char *a, const char *b) {
    char x[512], y[512];
    snprintf(x, sizeof x, ",%s,", a);
    snprintf(y, sizeof y, ",%s,", b);
    for (int pass = 0; pass < 2; pass++) {
        const char *from = pass ? y : x, *in = pass ? x : y;
        char copy[512];
        snprintf(copy, sizeof copy, "%s", from);
        for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
            char word[260];
            snprintf(word, sizeof word, ",%s,", t);
            if (!strstr(in, word))
                return 0;
        }
    }
    return 1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Hierarchy.directory(own): the directory of our cgroup under this mount, or NULL. */
static char *hierarchy_dir(const char *mountpoint, const char *root, const char *own) {
    char *cg = cg_normpath(own), *rt = cg_normpath(root);
    const char *rel = NULL;
    size_t n = strlen(rt);
    if (strcmp(rt, "/") == 0)
        rel = cg;
    else if (strcmp(cg, rt) == 0 || (strncmp(cg, rt, n) == 0 && cg[n] == '/'))
        rel = cg + n;
    char *out = NULL;
    if (rel) {
        char *mp = strdup(mountpoint);
        size_t m = strlen(mp);
        while (m > 0 && mp[m - 1] == '/')
            mp[--m] = '\0';
        out = rel[0] && strcmp(rel, "/") != 0 ? dupf("%s%s", mp, rel) : dupf("%s%s", mp, "");
        free(mp);
    }
    free(cg);
    free(rt);
    return out;
}

/* _cgroup_for: absolute paths below the mount point, relative ones below our own. */
static char *cgroup_for(const char *mountpoint, const char *root, const char *own,
                        const char *cgroups_path) {
    char *base = cgroups_path[0] == '/' ? strdup(mountpoint)
                                        : hierarchy_dir(mountpoint, root, own);
    if (!base)
        return NULL;
    char *joined = dupf("%s/%s", base, cgroups_path), *out = cg_normpath(joined);
    free(base);
    free(joined);
    return out;
}

/* Our cgroup in the hierarchy of these controllers (v1) or in cgroup2, or NULL. */
static char *own_path(const char *cgroup_text, const char *ctrls, int v2) {
    char *copy = strdup(cgroup_text), *save = NULL, *found = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        int is_v2 = strcmp(line, "0") == 0 && c2 == c1 + 1;
        if (v2 ? is_v2 : (!is_v2 && same_set(c1 + 1, ctrls))) {
            free(found);
            found = strdup(c2 + 1); /* a dict: the last line wins */
        }
    }
    free(copy);
    return found;
}

/* new_manager(cgroupsPath, id, hierarchies()) for the cgroupfs driver: 0, or ASK_PYTHON
 * (no hierarchy, a path Python refuses). */
int cg_plan_new(const char *config_path, const char *id, struct cg_plan *p) {
    memset(p, 0, sizeof *p);
    char *path = config_path && *config_path ? strdup(config_path)
                                             : dupf("tomato/%s%s", id, "");
    char *check = dupf("/%s/%s", path, "");
    if (strstr(check, "/../") || strchr(path, ':')) {
        free(check);
        return PYTHONS("linux.cgroupsPath");
    }
    free(check);
    if (path[0] == '/') {
        char *n = cg_normpath(path);
        int root_itself = strcmp(n, "/") == 0;
        free(n);
        if (root_itself)
            return PYTHONS("linux.cgroupsPath (the root)"); /* the hierarchy's root: never ours to make or remove */
    }
    p->cgroups_path = path;
    size_t len;
    char *mountinfo = read_small("/proc/self/mountinfo", 1 << 22, &len);
    char *cgroups = read_small("/proc/self/cgroup", 1 << 20, &len);
    if (!mountinfo || !cgroups)
        return PYTHONS("/proc/self/mountinfo");
    char *save = NULL;
    char *seen_v1[MAX_CGROUP_DIRS];
    int nseen = 0, seen_v2 = 0;
    for (char *line = strtok_r(mountinfo, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *field[64];
        int n = 0;
        char *fsave = NULL;
        for (char *t = strtok_r(line, " ", &fsave); t && n < 64; t = strtok_r(NULL, " ", &fsave))
            field[n++] = t;
        int sep = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(field[i], "-") == 0) {
                sep = i;
                break;
            }
        if (sep < 5 || n < sep + 3)
            continue;
        const char *fstype = field[sep + 1];
        int v2 = strcmp(fstype, "cgroup2") == 0;
        if (!v2 && strcmp(fstype, "cgroup") != 0)
            continue;
        char *root = field[3], *mountpoint = field[4];
        unescape(root);
        unescape(mountpoint);
        char ctrls[512] = "", keys[512] = "";
        if (!v2) {
            char opts[1024];
            snprintf(opts, sizeof opts, "%s", n > sep + 3 ? field[sep + 3] : "");
            for (char *t = strtok(opts, ","); t; t = strtok(NULL, ",")) {
                int known = 0;
                for (int k = 0; V1_CONTROLLERS[k]; k++)
                    known |= strcmp(V1_CONTROLLERS[k], t) == 0;
                if (known)
                    snprintf(ctrls + strlen(ctrls), sizeof ctrls - strlen(ctrls), "%s%s",
                             ctrls[0] ? "," : "", t);
                if (known || strncmp(t, "name=", 5) == 0)
                    snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s",
                             keys[0] ? "," : "", t);
            }
            if (!ctrls[0])
                continue; /* a named hierarchy (name=systemd) */
        }
        char *own = own_path(cgroups, keys, v2);
        if (!own)
            continue;
        int dup = v2 && seen_v2;
        for (int i = 0; !v2 && i < nseen; i++)
            dup |= same_set(seen_v1[i], keys);
        char *dir = dup ? NULL : hierarchy_dir(mountpoint, root, own);
        if (!dir) {
            free(own);
            continue;
        }
        free(dir);
        char *d = cgroup_for(mountpoint, root, own, path);
        free(own);
        if (!d)
            return PYTHONS("linux.cgroupsPath");
        if (v2) {
            seen_v2 = 1;
            if (!p->unified) {
                p->unified = d;
                p->mountpoint = strdup(mountpoint);
            }
            continue;
        }
        if (nseen >= MAX_CGROUP_DIRS || p->nhier >= MAX_CGROUP_DIRS)
            return PYTHONS("cgroup hierarchies (too many)");
        seen_v1[nseen++] = strdup(keys);
        /* paths.setdefault(c, d) for c in sorted(h.controllers) */
        const char *names[16];
        int nnames = 0;
        char *list = strdup(ctrls);
        for (char *t = strtok(list, ","); t && nnames < 16; t = strtok(NULL, ","))
            names[nnames++] = t;
        qsort(names, (size_t)nnames, sizeof *names, by_name);
        const char *first_with_path = NULL;
        for (int k = 0; k < nnames; k++) {
            int have = 0;
            for (int i = 0; i < p->npaths; i++)
                have |= strcmp(p->ctrl[i], names[k]) == 0;
            if (!have) {
                if (p->npaths >= MAX_CG_PATHS)
                    return PYTHONS("cgroup controllers (too many)");
                p->ctrl[p->npaths] = strdup(names[k]);
                p->path[p->npaths++] = d;
            }
            for (int i = 0; !first_with_path && i < p->npaths; i++)
                if (strcmp(p->ctrl[i], names[k]) == 0)
                    first_with_path = p->path[i];
        }
        /* rootfs.cgroup_mount_dirs: (basename(mountpoint), paths[first controller]) */
        const char *base = strrchr(mountpoint, '/') ? strrchr(mountpoint, '/') + 1 : mountpoint;
        p->hier_name[p->nhier] = strdup(base);
        p->hier_dir[p->nhier++] = first_with_path;
    }
    if (p->npaths == 0 && p->unified) { /* cgroups.mode() "unified": V2Manager */
        p->version = 2;
        p->dirs[p->ndirs++] = p->unified;
        int depth = 0;
        for (const char *c = p->unified; *c; c++)
            depth += *c == '/';
        if (depth > 48)
            return PYTHONS("linux.cgroupsPath (too deep)");
        if (is_dir(p->unified)) /* its device programs would be Python's to replace */
            return PYTHONS("linux.cgroupsPath (a cgroup v2 directory that exists)");
        return 0;
    }
    if (p->npaths == 0)
        return PYTHONS("no cgroup hierarchy");
    p->version = 1;
    for (int i = 0; i < p->npaths; i++) {
        int depth = 0;
        for (const char *c = p->path[i]; *c; c++)
            depth += *c == '/';
        if (depth > 48) /* mkdir_p's and fill_cpuset's bounds */
            return PYTHONS("linux.cgroupsPath (too deep)");
    } /* v2 alone, or no hierarchy: Python's */
    /* _dirs(): the paths' directories (and the unified one) once each, in order */
    for (int i = 0; i <= p->npaths; i++) {
        const char *d = i < p->npaths ? p->path[i] : p->unified;
        int have = d == NULL;
        for (int k = 0; !have && k < p->ndirs; k++)
            have = strcmp(p->dirs[k], d) == 0;
        if (!have)
            p->dirs[p->ndirs++] = d;
    }
    return 0;
}

const char *cg_plan_dir(const struct cg_plan *p, const char *ctrl) {
    for (int i = 0; i < p->npaths; i++)
        if (strcmp(p->ctrl[i], ctrl) == 0)
            return p->path[i];
    return NULL;
}

/* V1Manager.to_dict() as Python's json.dumps writes it. */
char *cg_plan_json(const struct cg_plan *p, const char *id) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    if (p->version == 2) { /* V2Manager.to_dict() */
        buf_printf(&b, &len, &cap, "{\"version\": 2, \"cgroups_path\": ");
        json_put_string(&b, &len, &cap, p->cgroups_path, 1);
        buf_printf(&b, &len, &cap, ", \"container_id\": ");
        json_put_string(&b, &len, &cap, id, 1);
        buf_printf(&b, &len, &cap, ", \"path\": ");
        json_put_string(&b, &len, &cap, p->unified, 1);
        buf_printf(&b, &len, &cap, ", \"mountpoint\": ");
        json_put_string(&b, &len, &cap, p->mountpoint, 1);
        buf_printf(&b, &len, &cap, ", \"created\": %d}", p->made[0]);
        return b;
    }
    buf_printf(&b, &len, &cap, "{\"version\": 1, \"cgroups_path\": ");
    json_put_string(&b, &len, &cap, p->cgroups_path, 1);
    buf_printf(&b, &len, &cap, ", \"container_id\": ");
    json_put_string(&b, &len, &cap, id, 1);
    buf_printf(&b, &len, &cap, ", \"paths\": {");
    for (int i = 0; i < p->npaths; i++) {
        buf_printf(&b, &len, &cap, "%s", i ? ", " : "");
        json_put_string(&b, &len, &cap, p->ctrl[i], 1);
        buf_printf(&b, &len, &cap, ": ");
        json_put_string(&b, &len, &cap, p->path[i], 1);
    }
    buf_printf(&b, &len, &cap, "}, \"unified\": ");
    if (p->unified)
        json_put_string(&b, &len, &cap, p->unified, 1);
    else
        buf_printf(&b, &len, &cap, "null");
    buf_printf(&b, &len, &cap, ", \"created\": {");
    for (int i = 0, n = 0; i < p->ndirs; i++) {
        if (!p->made_known[i])
            continue;
        buf_printf(&b, &len, &cap, "%s", n++ ? ", " : "");
        json_put_string(&b, &len, &cap, p->dirs[i], 1);
        buf_printf(&b, &len, &cap, ": %d", p->made[i]);
    }
    buf_printf(&b, &len, &cap, "}}");
    return b;
}

/* base.mkdir_p: the levels it made (a parent removed under our feet: look again). */
static int mkdir_p(const char *dir, int *made) {
    *made = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        char *missing[64];
        int n = 0;
        char *d = strdup(dir);
        while (!is_dir(d) && n < 64 && strcmp(d, "/") != 0) {
            missing[n++] = d;
            char *parent = strdup(d);
            char *slash = strrchr(parent, '/');
            if (slash == parent)
                slash[1] = '\0';
            else if (slash)
                *slash = '\0';
            d = parent;
        }
        free(d);
        int vanished = 0;
        for (int i = n - 1; i >= 0; i--) {
            if (!vanished && mkdir(missing[i], 0755) == 0) {
                (*made)++;
            } else if (!vanished && errno != EEXIST) {
                int err = errno;
                if (err == ENOENT) {
                    vanished = 1;
                } else {
                    for (int k = i; k >= 0; k--)
                        free(missing[k]);
                    if (err == EPERM || err == EACCES || err == EROFS) {
                        char reason[128];
                        snprintf(reason, sizeof reason, "%s", strerror(err));
                        reason[0] = (char)(reason[0] >= 'A' && reason[0] <= 'Z'
                                               ? reason[0] - 'A' + 'a' : reason[0]);
                        return fail("cannot create cgroup %s: %s", dir, reason);
                    }
                    return fail_os(err, dir);
                }
            }
            free(missing[i]);
        }
        if (!vanished)
            return 0;
        sleep_ms(2.0 * (attempt + 1));
    }
    return fail("cannot create cgroup %s: its parents keep vanishing", dir);
}

/* V1Manager._fill_cpuset: a new cpuset's empty cpus/mems, copied from the top down. */
static int fill_cpuset(const char *dir) {
    char *chain[64];
    int n = 0;
    char *d = strdup(dir);
    for (;;) {
        char *parent = strdup(d), *slash = strrchr(parent, '/');
        if (slash)
            *(slash == parent ? slash + 1 : slash) = '\0';
        char *probe = dupf("%s/%s", parent, "cpuset.cpus");
        int there = access(probe, F_OK) == 0;
        free(probe);
        if (!there || n >= 64) {
            free(parent);
            free(d);
            break;
        }
        chain[n++] = d;
        d = parent;
    }
    int r = 0;
    for (int i = n - 1; i >= 0; i--) {
        static const char *const names[] = {"cpuset.cpus", "cpuset.mems"};
        for (int k = 0; r == 0 && k < 2; k++) {
            char *mine = dupf("%s/%s", chain[i], names[k]), *theirs = NULL;
            char *parent = strdup(chain[i]);
            *strrchr(parent, '/') = '\0';
            theirs = dupf("%s/%s", parent, names[k]);
            char value[4096], from[4096];
            if (cg_read_file(mine, value, sizeof value) == 0 && value[0] == '\0' &&
                cg_read_file(theirs, from, sizeof from) == 0)
                r = cg_write_file(mine, from);
            free(mine);
            free(theirs);
            free(parent);
        }
        free(chain[i]);
    }
    return r;
}

int cg_plan_create(struct cg_plan *p) {
    for (int i = 0; i < p->ndirs; i++) {
        if (mkdir_p(p->dirs[i], &p->made[i]) < 0)
            return -1;
        p->made_known[i] = 1;
    }
    if (p->version == 2) {
        cg2_enable(p);
        return 0;
    }
    const char *cs = cg_plan_dir(p, "cpuset");
    return cs ? fill_cpuset(cs) : 0;
}

void cg_plan_mount_dirs(const struct cg_plan *p, struct init_config *c) {
    c->ncgroup_dirs = 0;
    if (p->version == 2) { /* list(manager.paths.items())[:1]: ("", path) */
        c->cgroup_dirs[0].name = "";
        c->cgroup_dirs[0].host_dir = p->unified;
        c->ncgroup_dirs = 1;
        c->cgroup_unified = 1;
        return;
    }
    for (int i = 0; i < p->nhier && c->ncgroup_dirs < MAX_CGROUP_DIRS; i++) {
        c->cgroup_dirs[c->ncgroup_dirs].name = p->hier_name[i];
        c->cgroup_dirs[c->ncgroup_dirs++].host_dir = p->hier_dir[i];
    }
    c->cgroup_unified = 0;
}

