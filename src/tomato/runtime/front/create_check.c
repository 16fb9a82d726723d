/* create_check.c: whether a `create` or `run` is an ordinary one, the front end's to
 * answer, or Python's (issue 14's last speed target).
 *
 * The first step of create in C: the decision.  An ordinary one goes on to create.c
 * (which may still leave it to Python, before anything is made: create_why says why);
 * any other is handed to Python, and under TOMATO_RUNTIME_FRONT_ONLY=1 the hand-over
 * names the member that made it Python's.
 *
 * "Ordinary" is a whitelist, never a blacklist: every flag, member and value below is
 * one create.c will mirror; anything else (a member this file does not name, a type
 * Python would refuse, a value Python would warn about) makes the whole command
 * Python's, before anything is changed.  Python's parser (oci/spec.py) ignores
 * members it does not know; this one hands them over, so a config of a newer spec
 * is never half understood.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

/* ---- the flags of create and run (cli.runtime CREATE_FLAGS, RUN_FLAGS) ---- */

static int named(const char *name, size_t n, const char *flag) {
    return flag && strlen(flag) == n && strncmp(name, flag, n) == 0;
}

static int bool_value(const char *eq, int *out) {
    if (!eq || strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "1") == 0)
        *out = 1;
    else if (strcmp(eq + 1, "false") == 0 || strcmp(eq + 1, "0") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

int create_parse_flags(int argc, char **argv, int is_run, struct create_flags *f) {
    memset(f, 0, sizeof *f);
    f->bundle = ".";
    int i = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || strcmp(arg, "-") == 0)
            break;
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        if (name[0] == '-' || name[0] == '=' || name[0] == '\0')
            return -1;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
#define IS(long_, short_) (named(name, n, long_) || named(name, n, short_))
        int *boolean = IS("no-pivot", NULL) ? &f->no_pivot
                       : IS("no-new-keyring", NULL) ? &f->no_new_keyring
                       : is_run && IS("detach", "d") ? &f->detach
                       : is_run && IS("keep", NULL) ? &f->keep : NULL;
        const char **value = IS("bundle", "b") ? &f->bundle
                             : IS("pid-file", NULL) ? &f->pid_file
                             : IS("console-socket", NULL) ? &f->console_socket
                             : IS("preserve-fds", NULL) ? &f->preserve_fds_text : NULL;
#undef IS
        if (boolean) {
            if (bool_value(eq, boolean) < 0)
                return -1;
            continue;
        }
        if (!value)
            return -1; /* unknown: Python words the error */
        if (eq) {
            *value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return -1;
            *value = argv[++i];
        }
    }
    if (argc - i != 1 || !valid_id(argv[i]))
        return -1; /* no id, extra arguments, or an id Python refuses */
    f->id = argv[i];
    if (f->preserve_fds_text) {
        const char *s = f->preserve_fds_text;
        char *end;
        long n = strtol(s, &end, 10);
        if (*s < '0' || *s > '9' || *end != '\0' || n > 4096)
            return -1;
        f->preserve_fds = (int)n;
    }
    if (!*f->bundle || (f->pid_file && !*f->pid_file) ||
        (f->console_socket && !*f->console_socket))
        return -1;
    return 0;
}

/* ---- the config ---- */

static const char *why; /* the first member that made the config Python's */

static int python(const char *member) {
    if (!why)
        why = member;
    return -1;
}

static int absent(const struct json *j, int v) {
    return v < 0 || j->n[v].type == J_NULL;
}

/* Object V has no member outside KEYS (and none twice); else Python's. */
static int only(const struct json *j, int v, const char *const *keys, const char *where) {
    if (j->n[v].type != J_OBJ || json_has_duplicates(j, v))
        return python(where);
    for (int k = j->n[v].child; k >= 0; k = j->n[k].next) {
        int known = 0;
        for (const char *const *key = keys; *key; key++)
            known |= strcmp(j->n[k].s, *key) == 0;
        if (!known) { /* name it: "linux.seccomp", "evil" */
            static char member[160];
            int top = strcmp(where, "the document") == 0;
            snprintf(member, sizeof member, "%s%s%.100s", top ? "" : where, top ? "" : ".",
                     j->n[k].s);
            return python(member);
        }
    }
    return 0;
}

static int is_string(const struct json *j, int v) {
    return v >= 0 && j->n[v].type == J_STR;
}

