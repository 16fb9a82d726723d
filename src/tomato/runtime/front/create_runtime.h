/* create_runtime.h: the rooms of create.c (the runtime's side of C create): the config
 * (create_config.c), the record (create_record.c), the v1 cgroups (create_cgroup.c). */
#ifndef TOMATO_CREATE_RUNTIME_H
#define TOMATO_CREATE_RUNTIME_H

#include "create.h"

#define MAX_CG_PATHS 32
#define MAX_DEVICE_RULES 512
#define MAX_CPUSET 8192     /* cpus and memory nodes create.c checks (more: Python's) */

/* new_manager's V1Manager: its paths (controller -> directory, in its order), the
 * cgroup2 directory of a hybrid host, the directories made and how many levels each. */
#define MAX_CG_WARNINGS 32

struct cg_plan {
    int version;                          /* 1, or 2 on a unified host (path: unified) */
    const char *mountpoint;               /* v2: the cgroup2 mount */
    char *warnings[MAX_CG_WARNINGS];      /* the manager's, logged once the init is ready */
    int nwarnings;
    const char *cgroups_path;             /* "tomato/<id>" for an empty cgroupsPath */
    int npaths;
    const char *ctrl[MAX_CG_PATHS], *path[MAX_CG_PATHS];
    const char *unified;                  /* NULL on a legacy host */
    int ndirs;                            /* _dirs(): each directory once */
    const char *dirs[MAX_CG_PATHS + 1];
    int made[MAX_CG_PATHS + 1], made_known[MAX_CG_PATHS + 1];
    int nhier;                            /* the v1 hierarchies, for cgroup_mount_dirs */
    const char *hier_name[MAX_CGROUP_DIRS], *hier_dir[MAX_CGROUP_DIRS];
};

struct cg_rule {
    int allow;
    char type;                /* 'a', 'b', 'c' */
    long long major, minor;   /* -1: "*" */
    char access[4];           /* canonical "rwm" order */
};

/* linux.resources as create.c writes them (0: none, as Python's falsy values) */
struct cg_res {
    long long shares, quota, period;
    const char *cpus, *mems;  /* cpuset lists, NULL for none */
    long long mem_limit, mem_reservation, mem_swap;
    int has_swap, swap_ignored;
    int has_pids;
    long long pids_limit;
    int has_devices, nrules;
    struct cg_rule rules[MAX_DEVICE_RULES];
};

int cg_plan_new(const char *cgroups_path, const char *id, struct cg_plan *p);
char *cg_plan_json(const struct cg_plan *p, const char *id);
int cg_plan_create(struct cg_plan *p); /* 0, or -1 after fail() */
void cg_plan_mount_dirs(const struct cg_plan *p, struct init_config *c);
const char *cg_plan_dir(const struct cg_plan *p, const char *ctrl); /* or NULL */
/* create_resources.c: 0 or ASK_PYTHON (before anything is made); then 0, or -1 after fail() */
int cg_plan_check(const struct json *j, int resources, int linux_devices,
                  const struct cg_plan *p, struct cg_res *r);
int cg_plan_set(struct cg_plan *p, struct cg_res *r);
/* base.check_cpuset: 0, or -1 after fail() in its words */
int cpuset_check(const char *key, const char *value, const char *available);
/* create_cgroup2.c: V2Manager's create (after the mkdir) and set */
void cg2_enable(struct cg_plan *p);
int cg2_set(struct cg_plan *p, struct cg_res *r);

/* ---- create_config.c ---- */
struct config_extra {
    const char *bundle;        /* os.path.abspath of --bundle */
    int linux_, process;       /* their nodes (linux_: -1 when absent) */
    int clone_flags;           /* CLONE_NEW* of the namespaces made new (not cgroup) */
    int pid_ns;                /* a pid namespace to join for the child, or -1 */
    const char *pid_ns_path;
};
int absent(const struct json *j, int v);
const char *str_or(const struct json *j, int obj, const char *key, const char *dflt);
int create_config(const struct json *j, const struct create_flags *f, int last_cap,
                  struct init_config *c, struct config_extra *x);

/* ---- create_record.c ---- */
struct create_state {
    const char *root, *id, *dir;
    const char *bundle, *rootfs;
    char created[64];
    long long pid, pid_start, creator_pid, creator_start;
    const char *status;
    char *annotations, *cgroup, *config; /* JSON texts */
    int no_pivot;
};

/* No duplicate keys, no number but integers: json.dumps' text is then ours to write */
int config_plain(const struct json *j, int v);
char *json_dumps_py(const struct json *j, int v);
int record_save(const struct create_state *s); /* 0, or -1 after fail() */
void now_rfc3339(char *out, size_t size);

#endif
