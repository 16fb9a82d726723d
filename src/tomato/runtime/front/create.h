/* create.h: `create` and `run` in C, for the configs create_check.c calls ordinary.
 *
 * Two halves meet here:
 *   create.c (the runtime's side): flags, config.json -> struct init_config, the state
 *     directory and state.json (statedir.py's format), exec.fifo, the cgroups and their
 *     resources, clone(2) into the new namespaces, placing the child in its cgroups,
 *     "go", waiting for "ready", the pid file; run's start, wait and delete.
 *   init.c (the container's side): container_init_c, from clone to execve, in
 *     runtime/init.py's and rootfs.py's order.
 *
 * Everything the init needs is parsed and allocated by create.c before the clone:
 * the init only reads this struct (as exec_child.c reads struct exec_proc).
 *
 * The sync socket is a SOCK_SEQPACKET pair; one packet a message, its first byte the
 * kind:
 *   runtime -> init   'G'            placed in the cgroups (and, with userns, mapped):
 *                                    go on
 *   init -> runtime   'W' text       a warning for the runtime's log (log.warning)
 *                     'E' text       what failed, in Python's words (init.describe);
 *                                    the init then exits 1
 *                     'R'            ready: blocked on exec.fifo until `start`
 *   EOF before 'R': "container init exited before it was ready".
 */
#ifndef TOMATO_CREATE_H
#define TOMATO_CREATE_H

#include "front.h"

#define MAX_MOUNT_PROPAGATION 8
#define MAX_CGROUP_DIRS 16
#define MAX_JOINED 8

struct init_mount {
    const char *destination;  /* as the config gives it (absolute) */
    const char *type;         /* the config's type; "" when absent */
    const char *source;       /* the config's source as given (a bind's relative source is
                               * joined to the bundle by the init, whose errors name it as
                               * given); a non-bind without one: the type */
    unsigned long flags;      /* mountopts.parse_options: MS_* flags (MS_BIND|MS_REC for
                               * rbind) */
    unsigned long propagation[MAX_MOUNT_PROPAGATION]; /* MS_PRIVATE|MS_REC ..., in order */
    int npropagation;
    const char *data;         /* the data words joined by ",", or NULL for none */
    int bind;                 /* type "bind", or a bind/rbind option */
    int recursive_ro;         /* "rro" */
};

struct init_device {
    const char *path;        /* as given (absolute) */
    char type;               /* 'c', 'b', 'u' or 'p' */
    long long major, minor;
    unsigned mode;           /* fileMode, 0666 when absent */
    uid_t uid;               /* 0 when absent */
    gid_t gid;
};

struct init_cgroup_dir {
    const char *name;        /* below /sys/fs/cgroup inside: "cpu,cpuacct", "memory" */
    const char *host_dir;    /* the container's cgroup in that hierarchy */
};

struct init_joined {
    const char *kind;        /* "network", "ipc", "uts", "cgroup" (as the config says) */
    const char *path;
    int flag;                /* CLONE_NEWNET ... */
};

struct init_config {
    const char *rootfs;      /* realpath of the bundle's root.path */
    const char *bundle;      /* absolute */
    struct init_mount *mounts;
    int nmounts;
    struct init_device *devices;
    int ndevices;
    const char **masked;     /* linux.maskedPaths */
    int nmasked;
    const char **readonly;   /* linux.readonlyPaths */
    int nreadonly;
    const char **sysctl_keys, **sysctl_values; /* linux.sysctl in the config's order */
    int nsysctl;
    const char *hostname, *domainname; /* NULL or "": left alone */
    const char *propagation; /* linux.rootfsPropagation, "" when absent */
    int root_readonly;       /* root.readonly */
    int no_pivot;            /* --no-pivot */
    int new_cgroupns;        /* a cgroup namespace without a path */
    int cgroupns;            /* a cgroup namespace, new or joined (the cgroup2 mount) */
    struct init_joined joined[MAX_JOINED]; /* namespaces with a path, joined by the init
                                            * with setns in the config's order; but pid,
                                            * which create.c joins before the clone (for
                                            * the child alone) and leaves after it */
    int njoined;
    int has_network_ns, has_ipc_ns, has_uts_ns; /* for check_sysctls */
    int cgroup_unified;      /* cgroup v2 */
    struct init_cgroup_dir cgroup_dirs[MAX_CGROUP_DIRS]; /* rootfs.cgroup_mount_dirs */
    int ncgroup_dirs;
    struct exec_proc proc;   /* process (take_process), its seccomp program, dmz fd */
    int sync_fd;             /* the init's end of the SOCK_SEQPACKET pair */
    int fifo_fd;             /* exec.fifo opened O_RDWR: one byte from `start` means exec */
    int console_fd;          /* --console-socket, connected; -1 without a terminal */
};

/* ---- inroot.c: paths inside the rootfs (_sys/paths.py) ---- */
void normpath(const char *path, char *out, size_t size); /* os.path.normpath, absolute */
int is_within(const char *root, const char *path);
/* resolve_in_root: the host path PATH names inside ROOT (symlinks resolved as if ROOT
 * were "/"); 0, or -1 with errno (EXDEV: ".." above the root when STRICT) */
int resolve_in_root(const char *root, const char *path, int strict, char *out, size_t size);
int make_dirs(const char *path, mode_t mode); /* os.makedirs(exist_ok=True) */
int real_within(const char *root, const char *path); /* its realpath is inside ROOT */
/* Directory HOST (resolved inside ROOT) made component by component through directory
 * fds, a symlink swapped in meanwhile refused: open_dirs_in gives its O_PATH fd (the
 * parent for mknodat/openat/symlinkat), make_dirs_in closes it.  -1 with errno. */
int open_dirs_in(const char *root, const char *host, mode_t mode);
int make_dirs_in(const char *root, const char *host, mode_t mode);

/* ---- init_devices.c: /dev (devices.py) ---- */
void init_make_device(const char *rootfs, const char *path, char type, long long major,
                      long long minor, unsigned mode, uid_t uid, gid_t gid);
void init_default_devices(const char *rootfs);

/* ---- init_rootfs.c: steps 1-6 of rootfs.py ---- */
struct later { /* a tmpfs or /dev asked read-only: made so after the switch */
    const char *destination;
    unsigned long flags;
};
/* Steps 1-4; returns how many of LATER (room for c->nmounts) it filled. */
int init_mount_all(const struct init_config *c, struct later *later);
void init_pivot_root(void); /* step 5, into the rootfs given to init_mount_all */
void init_after_pivot(const struct init_config *c, const struct later *later, int nlater);

/* The child's side, from clone to execve (init.c).  Never returns: it execs, or sends
 * 'E' with what failed and exits 1. */
void container_init_c(struct init_config *c) __attribute__((noreturn));

#endif