static int empty_or_absent(const struct json *j, int v) {
    return absent(j, v) || ((j->n[v].type == J_ARR || j->n[v].type == J_OBJ) &&
                            j->n[v].child < 0) ||
           (j->n[v].type == J_STR && j->n[v].s[0] == '\0');
}

static int int_at_least(const struct json *j, int v, long long lo) {
    return v >= 0 && j->n[v].type == J_NUM && j->n[v].is_int && j->n[v].i >= lo;
}

/* absent, or an array of strings (each absolute when ABS) */
static int strings_ok(const struct json *j, int v, int abs) {
    if (absent(j, v))
        return 1;
    if (j->n[v].type != J_ARR)
        return 0;
    for (int e = j->n[v].child; e >= 0; e = j->n[e].next)
        if (!is_string(j, e) || (abs && j->n[e].s[0] != '/'))
            return 0;
    return 1;
}

/* absent, or an object whose every value is a string */
static int string_map_ok(const struct json *j, int v) {
    if (absent(j, v))
        return 1;
    if (j->n[v].type != J_OBJ || json_has_duplicates(j, v))
        return 0;
    for (int k = j->n[v].child; k >= 0; k = j->n[k].next)
        if (!is_string(j, j->n[k].value))
            return 0;
    return 1;
}

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* mountopts.parse_options' words (flags, propagation, the ignored ones but idmap). */
static const char *const MOUNT_WORDS[] = {
    "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async",
    "dirsync", "mand", "nomand", "noatime", "atime", "nodiratime", "diratime", "relatime",
    "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime", "nosymfollow",
    "symfollow", "bind", "rbind", "silent", "loud", "private", "rprivate", "shared",
    "rshared", "slave", "rslave", "unbindable", "runbindable", "defaults", "rro", "rrw",
    NULL,
};

