/* create_cgroup2.c: a new container's cgroup on a cgroup v2 (unified) host, for create.c,
 * as cgroups/v2.py's V2Manager makes it:
 *
 *   create()   -> cg2_enable: every controller the parents have enabled in their
 *                 cgroup.subtree_control, the mount root down to our parent (a refusal
 *                 is a warning, as _enable_controllers')
 *   set()      -> cg2_set: v2.py's plan (convert.py's weight and swap), then the device
 *                 rules as devices_bpf.py's eBPF program, loaded and attached
 *
 * The directory itself is made by create_cgroup.c (mkdir -p, levels counted).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "create_runtime.h"

/* "max" for -1, else the number (v2's way of writing limits) */
static void max_or(char *out, size_t size, long long v) {
    if (v == -1)
        snprintf(out, size, "max");
    else
        snprintf(out, size, "%lld", v);
}

static void lowercase(char *s) {
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
}

static void warn(struct cg_plan *p, char *msg) {
    if (msg && p->nwarnings < MAX_CG_WARNINGS)
        p->warnings[p->nwarnings++] = msg;
    else
        free(msg);
}

static char *path_in(const char *dir, const char *name) {
    char *s = NULL;
    if (asprintf(&s, "%s/%s", dir, name) < 0) {
        perror("tomato-runtime");
        exit(1);
    }
    return s;
}

/* V2Manager._enable_controllers */
void cg2_enable(struct cg_plan *p) {
    size_t root = strlen(p->mountpoint);
    const char *rel = strncmp(p->unified, p->mountpoint, root) == 0 ? p->unified + root : "";
    char *d = strdup(p->mountpoint);
    for (;;) {
        rel += strspn(rel, "/");
        if (!*rel)
            break; /* (the container's own directory is not one of them) */
        char available[4096] = "", enabled[4096] = "";
        char *ctrls = path_in(d, "cgroup.controllers"), *subtree = path_in(d, "cgroup.subtree_control");
        if (cg_read_file(ctrls, available, sizeof available) < 0)
            available[0] = '\0';
        if (cg_read_file(subtree, enabled, sizeof enabled) < 0)
            enabled[0] = '\0';
        char padded[4200];
        snprintf(padded, sizeof padded, " %s ", enabled);
        for (char *save = NULL, *c = strtok_r(available, " \n", &save); c;
             c = strtok_r(NULL, " \n", &save)) {
            char word[300];
            snprintf(word, sizeof word, " %s ", c);
            if (strstr(padded, word))
                continue;
            snprintf(word, sizeof word, "+%s", c);
            if (cg_write_file(subtree, word) < 0) { /* base.write's words, as a warning */
                char *why = failure_take(), *msg = NULL;
                if (asprintf(&msg, "cannot enable the %s controller in %s: %s", c, d,
                             why ? why : "") < 0)
                    msg = NULL;
                free(why);
                warn(p, msg);
            }
        }
        free(ctrls);
        free(subtree);
        size_t n = strcspn(rel, "/");
        char *next = NULL;
        if (asprintf(&next, "%s/%.*s", d, (int)n, rel) < 0)
            break;
        free(d);
        d = next;
        rel += n;
    }
    free(d);
}

/* V2Manager._add: a file that is not there is an error (or, OPTIONAL, a warning) */
static int put(struct cg_plan *p, const char *name, const char *value, const char *field,
               int optional) {
    char *path = path_in(p->unified, name);
    int r = 0;
    if (access(path, F_OK) < 0) {
        char ctrl[64];
        snprintf(ctrl, sizeof ctrl, "%.*s", (int)strcspn(name, "."), name);
        if (optional) {
            char *msg = NULL;
            if (asprintf(&msg, "%s: this kernel has no %s; ignored", field, name) < 0)
                msg = NULL;
            warn(p, msg);
        } else {
            r = fail("%s: the %s controller is not enabled for %s (no %s; a parent with "
                     "processes of its own cannot delegate controllers)", field, ctrl,
                     p->unified, name);
        }
    } else {
        r = cg_write_file(path, value);
    }
    free(path);
    return r;
}

