/* tomato-runtime-front: the verbs containerd calls most, answered without Python.
 *
 * See main.c for the contract (what is answered here, what goes to Python) and
 * docs/runtime.md ("The state directory") for the state format both read.
 */
#ifndef TOMATO_FRONT_H
#define TOMATO_FRONT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- json.c: a strict RFC 8259 parser (a subset of what Python's json takes) ---- */
enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jnode {
    enum jtype type;
    int next;       /* next element of the enclosing array / next member of the object */
    int child;      /* array: first element; object: first member (a key node) */
    int value;      /* key node: its value */
    const char *raw; /* where the value starts in the text (strings: at the quote) */
    size_t rawlen;
    char *s;        /* strings and keys: decoded UTF-8, NUL-terminated (no NUL inside) */
    int is_int;     /* numbers: an integer that fits a long long */
    long long i;
};

struct json {
    struct jnode *n;
    int count, cap;
    char *arena;    /* decoded strings */
    size_t used;
};

/* 0, or -1 for anything this parser does not take (the caller then asks Python). */
int json_parse(const char *text, size_t len, struct json *out);
/* The value of KEY in object OBJ (the last one, as Python's dict keeps), or -1. */
int json_get(const struct json *j, int obj, const char *key);
/* Whether object OBJ names a key twice (Python's dict would reorder it). */
int json_has_duplicates(const struct json *j, int obj);
int json_len(const struct json *j, int node);

/* Output: Python's json.dumps string escaping, ensure_ascii on or off.
 * -1 if S is not valid UTF-8. */
int json_put_string(char **buf, size_t *len, size_t *cap, const char *s, int ascii);
int buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n);
int buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- state.c: ROOT/<id>/state.json, as tomato.runtime.statedir writes it ---- */
struct cgroup_rec;

struct record {
    char *text;          /* the file as read */
    size_t len;
    struct json js;
    const char *id, *bundle, *rootfs, *created, *status, *owner;
    long long pid, pid_start, creator_pid, creator_start;
    int status_node;     /* -1 when the file has no "status" */
    int annotations;     /* object node, or -1 for none/empty */
    int config;          /* object node, or -1 */
    int host_mounts;     /* -1 when null or absent */
    struct cgroup_rec *cg; /* NULL when the container has no cgroups */
};

#define MAX_STATE_SIZE (64 << 20) /* statedir.MAX_STATE_SIZE */

/* 0 loaded; 1 no such container; -1 ask Python. */
int record_load(const char *root, const char *id, struct record *rec);
/* The true status (statedir/lifecycle.status_of); NULL: ask Python. */
const char *record_status(const char *root, const struct record *rec);
/* Rewrite "status" in place (the rest of the file byte for byte); 0 or -1 (errno). */
int record_save_status(const char *root, struct record *rec, const char *status);
long long proc_start_time(long long pid);
int alive(long long pid, long long start);
int valid_id(const char *id);
char *state_dir(const char *root, const char *id);
void remove_state_dir(const char *root, const char *id);
/* config.hooks.KIND holds hooks (1), none (0), or something odd (-1). */
int config_hooks(const struct record *rec, const char *kind);
/* The container shares its caller's pid namespace (no pid namespace, or a path). */
int shares_pid_ns(const struct record *rec);

/* ---- cgroup.c: the few manager operations these verbs need (cgroups/v1.py, v2.py) ---- */
/* Parse rec's "cgroup" member; 0, or -1 for anything not fully understood. */
int cgroup_from_state(struct record *rec, int node);
int cg_exists(const struct cgroup_rec *cg);
/* 1 frozen, 0 not, -1 ask Python (no freezer to look at). */
int cg_frozen(const struct cgroup_rec *cg);
/* These return 0, or -1 after fail() has been called. */
int cg_freeze(const struct cgroup_rec *cg);
int cg_thaw(const struct cgroup_rec *cg);
int cg_kill_all(const struct cgroup_rec *cg, int sig);
int cg_destroy(const struct cgroup_rec *cg);
/* exec: 1 when apply would only write cgroup.procs; then apply (0, or -1 after fail()). */
int cg_ready_for_exec(const struct cgroup_rec *cg);
int cg_apply(const struct cgroup_rec *cg, int pid);
/* base.write (write_error's words on failure: 0, or -1 after fail()) and base.read
 * (stripped; 0 or -errno), for create_cgroup.c */
