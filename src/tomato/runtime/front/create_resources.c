/* create_resources.c: linux.resources of a new container written to its v1 cgroups, as
 * Resources.from_oci (with create.py's default devices) and V1Manager.set's plan write
 * them, in their order; anything Python would refuse or warn about is found before
 * anything is made (cg_plan_check), and the create is then Python's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "create_runtime.h"

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

static int put(const struct cg_plan *p, const char *ctrl, const char *name, const char *value);

/* resources.parse_cpuset: "0-3,5" into BITS; -1 for what Python refuses (or too large) */
static int cpuset_bits(const char *text, unsigned char *bits) {
    memset(bits, 0, MAX_CPUSET / 8);
    const char *t = text;
    for (;;) {
        char *end;
        if (*t < '0' || *t > '9')
            return -1;
        unsigned long lo = strtoul(t, &end, 10), hi = lo;
        if (*end == '-') {
            if (end[1] < '0' || end[1] > '9')
                return -1;
            hi = strtoul(end + 1, &end, 10);
        }
        if (hi < lo || hi >= MAX_CPUSET)
            return -1; /* a reversed range: Python's error; beyond ours: Python's case */
        for (unsigned long i = lo; i <= hi; i++)
            bits[i / 8] |= (unsigned char)(1u << (i % 8));
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return -1;
        t = end + 1;
    }
}

/* base.check_cpuset: VALUE within AVAILABLE (nothing to check when that is unknown) */
int cpuset_check(const char *key, const char *value, const char *available) {
    static unsigned char want[MAX_CPUSET / 8], have[MAX_CPUSET / 8];
    if (!available[0] || cpuset_bits(value, want) < 0 || cpuset_bits(available, have) < 0)
        return 0;
    char missing[4096] = "";
    size_t n = 0;
    for (int i = 0; i < MAX_CPUSET; i++)
        if ((want[i / 8] >> (i % 8) & 1) && !(have[i / 8] >> (i % 8) & 1) &&
            n < sizeof missing - 16)
            n += (size_t)snprintf(missing + n, sizeof missing - n, "%s%d", n ? "," : "", i);
    if (n)
        return fail("linux.resources.cpu.%s: %s not available (available: %s)", key, missing,
                    available);
    return 0;
}

/* V1Manager._plan_cpu's cpuset: checked against what the parent has, then written */
static int put_cpuset(const struct cg_plan *p, const char *key, const char *value) {
    char *dir = strdup(cg_plan_dir(p, "cpuset")), *slash = strrchr(dir, '/'), avail[4096] = "";
    if (slash)
        *slash = '\0';
    const char *kind = strcmp(key, "cpus") == 0 ? "cpu" : "node";
    char *effective = NULL, *plain = NULL, *online = NULL;
    if (asprintf(&effective, "%s/cpuset.effective_%s", dir, key) < 0 ||
        asprintf(&plain, "%s/cpuset.%s", dir, key) < 0 ||
        asprintf(&online, "/sys/devices/system/%s/online", kind) < 0)
        return fail_os(ENOMEM, NULL);
    const char *files[] = {effective, plain, online};
    for (int i = 0; i < 3 && !avail[0]; i++)
        if (cg_read_file(files[i], avail, sizeof avail) < 0)
            avail[0] = '\0';
    free(effective);
    free(plain);
    free(online);
    free(dir);
    if (cpuset_check(key, value, avail) < 0)
        return -1;
    char name[32];
    snprintf(name, sizeof name, "cpuset.%s", key);
    return put(p, "cpuset", name, value);
}