/* The first (WORD 0) or second word of the cgroup's cpu.max, or DFLT */
static void cpu_max_word(struct cg_plan *p, int word, const char *dflt, char *out, size_t size) {
    char *path = path_in(p->unified, "cpu.max"), text[128] = "";
    if (cg_read_file(path, text, sizeof text) < 0)
        text[0] = '\0';
    free(path);
    char *save = NULL, *w = strtok_r(text, " \t\n", &save);
    if (w && word == 1)
        w = strtok_r(NULL, " \t\n", &save);
    snprintf(out, size, "%s", w ? w : dflt);
}

/* ---- devices_bpf.py: the program runc generates, rules matched last-first ---- */

#define MAX_INSNS (6 + 8 * MAX_DEVICE_RULES + 2)

static struct bpf_insn insn(unsigned char code, unsigned char dst, unsigned char src,
                            short off, int imm) {
    struct bpf_insn i = {.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
    return i;
}

static int program(const struct cg_res *r, struct bpf_insn *out) {
    int default_allow = 0, first = 0, n = 0;
    for (int i = 0; i < r->nrules; i++)
        if (r->rules[i].type == 'a' && r->rules[i].major < 0 && r->rules[i].minor < 0 &&
            strcmp(r->rules[i].access, "rwm") == 0) {
            default_allow = r->rules[i].allow;
            first = i + 1;
        }
    out[n++] = insn(0x61, 2, 1, 0, 0);      /* r2 = ctx->access_type */
    out[n++] = insn(0x54, 2, 0, 0, 0xFFFF); /* r2 = type */
    out[n++] = insn(0x61, 3, 1, 0, 0);
    out[n++] = insn(0x74, 3, 0, 0, 16);     /* r3 = access */
    out[n++] = insn(0x61, 4, 1, 4, 0);      /* r4 = major */
    out[n++] = insn(0x61, 5, 1, 8, 0);      /* r5 = minor */
    for (int i = r->nrules - 1; i >= first; i--) {
        const struct cg_rule *rule = &r->rules[i];
        struct { unsigned char code, dst, src; int imm; } block[6];
        int nb = 0;
        if (rule->type != 'a')
            block[nb++] = (typeof(block[0])){0x55, 2, 0, rule->type == 'b' ? 1 : 2};
        if (strcmp(rule->access, "rwm") != 0) {
            int bits = (strchr(rule->access, 'm') ? 1 : 0) | (strchr(rule->access, 'r') ? 2 : 0) |
                       (strchr(rule->access, 'w') ? 4 : 0);
            block[nb++] = (typeof(block[0])){0xBC, 1, 3, 0};
            block[nb++] = (typeof(block[0])){0x54, 1, 0, bits};
            block[nb++] = (typeof(block[0])){0x5D, 1, 3, 0};
        }
        if (rule->major >= 0)
            block[nb++] = (typeof(block[0])){0x55, 4, 0, (int)rule->major};
        if (rule->minor >= 0)
            block[nb++] = (typeof(block[0])){0x55, 5, 0, (int)rule->minor};
        int len = nb + 2;
        for (int k = 0; k < nb; k++) {
            int jump = block[k].code == 0x55 || block[k].code == 0x5D;
            out[n++] = insn(block[k].code, block[k].dst, block[k].src,
                            (short)(jump ? len - k - 1 : 0), block[k].imm);
        }
        out[n++] = insn(0xB7, 0, 0, 0, rule->allow ? 1 : 0);
        out[n++] = insn(0x95, 0, 0, 0, 0);
    }
    out[n++] = insn(0xB7, 0, 0, 0, default_allow ? 1 : 0);
    out[n++] = insn(0x95, 0, 0, 0, 0);
    return n;
}

/* devices_bpf.install on a cgroup of our own making (no earlier program to detach) */
static int install_devices(const struct cg_plan *p, const struct cg_res *r) {
    static struct bpf_insn code[MAX_INSNS];
    static char log[65536];
    int n = program(r, code);
    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insn_cnt = (unsigned)n;
    load.insns = (unsigned long)code;
    load.license = (unsigned long)"Apache-2.0";
    load.log_level = 1;
    load.log_size = sizeof log;
    load.log_buf = (unsigned long)log;
    memcpy(load.prog_name, "tomato_devices", 14);
    log[0] = '\0';
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    if (prog < 0) {
        char reason[128], last[512] = "";
        snprintf(reason, sizeof reason, "%s", strerror(errno));
        lowercase(reason);
        for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            if (l[strspn(l, " \t")])
                snprintf(last, sizeof last, " (%s)", l + strspn(l, " \t"));
        return fail("cannot load the device bpf program: %s%s", reason, last);
    }
    int cg = open(p->unified, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r2 = 0;
    union bpf_attr attach;
    memset(&attach, 0, sizeof attach);
    attach.target_fd = (unsigned)cg;
    attach.attach_bpf_fd = (unsigned)prog;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    if (cg < 0 || syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach) < 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "%s", strerror(errno));
        lowercase(reason);
        r2 = fail("cannot attach the device bpf program to %s: %s", p->unified, reason);
    }
    if (cg >= 0)
        close(cg);
    close(prog);
    return r2;
}

