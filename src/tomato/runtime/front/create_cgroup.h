/* create_cgroup.h: a new container's v1 cgroups (create_cgroup.c), for create.c. */
#ifndef TOMATO_CREATE_CGROUP_H
#define TOMATO_CREATE_CGROUP_H

#include "create.h"

#define MAX_CG_PATHS 32
#define MAX_DEVICE_RULES 512

/* new_manager's V1Manager: its paths (controller -> directory, in its order), the
 * cgroup2 directory of a hybrid host, the directories made and how many levels each. */
struct cg_plan {
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
    long long mem_limit, mem_reservation, mem_swap;
    int has_swap, swap_ignored;
    int has_pids;
    long long pids_limit;
    int has_devices, nrules;
    struct cg_rule rules[MAX_DEVICE_RULES];
};

int cg_plan_new(const char *cgroups_path, const char *id, struct cg_plan *p);
int cg_plan_check(const struct json *j, int resources, int linux_devices,
                  const struct cg_plan *p, struct cg_res *r);
char *cg_plan_json(const struct cg_plan *p, const char *id);
int cg_plan_create(struct cg_plan *p);
int cg_plan_set(const struct cg_plan *p, struct cg_res *r);
void cg_plan_mount_dirs(const struct cg_plan *p, struct init_config *c);

#endif
