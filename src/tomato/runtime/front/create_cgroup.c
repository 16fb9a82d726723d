/* create_cgroup.c: a new container's cgroups, for create.c, as tomato.cgroups does them
 * on a cgroup v1 (legacy or hybrid) host with the cgroupfs driver:
 *
 *   detect.hierarchies          -> the hierarchies of /proc/self/mountinfo showing our cgroup
 *   new_manager(path, id)       -> each controller's directory (V1Manager's paths, unified)
 *   manager.to_dict()           -> cg_plan_json (the state record's "cgroup" member)
 *   manager.create()            -> cg_plan_create (mkdir -p, counting levels; cpuset filled)
 *   manager.set(Resources)      -> cg_plan_set (v1.py's plan, in its order)
 *   rootfs.cgroup_mount_dirs    -> cg_plan_mount_dirs
 *
 * Whatever Python would warn about or refuse (a controller a limit needs is missing, a
 * value out of Resources.from_oci's range, cpusets to check, cgroup v2) is found by
 * cg_plan_new/cg_plan_check before anything is made, and the create is then Python's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "create_cgroup.h"

static const char *const V1_CONTROLLERS[] = {
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
    "net_cls", "net_prio", "perf_event", "pids", "rdma", "misc", NULL,
};

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *dupf(const char *fmt, const char *a, const char *b) {
    char *s = NULL;
    if (asprintf(&s, fmt, a, b) < 0) {
        perror("tomato-runtime");
        exit(1);
    }
    return s;
}

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

/* new_manager(cgroupsPath, id, hierarchies()) for the v1 cgroupfs driver: 0, or
 * ASK_PYTHON (cgroup v2 alone, no hierarchy, a path Python refuses). */