int cg_write_file(const char *path, const char *value);
int cg_read_file(const char *path, char *buf, size_t size);

/* ---- main.c ---- */
/* Record a failure: the message as the Python CLI words it (one line). Returns -1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fail_os(int err, const char *path); /* as the CLI prints an OSError */
/* The failure recorded so far (a copy to free), or NULL: kept across a rollback */
char *failure_copy(void);
/* ... and the failure taken back (a warning after all: the caller frees it) */
char *failure_take(void);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sleep_ms(double ms);
/* From a verb's point of no return on: the held-back --log/--debug records go out. */
void commit_now(void);
/* Said by the hand-over under TOMATO_RUNTIME_FRONT_ONLY, when set (create_check.c) */
extern const char *handover_reason;

/* ---- primer.c ---- */
void start_primer(int min_fd);

/* ---- exec's process, built before the fork (exec_process.c), used after it (exec_child.c) ---- */

#define MAX_RLIMITS 16
#define MAX_GIDS 256

struct exec_rlimit {
    int resource;
    const char *name;
    unsigned long long soft, hard;
};

struct exec_caps {
    uint64_t bounding, effective, permitted, inheritable, ambient;
};

/* process.json (oci.spec.parse_process's Process) plus what exec.py decided. */
struct exec_proc {
    char **args;               /* NULL-terminated */
    char **env;                /* env_dict's order, NULL-terminated, one slot kept for HOME */
    int has_home, has_path;
    const char *path_value;    /* PATH's value when has_path */
    const char *cwd;
    int terminal;
    unsigned rows, cols;
    int has_size;
    uid_t uid;
    gid_t gid;
    long umask;                /* -1: none */
    gid_t gids[MAX_GIDS];
    int ngids;
    struct exec_rlimit rlimits[MAX_RLIMITS];
    int nrlimits;
    int no_new_privs;
    int has_caps;
    struct exec_caps caps;
    int last_cap;              /* /proc/sys/kernel/cap_last_cap */
    /* the seccomp program (none: filter == NULL) */
    void *filter;
    unsigned short filter_len;
    unsigned filter_flags;
    int preserve_fds;
    long long container_pid;   /* its init: the ns paths named in errors */
    int dmz;                   /* a sealed copy of tomato-dmz, which makes the execve (dmz.c) */
};

/* The child's side, from fork to execve (exec_child.c).  Never returns: it execs, or
 * writes Python's words for what failed to ERR_FD and exits 126. */
void exec_child(struct exec_proc *p, const int *ns_fds, const int *ns_types,
                const char *const *ns_names, int nns,
                int root_fd, int go_fd, int console_fd, int err_fd)
    __attribute__((noreturn));

/* The process's last steps, shared by exec's child and the container's init (init.c).
 * Failures are reported as child_reports_to says: exec's child writes Python's words to
 * its error pipe and exits 126; the init sends an 'E' packet (create.h) and exits 1. */
struct prepared {
    const char *executable;
    int seccomp, held;  /* the filter still to load; CAP_SYS_ADMIN held only for it */
};
#define INIT_STARTED 2 /* child_reports_to's INIT after "ready": FD is stderr */
void child_reports_to(int fd, int init);
void child_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void child_die_os(int err) __attribute__((noreturn));
void child_die_path(int err, const char *path) __attribute__((noreturn));
void child_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *lower(const char *s, char *buf, size_t size);
/* pty, rlimits, HOME, the executable, umask, capabilities, user, cwd, no_new_privs,
 * fds past the preserved ones close-on-exec */
void process_prepare(struct exec_proc *p, int console_fd, struct prepared *out);
/* default signals, seccomp, execve through tomato-dmz */
void process_exec(struct exec_proc *p, const struct prepared *ready, const char *mode,
                  int report_fd) __attribute__((noreturn));

/* ---- exec_process.c: exec's process from process.json, or the container's and flags ---- */
#define MAX_ARGS 4096
int is_null(const struct json *j, int v);
/* caps.parse of one set's names into a mask; -1 for a name Python refuses or warns of */
int cap_set(const struct json *j, int v, int last_cap, uint64_t *mask);
int take_caps(const struct json *j, int v, struct exec_proc *p);
/* The members of process object V into P (ARGS, when given, replaces its args; ENV_EXTRA
 * is appended to its env); 0, or -1 for anything Python is to answer. */