/* A filesystem's data word ("mode=755", "size=65536k", "newinstance"): the kernel's. */
static int data_word(const char *s) {
    size_t key = strspn(s, "abcdefghijklmnopqrstuvwxyz_");
    if (key == 0)
        return 0;
    if (s[key] == '\0')
        return 1;
    return s[key] == '=' &&
           strspn(s + key + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789._:-") == strlen(s + key + 1);
}

static int check_mounts(const struct json *j, int v) {
    static const char *const keys[] = {"destination", "type", "source", "options", NULL};
    static const char *const types[] = {"proc", "tmpfs", "devpts", "mqueue", "sysfs",
                                        "cgroup", "bind", NULL};
    if (absent(j, v))
        return 0;
    if (j->n[v].type != J_ARR)
        return python("mounts");
    for (int m = j->n[v].child; m >= 0; m = j->n[m].next) {
        if (only(j, m, keys, "mounts[]") < 0)
            return -1;
        int dest = json_get(j, m, "destination"), type = json_get(j, m, "type");
        int source = json_get(j, m, "source"), options = json_get(j, m, "options");
        if (!is_string(j, dest) || j->n[dest].s[0] != '/' ||
            (!absent(j, source) && !is_string(j, source)) ||
            !strings_ok(j, options, 0))
            return python("mounts[]");
        int bind = is_string(j, type) && strcmp(j->n[type].s, "bind") == 0;
        if (!absent(j, options))
            for (int o = j->n[options].child; o >= 0; o = j->n[o].next)
                bind |= strcmp(j->n[o].s, "bind") == 0 || strcmp(j->n[o].s, "rbind") == 0;
        if (!bind && !(is_string(j, type) && in_list(j->n[type].s, types)))
            return python("mounts[].type");
        if (!absent(j, options))
            for (int o = j->n[options].child; o >= 0; o = j->n[o].next)
                if (!in_list(j->n[o].s, MOUNT_WORDS) && (bind || !data_word(j->n[o].s)))
                    return python("mounts[].options");
    }
    return 0;
}

static int check_namespaces(const struct json *j, int v, int *has_mount, int *has_uts) {
    static const char *const keys[] = {"type", "path", NULL};
    static const char *const kinds[] = {"pid", "network", "ipc", "uts", "mount", "cgroup",
                                        NULL};
    if (absent(j, v))
        return 0;
    if (j->n[v].type != J_ARR)
        return python("linux.namespaces");
    unsigned seen = 0;
    for (int n = j->n[v].child; n >= 0; n = j->n[n].next) {
        if (only(j, n, keys, "linux.namespaces[]") < 0)
            return -1;
        int type = json_get(j, n, "type"), path = json_get(j, n, "path");
        if (!is_string(j, type) || !in_list(j->n[type].s, kinds))
            return python("linux.namespaces[].type");
        unsigned bit = 0;
        for (unsigned k = 0; kinds[k]; k++)
            if (strcmp(kinds[k], j->n[type].s) == 0)
                bit = 1u << k;
        if (seen & bit)
            return python("linux.namespaces[].type");
        seen |= bit;
        if (!absent(j, path) && (!is_string(j, path) ||
                                 (j->n[path].s[0] && j->n[path].s[0] != '/')))
            return python("linux.namespaces[].path");
        int joined = !absent(j, path) && j->n[path].s[0];
        if (strcmp(j->n[type].s, "mount") == 0) {
            if (joined) /* the mounts go into another's namespace: Python's */
                return python("linux.namespaces[].path");
            *has_mount = 1;
        }
        if (strcmp(j->n[type].s, "uts") == 0)
            *has_uts = 1;
    }
    return 0;
}

static int check_devices(const struct json *j, int v) {
    static const char *const keys[] = {"path", "type", "major", "minor", "fileMode", "uid",
                                       "gid", NULL};
    if (absent(j, v))
        return 0;
    if (j->n[v].type != J_ARR)
        return python("linux.devices");
    for (int d = j->n[v].child; d >= 0; d = j->n[d].next) {
        if (only(j, d, keys, "linux.devices[]") < 0)
            return -1;
        int path = json_get(j, d, "path"), type = json_get(j, d, "type");
        if (!is_string(j, path) || j->n[path].s[0] != '/' || !is_string(j, type) ||
            !in_list(j->n[type].s, (const char *const[]){"c", "b", "u", "p", NULL}))
            return python("linux.devices[]");
        int fifo = strcmp(j->n[type].s, "p") == 0;
        static const char *const numbers[] = {"major", "minor", "fileMode", "uid", "gid",
                                              NULL};
        for (int k = 0; numbers[k]; k++) {
            int m = json_get(j, d, numbers[k]);
            if (absent(j, m) ? k < 2 && !fifo : !int_at_least(j, m, 0))
                return python("linux.devices[]");
        }
    }
    return 0;
}

/* The resources the cgroupfs managers (v1.py, v2.py) write that create.c will write. */
static int check_resources(const struct json *j, int v) {
    static const char *const keys[] = {"devices", "memory", "cpu", "pids",
                                       "hugepageLimits", "unified", "rdma", "blockIO",
                                       "network", NULL};
    if (absent(j, v))
        return 0;
    if (only(j, v, keys, "linux.resources") < 0)
        return -1;
    static const char *const rare[] = {"hugepageLimits", "unified", "rdma", "blockIO",
                                       "network", NULL};
    for (int k = 0; rare[k]; k++) /* containerd writes some of these empty */
        if (!empty_or_absent(j, json_get(j, v, rare[k])))
            return python("linux.resources");
    int m = json_get(j, v, "devices");
    if (!absent(j, m)) {
        if (j->n[m].type != J_ARR)
            return python("linux.resources.devices");
        static const char *const rule_keys[] = {"allow", "type", "major", "minor", "access",
                                                NULL};
        for (int r = j->n[m].child; r >= 0; r = j->n[r].next) {
            if (only(j, r, rule_keys, "linux.resources.devices[]") < 0)
                return -1;
            int allow = json_get(j, r, "allow"), type = json_get(j, r, "type");
            int access = json_get(j, r, "access");
            if (allow < 0 || (j->n[allow].type != J_TRUE && j->n[allow].type != J_FALSE) ||
                (!absent(j, type) && (!is_string(j, type) ||
                                      !in_list(j->n[type].s,
                                               (const char *const[]){"a", "b", "c", NULL}))) ||
                (!absent(j, access) &&
                 (!is_string(j, access) || !*j->n[access].s ||
                  strspn(j->n[access].s, "rwm") != strlen(j->n[access].s))))
                return python("linux.resources.devices[]");
            for (int k = 0; k < 2; k++) {
                int n = json_get(j, r, k ? "minor" : "major");
                if (!absent(j, n) && !int_at_least(j, n, -1))
                    return python("linux.resources.devices[]");
            }
        }
    }
    static const struct {
        const char *section;
        const char *const keys[6];
        long long lo[6];
    } LIMITS[] = {
        {"memory", {"limit", "reservation", "swap", NULL}, {-1, -1, -1}},
        {"cpu", {"shares", "quota", "period", NULL}, {0, -1, 0}},
        {"pids", {"limit", NULL}, {-1}},
    };
    for (size_t s = 0; s < sizeof LIMITS / sizeof *LIMITS; s++) {
        m = json_get(j, v, LIMITS[s].section);
        if (absent(j, m))
            continue;
        const char *cpuset[] = {"cpus", "mems", NULL};
        const char *all[10];
        int n = 0;
        for (int k = 0; LIMITS[s].keys[k]; k++)
            all[n++] = LIMITS[s].keys[k];
        if (s == 1)
            for (int k = 0; cpuset[k]; k++)
                all[n++] = cpuset[k];
        all[n] = NULL;
        static char where[64];
        snprintf(where, sizeof where, "linux.resources.%s", LIMITS[s].section);
        if (only(j, m, all, where) < 0)
            return -1;
        for (int k = 0; LIMITS[s].keys[k]; k++) {
            int x = json_get(j, m, LIMITS[s].keys[k]);
            if (!absent(j, x) && !int_at_least(j, x, LIMITS[s].lo[k]))
                return python("linux.resources");
        }
        for (int k = 0; s == 1 && cpuset[k]; k++) {
            int x = json_get(j, m, cpuset[k]);
            if (!absent(j, x) && (!is_string(j, x) || !*j->n[x].s ||
                                  strspn(j->n[x].s, "0123456789,-") != strlen(j->n[x].s)))
                return python("linux.resources.cpu");
        }
    }
    return 0;
}

static int check_linux(const struct json *j, int v, int *has_mount, int *has_uts) {
    static const char *const keys[] = {
        "namespaces", "uidMappings", "gidMappings", "devices", "cgroupsPath", "resources",
        "sysctl", "maskedPaths", "readonlyPaths", "rootfsPropagation", "mountLabel",
        "seccomp", NULL,
    };
    if (absent(j, v))
        return 0;
    if (only(j, v, keys, "linux") < 0)
        return -1;
    /* a profile: create.c takes the program Python compiled (seccomp_cache.c), whole-key
     * compared; a miss is Python's, which compiles and caches it */
    int profile = json_get(j, v, "seccomp");
    if (!absent(j, profile) && j->n[profile].type != J_OBJ)
        return python("linux.seccomp");
    if (!empty_or_absent(j, json_get(j, v, "uidMappings")) ||
        !empty_or_absent(j, json_get(j, v, "gidMappings")))
        return python("linux.uidMappings");
    int m = json_get(j, v, "mountLabel"); /* a label to apply: Python's (lsm.py) */
    if (!absent(j, m) && (!is_string(j, m) || j->n[m].s[0]))
        return python("linux.mountLabel");
    m = json_get(j, v, "cgroupsPath");
    if (!absent(j, m) && (!is_string(j, m) || strchr(j->n[m].s, ':') ||
                          (j->n[m].s[0] && j->n[m].s[0] != '/')))
        return python("linux.cgroupsPath"); /* relative or slice:prefix:name: Python's */
    if (!string_map_ok(j, json_get(j, v, "sysctl")))
        return python("linux.sysctl");
    if (!strings_ok(j, json_get(j, v, "maskedPaths"), 1))
        return python("linux.maskedPaths");
    if (!strings_ok(j, json_get(j, v, "readonlyPaths"), 1))
        return python("linux.readonlyPaths");
    m = json_get(j, v, "rootfsPropagation");
    static const char *const propagations[] = {"", "private", "rprivate", "slave", "rslave",
                                               "shared", "rshared", "unbindable",
                                               "runbindable", NULL};
    if (!absent(j, m) && (!is_string(j, m) || !in_list(j->n[m].s, propagations)))
        return python("linux.rootfsPropagation");
    return check_namespaces(j, json_get(j, v, "namespaces"), has_mount, has_uts) < 0 ||
                   check_devices(j, json_get(j, v, "devices")) < 0 ||
                   check_resources(j, json_get(j, v, "resources")) < 0
               ? -1 : 0;
}

static int check_hooks(const struct json *j, int v) {
    if (absent(j, v))
        return 0;
    if (j->n[v].type != J_OBJ)
        return python("hooks");
    static const char *const kinds[] = {"prestart", "createRuntime", "createContainer",
                                        "startContainer", "poststart", "poststop", NULL};
    for (int k = j->n[v].child; k >= 0; k = j->n[k].next) {
        int hooks = j->n[k].value;
        if (!in_list(j->n[k].s, kinds) || /* an unknown kind: Python's error */
            !(absent(j, hooks) || (j->n[hooks].type == J_ARR && j->n[hooks].child < 0)))
            return python("hooks");
    }
    return 0;
}

const char *config_not_ordinary(const struct json *j, int last_cap, int *terminal) {
    static const char *const keys[] = {"ociVersion", "root", "process", "hostname",
                                       "domainname", "mounts", "hooks", "linux",
                                       "annotations", NULL};
    why = NULL;
    if (j->count < 1 || only(j, 0, keys, "the document") < 0)
        return why;
    int m = json_get(j, 0, "ociVersion");
    if (!is_string(j, m) || strncmp(j->n[m].s, "1.", 2) != 0)
        return "ociVersion";
    m = json_get(j, 0, "root");
    static const char *const root_keys[] = {"path", "readonly", NULL};
    if (m < 0 || only(j, m, root_keys, "root") < 0)
        return "root";
    int path = json_get(j, m, "path"), ro = json_get(j, m, "readonly");
    if (!is_string(j, path) || !j->n[path].s[0] ||
        (!absent(j, ro) && j->n[ro].type != J_TRUE && j->n[ro].type != J_FALSE))
        return "root";
    static struct exec_proc p;
    memset(&p, 0, sizeof p);
    p.last_cap = last_cap;
    m = json_get(j, 0, "process");
    if (absent(j, m) || take_process(j, m, &p, NULL, NULL, 0) < 0)
        return "process";
    free(p.env);
    *terminal = p.terminal;
    int has_mount = 0, has_uts = 0;
    if (check_mounts(j, json_get(j, 0, "mounts")) < 0 ||
        check_hooks(j, json_get(j, 0, "hooks")) < 0 ||
        check_linux(j, json_get(j, 0, "linux"), &has_mount, &has_uts) < 0)
        return why;
    if (!has_mount) /* the caller's mount namespace, and host mounts to clean: Python's */
        return "linux.namespaces (no mount namespace)";
    for (int k = 0; k < 2; k++) {
        m = json_get(j, 0, k ? "domainname" : "hostname");
        if (!absent(j, m) && (!is_string(j, m) || (j->n[m].s[0] && !has_uts)))
            return k ? "domainname" : "hostname";
    }
    if (!string_map_ok(j, json_get(j, 0, "annotations")))
        return "annotations";
    return NULL;
}

/* The hand-over's words under FRONT_ONLY: why this create or run is Python's. */
static char reason[256];

int verb_create_or_run(const char *root, int argc, char **argv, int is_run) {
    struct create_flags f;
    const char *not_ordinary = NULL;
    long long last_cap = -1;
    int terminal = 0;
    if (create_parse_flags(argc, argv, is_run, &f) < 0) {
        not_ordinary = "flags";
    } else if (read_int_file("/proc/sys/kernel/cap_last_cap", &last_cap) < 0 ||
               last_cap < 0 || last_cap > 63) {
        not_ordinary = "cap_last_cap";
    } else {
        struct stat st;
        char *dir = state_dir(root, f.id);
        if (dir && lstat(dir, &st) == 0)
            not_ordinary = "the container exists";
        free(dir);
        char path[4096];
        size_t len = 0;
        static struct json js;
        char *text = NULL;
        if (!not_ordinary) {
            snprintf(path, sizeof path, "%s/config.json", f.bundle);
            text = read_small(path, MAX_STATE_SIZE, &len);
            if (!text || json_parse(text, len, &js) < 0 || js.n[0].type != J_OBJ)
                not_ordinary = "config.json (missing, unreadable or not plain JSON)";
            else
                not_ordinary = config_not_ordinary(&js, (int)last_cap, &terminal);
        }
        /* a pty needs the caller's socket (run without one: Python's relay), and a
         * socket without a pty is Python's error */
        if (!not_ordinary && terminal != (f.console_socket != NULL))
            not_ordinary = terminal ? "process.terminal without --console-socket"
                                    : "--console-socket without process.terminal";
        if (!not_ordinary) {
            int code = create_in_c(root, &f, &js, (int)last_cap, is_run);
            if (code != ASK_PYTHON)
                return code;
            not_ordinary = create_why ? create_why : "create.c";
        }
    }
    snprintf(reason, sizeof reason, "%s", not_ordinary);
    handover_reason = reason;
    return ASK_PYTHON;
}

int verb_create(const char *root, int argc, char **argv) {
    return verb_create_or_run(root, argc, argv, 0);
}

int verb_run(const char *root, int argc, char **argv) {
    return verb_create_or_run(root, argc, argv, 1);
}