/* The writes' values, checked before anything is made: 0, or ASK_PYTHON. */
int cg_plan_check(const struct json *j, int resources, int linux_devices,
                  const struct cg_plan *p, struct cg_res *r) {
    memset(r, 0, sizeof *r);
    if (absent(j, resources))
        return 0;
    int v1 = p->version == 1; /* (v2's controllers are known once its directory exists) */
    int cpu = json_get(j, resources, "cpu"), mem = json_get(j, resources, "memory");
    int pids = json_get(j, resources, "pids"), dev = json_get(j, resources, "devices");
    int blkio = json_get(j, resources, "blockIO"), net = json_get(j, resources, "network");
    if ((!absent(j, blkio) && v1 && !cg_plan_dir(p, "blkio")) ||
        (!absent(j, net) && j->n[net].child >= 0))
        return PYTHONS("linux.resources (blockIO without blkio, network)"); /* a warning, or writes create.c does not make */
    if (!absent(j, cpu)) {
        for (int k = 0; k < 2; k++) { /* (create_check: digits, "," and "-", not empty) */
            int s = json_get(j, cpu, k ? "mems" : "cpus");
            if (absent(j, s))
                continue;
            static unsigned char bits[MAX_CPUSET / 8];
            if (cpuset_bits(j->n[s].s, bits) < 0) /* a bad list: Python's error */
                return PYTHONS(k ? "linux.resources.cpu.mems" : "linux.resources.cpu.cpus");
            if (v1 && !cg_plan_dir(p, "cpuset")) /* a warning */
                return PYTHONS("linux.resources.cpu.cpus (no cpuset controller)");
            *(k ? &r->mems : &r->cpus) = j->n[s].s;
        }
        if (int_of(j, cpu, "shares", &r->shares) < 0 || int_of(j, cpu, "quota", &r->quota) < 0 ||
            int_of(j, cpu, "period", &r->period) < 0)
            return PYTHONS("linux.resources.cpu");
        if ((r->period && (r->period < 1000 || r->period > 1000000)) ||
            (r->quota && r->quota != -1 && r->quota < 1000) ||
            ((r->shares || r->quota || r->period) && v1 && !cg_plan_dir(p, "cpu")))
            return PYTHONS("linux.resources.cpu");
    }
    if (!absent(j, mem)) {
        if (int_of(j, mem, "limit", &r->mem_limit) < 0 ||
            int_of(j, mem, "reservation", &r->mem_reservation) < 0 ||
            int_of(j, mem, "swap", &r->mem_swap) < 0)
            return PYTHONS("linux.resources.memory");
        const char *d = cg_plan_dir(p, "memory");
        if ((r->mem_limit || r->mem_swap || r->mem_reservation) && v1 && !d)
            return PYTHONS("linux.resources.memory");
        if (!v1 && r->mem_swap && r->mem_swap != -1 &&
            (r->mem_limit == 0 || r->mem_limit == -1 || r->mem_swap < r->mem_limit))
            return PYTHONS("linux.resources.memory.swap"); /* convert.swap_to_v2's error */
        if (r->mem_limit && r->mem_limit != -1 && r->mem_swap && r->mem_swap != -1 &&
            r->mem_swap < r->mem_limit)
            return PYTHONS("linux.resources.memory.swap"); /* Python's error */
        r->has_swap = r->mem_swap != 0;
        if (v1 && r->mem_limit == -1 && !r->has_swap) {
            r->has_swap = 1;
            r->mem_swap = -1;
        }
    }
    if (!absent(j, pids)) {
        r->has_pids = int_of(j, pids, "limit", &r->pids_limit);
        if (r->has_pids < 0 || (r->has_pids && v1 && !cg_plan_dir(p, "pids")))
            return PYTHONS("linux.resources.pids");
    }
    if (!absent(j, dev)) {
        if (v1 && !cg_plan_dir(p, "devices"))
            return PYTHONS("linux.resources.devices");
        r->has_devices = 1;
        for (int e = j->n[dev].child; e >= 0; e = j->n[e].next) {
            if (r->nrules >= MAX_DEVICE_RULES)
                return PYTHONS("linux.resources.devices (too many)");
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
                    return PYTHONS("linux.resources.devices[].access"); /* "rr": Python's error */
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
                return PYTHONS("linux.resources.devices (too many)");
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
                return PYTHONS("linux.resources.devices (too many)");
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
    char *path = dupf("%s/%s", cg_plan_dir(p, ctrl), name);
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
    char *list = dupf("%s/%s", cg_plan_dir(p, "devices"), "devices.list");
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
int cg_plan_set(struct cg_plan *p, struct cg_res *r) {
    if (p->version == 2)
        return cg2_set(p, r);
    if (r->shares && put_int(p, "cpu", "cpu.shares", r->shares) < 0)
        return -1;
    if (r->quota == -1 && put(p, "cpu", "cpu.cfs_quota_us", "-1") < 0)
        return -1;
    if (r->period && put_int(p, "cpu", "cpu.cfs_period_us", r->period) < 0)
        return -1;
    if (r->quota && r->quota != -1 && put_int(p, "cpu", "cpu.cfs_quota_us", r->quota) < 0)
        return -1;
    if ((r->cpus && put_cpuset(p, "cpus", r->cpus) < 0) ||
        (r->mems && put_cpuset(p, "mems", r->mems) < 0))
        return -1;
    int sw = r->has_swap;
    if (sw) { /* (the directory exists now) */
        char *memsw = dupf("%s/%s", cg_plan_dir(p, "memory"), "memory.memsw.limit_in_bytes");
        sw = access(memsw, F_OK) == 0;
        free(memsw);
    }
    r->swap_ignored = r->has_swap && !sw; /* a warning, logged once the init is ready */
    int lim = r->mem_limit != 0;
    int swap_first = 0;
    if (lim && sw) {
        char *path = dupf("%s/%s", cg_plan_dir(p, "memory"), "memory.limit_in_bytes"), buf[64];
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