/* V2Manager.set(Resources): the plan's writes in its order, then the device program */
int cg2_set(struct cg_plan *p, struct cg_res *r) {
    const char *f = "linux.resources";
    char value[96], field[96];
    if (r->shares) { /* convert.shares_to_weight */
        long long s = r->shares < 2 ? 2 : r->shares > 262144 ? 262144 : r->shares;
        snprintf(value, sizeof value, "%lld", 1 + ((s - 2) * 9999) / 262142);
        snprintf(field, sizeof field, "%s.cpu.shares", f);
        if (put(p, "cpu.weight", value, field, 0) < 0)
            return -1;
    }
    if (r->quota || r->period) {
        char quota[32], period[32];
        if (r->quota == -1)
            snprintf(quota, sizeof quota, "max");
        else if (r->quota)
            snprintf(quota, sizeof quota, "%lld", r->quota);
        else
            cpu_max_word(p, 0, "max", quota, sizeof quota);
        if (r->period)
            snprintf(period, sizeof period, "%lld", r->period);
        else
            cpu_max_word(p, 1, "100000", period, sizeof period);
        snprintf(value, sizeof value, "%s %s", quota, period);
        snprintf(field, sizeof field, "%s.cpu.quota", f);
        if (put(p, "cpu.max", value, field, 0) < 0)
            return -1;
    }
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "mems" : "cpus", *want = k ? r->mems : r->cpus;
        if (!want)
            continue;
        char *parent = strdup(p->unified), avail[4096] = "", name[32];
        *strrchr(parent, '/') = '\0';
        snprintf(name, sizeof name, "cpuset.%s.effective", key);
        char *eff = path_in(parent, name);
        if (cg_read_file(eff, avail, sizeof avail) < 0)
            avail[0] = '\0';
        free(eff);
        free(parent);
        if (cpuset_check(key, want, avail) < 0)
            return -1;
        snprintf(name, sizeof name, "cpuset.%s", key);
        snprintf(field, sizeof field, "%s.cpu.%s", f, key);
        if (put(p, name, want, field, 0) < 0)
            return -1;
    }
    /* (cg_plan_check made sure swap_to_v2 has no error to raise) */
    long long limit = r->mem_limit, swap = r->mem_swap;
    if (limit) {
        max_or(value, sizeof value, limit);
        snprintf(field, sizeof field, "%s.memory.limit", f);
        if (put(p, "memory.max", value, field, 0) < 0)
            return -1;
    }
    if (swap) {
        max_or(value, sizeof value, swap == -1 ? -1 : swap - limit);
        snprintf(field, sizeof field, "%s.memory.swap", f);
        if (put(p, "memory.swap.max", value, field, 1) < 0)
            return -1;
    }
    if (r->mem_reservation) {
        max_or(value, sizeof value, r->mem_reservation);
        snprintf(field, sizeof field, "%s.memory.reservation", f);
        if (put(p, "memory.low", value, field, 0) < 0)
            return -1;
    }
    if (r->has_pids) {
        max_or(value, sizeof value, r->pids_limit <= 0 ? -1 : r->pids_limit);
        snprintf(field, sizeof field, "%s.pids.limit", f);
        if (put(p, "pids.max", value, field, 0) < 0)
            return -1;
    }
    return r->has_devices ? install_devices(p, r) : 0;
}