int cg_plan_new(const char *config_path, const char *id, struct cg_plan *p) {
    memset(p, 0, sizeof *p);
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
        return ASK_PYTHON; /* cgroup v2: the device program is Python's (devices_bpf.py) */
    char *path = config_path && *config_path ? strdup(config_path)
                                             : dupf("tomato/%s%s", id, "");
    char *check = dupf("/%s/%s", path, "");
    if (strstr(check, "/../") || strchr(path, ':')) {
        free(check);
        return ASK_PYTHON;
    }
    free(check);
    if (path[0] == '/') {
        char *n = cg_normpath(path);
        int root_itself = strcmp(n, "/") == 0;
        free(n);
        if (root_itself)
            return ASK_PYTHON; /* the hierarchy's root: never ours to make or remove */
    }
    p->cgroups_path = path;
    size_t len;
    char *mountinfo = read_small("/proc/self/mountinfo", 1 << 22, &len);
    char *cgroups = read_small("/proc/self/cgroup", 1 << 20, &len);
    if (!mountinfo || !cgroups)
        return ASK_PYTHON;
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
            return ASK_PYTHON;
        if (v2) {
            seen_v2 = 1;
            if (!p->unified)
                p->unified = d;
            continue;
        }
        if (nseen >= MAX_CGROUP_DIRS || p->nhier >= MAX_CGROUP_DIRS)
            return ASK_PYTHON;
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
                    return ASK_PYTHON;
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
    if (p->npaths == 0)
        return ASK_PYTHON; /* v2 alone, or no hierarchy: Python's */
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

static const char *dir_of(const struct cg_plan *p, const char *ctrl) {
    for (int i = 0; i < p->npaths; i++)
        if (strcmp(p->ctrl[i], ctrl) == 0)
            return p->path[i];
    return NULL;
}

/* V1Manager.to_dict() as Python's json.dumps writes it. */
char *cg_plan_json(const struct cg_plan *p, const char *id) {
    char *b = NULL;
    size_t len = 0, cap = 0;
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
    const char *cs = dir_of(p, "cpuset");
    return cs ? fill_cpuset(cs) : 0;
}

void cg_plan_mount_dirs(const struct cg_plan *p, struct init_config *c) {
    c->ncgroup_dirs = 0;
    for (int i = 0; i < p->nhier && c->ncgroup_dirs < MAX_CGROUP_DIRS; i++) {
        c->cgroup_dirs[c->ncgroup_dirs].name = p->hier_name[i];
        c->cgroup_dirs[c->ncgroup_dirs++].host_dir = p->hier_dir[i];
    }
    c->cgroup_unified = 0;
}

/* ---- resources: Resources.from_oci (with create.py's default devices) and v1's plan ---- */

static int absent(const struct json *j, int v) {
    return v < 0 || j->n[v].type == J_NULL;
}

static int int_of(const struct json *j, int obj, const char *key, long long *out) {
    int v = obj < 0 ? -1 : json_get(j, obj, key);
    if (absent(j, v))
        return 0;
    if (j->n[v].type != J_NUM || !j->n[v].is_int)
        return -1;
    *out = j->n[v].i;
    return 1;
}

#define RULE_SET(r, a, t, ma, mi, acc) \
    ((r)->allow = (a), (r)->type = (t), (r)->major = (ma), (r)->minor = (mi), \
     snprintf((r)->access, sizeof (r)->access, "%s", (acc)))

/* The writes' values, checked before anything is made: 0, or ASK_PYTHON. */
int cg_plan_check(const struct json *j, int resources, int linux_devices,
                  const struct cg_plan *p, struct cg_res *r) {
    memset(r, 0, sizeof *r);
    if (absent(j, resources))
        return 0;
    int cpu = json_get(j, resources, "cpu"), mem = json_get(j, resources, "memory");
    int pids = json_get(j, resources, "pids"), dev = json_get(j, resources, "devices");
    int blkio = json_get(j, resources, "blockIO"), net = json_get(j, resources, "network");
    if ((!absent(j, blkio) && !dir_of(p, "blkio")) ||
        (!absent(j, net) && j->n[net].child >= 0))
        return ASK_PYTHON; /* a warning, or writes create.c does not make */
    if (!absent(j, cpu)) {
        for (int k = 0; k < 2; k++) {
            int s = json_get(j, cpu, k ? "mems" : "cpus");
            if (!absent(j, s) && j->n[s].s[strspn(j->n[s].s, " \t\n")])
                return ASK_PYTHON; /* checked against the parent's: Python's */
        }
        if (int_of(j, cpu, "shares", &r->shares) < 0 || int_of(j, cpu, "quota", &r->quota) < 0 ||
            int_of(j, cpu, "period", &r->period) < 0)
            return ASK_PYTHON;
        if ((r->period && (r->period < 1000 || r->period > 1000000)) ||
            (r->quota && r->quota != -1 && r->quota < 1000) ||
            ((r->shares || r->quota || r->period) && !dir_of(p, "cpu")))
            return ASK_PYTHON;
    }
    if (!absent(j, mem)) {
        if (int_of(j, mem, "limit", &r->mem_limit) < 0 ||
            int_of(j, mem, "reservation", &r->mem_reservation) < 0 ||
            int_of(j, mem, "swap", &r->mem_swap) < 0)
            return ASK_PYTHON;
        const char *d = dir_of(p, "memory");
        if ((r->mem_limit || r->mem_swap || r->mem_reservation) && !d)
            return ASK_PYTHON;
        if (r->mem_limit && r->mem_limit != -1 && r->mem_swap && r->mem_swap != -1 &&
            r->mem_swap < r->mem_limit)
            return ASK_PYTHON; /* Python's error */
        r->has_swap = r->mem_swap != 0;
        if (r->mem_limit == -1 && !r->has_swap) {
            r->has_swap = 1;
            r->mem_swap = -1;
        }
    }
    if (!absent(j, pids)) {
        r->has_pids = int_of(j, pids, "limit", &r->pids_limit);
        if (r->has_pids < 0 || (r->has_pids && !dir_of(p, "pids")))
            return ASK_PYTHON;
    }
    if (!absent(j, dev)) {
        if (!dir_of(p, "devices"))
            return ASK_PYTHON;
        r->has_devices = 1;
        for (int e = j->n[dev].child; e >= 0; e = j->n[e].next) {
            if (r->nrules >= MAX_DEVICE_RULES)
                return ASK_PYTHON;
            struct cg_rule *rule = &r->rules[r->nrules++];
            int t = json_get(j, e, "type"), a = json_get(j, e, "access");
            long long major = -1, minor = -1;
            int_of(j, e, "major", &major);
            int_of(j, e, "minor", &minor);
            const char *access = absent(j, a) || !*j->n[a].s ? "rwm" : j->n[a].s;
            char canon[4] = {0};
            for (const char *c = "rwm"; *c; c++) {
                const char *at = strchr(access, *c);
                if (at && strchr(at + 1, *c))
                    return ASK_PYTHON; /* "rr": Python's error */
                if (at)
                    canon[strlen(canon)] = *c; /* (canon is zeroed: stays terminated) */
            }
            RULE_SET(rule, j->n[json_get(j, e, "allow")].type == J_TRUE,
                     absent(j, t) || !*j->n[t].s ? 'a' : j->n[t].s[0], major, minor, canon);
        }
        /* create.DEFAULT_DEVICE_RULES, then linux.devices (u as c), as create.py adds */
        static const struct {
            char type;
            long long major, minor;
            const char *access;
        } DEFAULTS[] = {
            {'c', -1, -1, "m"},    {'b', -1, -1, "m"},     {'c', 1, 3, "rwm"},
            {'c', 1, 8, "rwm"},    {'c', 1, 7, "rwm"},     {'c', 5, 0, "rwm"},
            {'c', 1, 5, "rwm"},    {'c', 1, 9, "rwm"},     {'c', 136, -1, "rwm"},
            {'c', 5, 2, "rwm"},
        };
        for (size_t k = 0; k < sizeof DEFAULTS / sizeof *DEFAULTS; k++) {
            if (r->nrules >= MAX_DEVICE_RULES)
                return ASK_PYTHON;
            RULE_SET(&r->rules[r->nrules], 1, DEFAULTS[k].type, DEFAULTS[k].major,
                     DEFAULTS[k].minor, DEFAULTS[k].access);
            r->nrules++;
        }
        for (int e = absent(j, linux_devices) ? -1 : j->n[linux_devices].child; e >= 0;
             e = j->n[e].next) {
            const char *t = j->n[json_get(j, e, "type")].s;
            if (t[0] == 'p')
                continue;
            if (r->nrules >= MAX_DEVICE_RULES)
                return ASK_PYTHON;
            long long major = -1, minor = -1;
            int_of(j, e, "major", &major);
            int_of(j, e, "minor", &minor);
            RULE_SET(&r->rules[r->nrules], 1, t[0] == 'u' ? 'c' : t[0], major, minor, "rwm");
            r->nrules++;
        }
    }
    return 0;
}

static int put(const struct cg_plan *p, const char *ctrl, const char *name, const char *value) {
    char *path = dupf("%s/%s", dir_of(p, ctrl), name);
    int r = cg_write_file(path, value);
    free(path);
    return r;
}

static int put_int(const struct cg_plan *p, const char *ctrl, const char *name, long long v) {
    char value[32];
    snprintf(value, sizeof value, "%lld", v);
    return put(p, ctrl, name, value);
}

/* DeviceRule.v1_lines: one line, or two for a partial "a" rule (b and c). */
static int rule_lines(const struct cg_rule *r, char lines[2][64]) {
    char major[24] = "*", minor[24] = "*";
    if (r->major >= 0)
        snprintf(major, sizeof major, "%lld", r->major);
    if (r->minor >= 0)
        snprintf(minor, sizeof minor, "%lld", r->minor);
    if (r->type == 'a') {
        if (r->major < 0 && r->minor < 0 && strcmp(r->access, "rwm") == 0) {
            snprintf(lines[0], 64, "a *:* rwm");
            return 1;
        }
        snprintf(lines[0], 64, "b %s:%s %s", major, minor, r->access);
        snprintf(lines[1], 64, "c %s:%s %s", major, minor, r->access);
        return 2;
    }
    snprintf(lines[0], 64, "%c %s:%s %s", r->type, major, minor, r->access);
    return 1;
}

static int plan_devices(const struct cg_plan *p, const struct cg_res *res) {
    /* resources.effective_device_rules: a wildcard resets the default and the list */
    int default_allow = 0, first = 0;
    for (int i = 0; i < res->nrules; i++) {
        const struct cg_rule *r = &res->rules[i];
        if (r->type == 'a' && r->major < 0 && r->minor < 0 && strcmp(r->access, "rwm") == 0) {
            default_allow = r->allow;
            first = i + 1;
        }
    }
    char current[65536] = "";
    char *list = dupf("%s/%s", dir_of(p, "devices"), "devices.list");
    if (cg_read_file(list, current, sizeof current) < 0)
        current[0] = '\0';
    free(list);
    char wrapped[65600];
    snprintf(wrapped, sizeof wrapped, "\n%s\n", current);
    if (!default_allow && current[0] && !strstr(wrapped, "\na *:* rwm\n")) {
        /* already default-deny: to the new list without losing a device kept */
        char copy[65536];
        snprintf(copy, sizeof copy, "%s", current);
        for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
            int keep = 0;
            for (int i = first; i < res->nrules && !keep; i++) {
                char lines[2][64];
                int n = rule_lines(&res->rules[i], lines);
                for (int k = 0; k < n; k++)
                    keep |= res->rules[i].allow && strcmp(lines[k], line) == 0;
            }
            if (!keep && put(p, "devices", "devices.deny", line) < 0)
                return -1;
        }
        for (int i = first; i < res->nrules; i++) {
            char lines[2][64], want[160];
            int n = rule_lines(&res->rules[i], lines);
            for (int k = 0; k < n; k++) {
                snprintf(want, sizeof want, "\n%s\n", lines[k]);
                if ((!res->rules[i].allow || !strstr(wrapped, want)) &&
                    put(p, "devices", res->rules[i].allow ? "devices.allow" : "devices.deny",
                        lines[k]) < 0)
                    return -1;
            }
        }
        return 0;
    }
    if (put(p, "devices", default_allow ? "devices.allow" : "devices.deny", "a") < 0)
        return -1;
    for (int i = first; i < res->nrules; i++) {
        char lines[2][64];
        int n = rule_lines(&res->rules[i], lines);
        for (int k = 0; k < n; k++)
            if (put(p, "devices", res->rules[i].allow ? "devices.allow" : "devices.deny",
                    lines[k]) < 0)
                return -1;
    }
    return 0;
}