int take_process(const struct json *j, int v, struct exec_proc *p, char **args,
                 const char *const *env_extra, int nextra);
/* ROOT/<id>/seccomp.bpf into P; -1 when there is none to take */
int take_seccomp(const char *root, const char *id, struct exec_proc *p);
/* A regular file of at most MAX bytes, whole (NUL-terminated), or NULL */
char *read_small(const char *path, size_t max, size_t *len);
int read_int_file(const char *path, long long *out);
int is_dir(const char *path); /* stat follows links */
char *dupf(const char *fmt, const char *a, const char *b);
const char *cap_name(int number, char *buf, size_t size); /* caps.cap_name */

/* ---- seccomp_cache.c: linux.seccomp from Python's compiled cache (never compiled here) ---- */
#define SECCOMP_FILE "seccomp.bpf"  /* ROOT/<id>/seccomp.bpf, for exec (seccomp_cache.py) */
#define SECCOMP_MAGIC "TSECCOMP"
/* PROFILE's program from ROOT/.seccomp into P (filter, filter_len, filter_flags); -1 on a
 * miss (the create is then Python's, which fills the cache) */
int seccomp_from_cache(const char *root, const struct json *j, int profile,
                       struct exec_proc *p);
void seccomp_save_for_exec(const char *state_dir, const struct exec_proc *p);

/* ---- exec.c ---- */
int verb_exec(const char *root, int argc, char **argv);
/* errpipe.c: what was written to exec's error pipe, to its end, decoded as Python's
 * bytes.decode(errors="replace") (malloc'd, NUL-terminated; NULL and 0 when nothing) */
char *read_failure(int fd, size_t *len);
/* pidfile.c: statedir.write_pid_file (O_EXCL|O_NOFOLLOW temp + rename); 0 or -errno */
int write_pid_file(const char *path, pid_t pid);

/* ---- create_check.c: whether create/run is ordinary (see its header) ---- */
struct create_flags {
    const char *bundle, *pid_file, *console_socket, *preserve_fds_text, *id;
    int no_pivot, no_new_keyring, detach, keep, preserve_fds;
};
/* 0, or -1 for anything Python words or does */
int create_parse_flags(int argc, char **argv, int is_run, struct create_flags *f);
/* NULL for an ordinary config (TERMINAL: process.terminal), else the member that
 * makes it Python's */
const char *config_not_ordinary(const struct json *j, int last_cap, int *terminal);
int verb_create(const char *root, int argc, char **argv);
/* create.c: an ordinary create (IS_RUN: run) answered here; an exit code, or ASK_PYTHON
 * before anything was made */
int create_in_c(const char *root, const struct create_flags *f, const struct json *j,
                int last_cap, int is_run);
/* why create.c left an ordinary config to Python (the hand-over's words under FRONT_ONLY) */
extern const char *create_why;
#define PYTHONS(why) (create_why = (why), ASK_PYTHON)
int verb_run(const char *root, int argc, char **argv);

/* ---- verbs.c ---- */
/* Each returns an exit code, or -2 to hand the whole command to Python; it may
 * return -2 only before it has changed anything. */
int verb_state(const char *root, int argc, char **argv);
int verb_start(const char *root, int argc, char **argv);
int verb_kill(const char *root, int argc, char **argv);
int verb_delete(const char *root, int argc, char **argv);
int verb_pause(const char *root, int argc, char **argv);
int verb_resume(const char *root, int argc, char **argv);
int verb_list(const char *root, int argc, char **argv);

/* ---- dmz.c: tomato-dmz, the container's last execve, from a sealed copy ---- */
/* A close-on-exec fd of a sealed memfd holding the tomato-dmz installed beside the
 * launcher; -1 when there is none (the caller then hands over to Python). */
int dmz_sealed(void);
/* The container's program through the dmz (MODE "exec": failures to REPORT_FD); returns
 * only when the dmz itself could not be run, errno set. */
void dmz_execve(int dmz, const char *mode, int report_fd, const char *executable,
                char *const *args, char *const *env);
/* main.c: NAME in the launcher's directory (malloc'd), or NULL */
char *beside_launcher(const char *name);

#define ASK_PYTHON (-2)

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#endif