/* V1Manager.set: the writes of its plan, in its order.  0, or -1 after fail(). */
int cg_plan_set(const struct cg_plan *p, struct cg_res *r) {
    if (r->shares && put_int(p, "cpu", "cpu.shares", r->shares) < 0)
        return -1;
    if (r->quota == -1 && put(p, "cpu", "cpu.cfs_quota_us", "-1") < 0)
        return -1;
    if (r->period && put_int(p, "cpu", "cpu.cfs_period_us", r->period) < 0)
        return -1;
    if (r->quota && r->quota != -1 && put_int(p, "cpu", "cpu.cfs_quota_us", r->quota) < 0)
        return -1;
    int sw = r->has_swap;
    if (sw) { /* (the directory exists now) */
        char *memsw = dupf("%s/%s", dir_of(p, "memory"), "memory.memsw.limit_in_bytes");
        sw = access(memsw, F_OK) == 0;
        free(memsw);
    }
    r->swap_ignored = r->has_swap && !sw; /* a warning, logged once the init is ready */
    int lim = r->mem_limit != 0;
    int swap_first = 0;
    if (lim && sw) {
        char *path = dupf("%s/%s", dir_of(p, "memory"), "memory.limit_in_bytes"), buf[64];
        long long cur = 0;
        if (cg_read_file(path, buf, sizeof buf) == 0)
            cur = strtoll(buf, NULL, 10);
        free(path);
        swap_first = r->mem_swap == -1 || cur < r->mem_swap;
    }
    for (int step = 0; step < 2; step++) {
        int swap_now = step == 0 ? swap_first : !swap_first;
        if (swap_now && sw &&
            put_int(p, "memory", "memory.memsw.limit_in_bytes", r->mem_swap) < 0)
            return -1;
        if (!swap_now && lim && put_int(p, "memory", "memory.limit_in_bytes", r->mem_limit) < 0)
            return -1;
    }
    if (r->mem_reservation &&
        put_int(p, "memory", "memory.soft_limit_in_bytes", r->mem_reservation) < 0)
        return -1;
    if (r->has_pids) {
        char value[32] = "max";
        if (r->pids_limit > 0)
            snprintf(value, sizeof value, "%lld", r->pids_limit);
        if (put(p, "pids", "pids.max", value) < 0)
            return -1;
    }
    return r->has_devices ? plan_devices(p, r) : 0;
}
