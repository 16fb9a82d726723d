/* init_rootfs.c: the container's root filesystem, built by the init in C (init.c) in
 * runtime/rootfs.py's order and with its words:
 *    1. "/" a slave (or the spec's rootfsPropagation), the rootfs's parent mount private
 *    2. the rootfs bound onto itself (a mount point pivot_root takes)
 *    3. every spec mount in order, its destination resolved inside the rootfs and
 *       mounted through an O_PATH fd checked to be still inside it; tmpfs and /dev
 *       asked read-only are mounted read-write until after the switch
 *    4. /dev: the default devices, /dev/fd and the stdio links, ptmx; linux.devices
 *    5. pivot_root
 *    6. sysctls, masked and read-only paths, the tmpfs and /dev made read-only, the
 *       new root's propagation, a read-only root (init_after_pivot)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "create.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#define PROC_SUPER_MAGIC 0x9fa0

/* statvfs f_flag bits that match MS_* and may be locked on a mount we bind */
#define LOCKABLE (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | \
                  MS_RELATIME)

#define die child_die
#define die_os child_die_os
#define die_path child_die_path

static const char *rootfs; /* the container's root (a realpath), until pivot_root */
static const struct init_config *cfg;

/* ---- one mount's steps (rootfs.py) ---- */

/* _Pinned: DEST (a host path) opened O_PATH and checked to be inside the rootfs; the
 * mount then goes on /proc/self/fd/N, the very object checked (CVE-2021-30465). */
static int pin(const char *host, const char *destination, char *proc_path, size_t size) {
    int fd = open(host, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    real[n > 0 ? n : 0] = '\0';
    if (!is_within(rootfs, real)) {
        close(fd);
        die("mount destination %s escapes the rootfs (it changed while being resolved)",
            destination);
    }
    snprintf(proc_path, size, "%s", link);
    return fd;
}

/* mount(2) on DEST pinned; -1 with errno */
static int mount_pinned(const char *host, const char *destination, const char *source,
                        const char *type, unsigned long flags, const char *data) {
    char target[64];
    int fd = pin(host, destination, target, sizeof target);
    if (fd < 0)
        return -1;
    int rc = mount(source, target, type, flags, data);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* _remount: bind-remount with FLAGS, keeping the flags the kernel locked on the source */
static int remount(const char *target, unsigned long flags) {
    unsigned long base = MS_BIND | MS_REMOUNT;
    if (mount(NULL, target, NULL, base | flags, NULL) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    struct statvfs sv;
    if (statvfs(target, &sv) < 0)
        return -1;
    return mount(NULL, target, NULL, base | flags | (sv.f_flag & LOCKABLE), NULL);
}

static int remount_pinned(const char *host, const char *destination, unsigned long flags) {
    char target[64];
    int fd = pin(host, destination, target, sizeof target);
    if (fd < 0)
        return -1;
    int rc = remount(target, flags);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* Files inside /proc a spec may mount over (runc's list: what lxcfs provides) */
static const char *const PROC_MOUNTABLE[] = {
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid", NULL,
};

/* mount_destination: the host path to mount on; refuses destinations that climb out of
 * the rootfs, land on /proc (but procfs) or inside it, or cover the whole root. */
static void mount_destination(const struct init_mount *m, int proc_source, char *host,
                              size_t size) {
    const char *d = m->destination;
    if (resolve_in_root(rootfs, d, 1, host, size) < 0)
        die("mount destination %s escapes the rootfs through a symlink", d);
    if (strcmp(m->type, "proc") == 0 || strcmp(m->type, "sysfs") == 0) {
        char joined[PATH_MAX + 8], lexical[PATH_MAX + 8];
        snprintf(joined, sizeof joined, "%s/%s", rootfs, d);
        normpath(joined, lexical, sizeof lexical);
        struct stat st;
        if (lstat(lexical, &st) == 0 && S_ISLNK(st.st_mode))
            die("mount destination %s is a symlink; %s must be mounted on a real directory", d,
                m->type);
    }
    const char *rel = host[strlen(rootfs)] == '/' ? host + strlen(rootfs) + 1 : ".";
    int inside = 0;
    if (strncmp(rel, "proc/", 5) == 0) {
        inside = 1;
        for (const char *const *ok = PROC_MOUNTABLE; *ok; ok++)
            if (strcmp(*ok + 1, rel) == 0)
                inside = 0;
    }
    if ((strcmp(rel, "proc") == 0 && strcmp(m->type, "proc") != 0 && !proc_source) || inside)
        die("mount destination %s is inside /proc (resolves to /%s)", d, rel);
    if (strcmp(rel, ".") == 0)
        die("mount destination %s resolves to the container's root", d);
}

/* create_file_in_root: DEST exists inside the rootfs as a file (a file bind's target) */
static int file_in_root(const struct init_mount *m) {
    const char *destination = m->destination;
    char host[PATH_MAX], dir[PATH_MAX];
    if (resolve_in_root(rootfs, destination, 0, host, sizeof host) < 0)
        return -1;
    snprintf(dir, sizeof dir, "%s", host);
    char *slash = strrchr(dir, '/');
    *slash = '\0'; /* host is below the rootfs (a mount destination, not the root) */
    int parent = open_dirs_in(rootfs, dir, 0777); /* the file made in its pinned parent */
    if (parent < 0)
        return -1;
    struct stat st;
    if (fstatat(parent, slash + 1, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int fd = openat(parent, slash + 1, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            int err = errno;
            close(parent);
            errno = err;
            return -1;
        }
        close(fd);
    }
    close(parent);
    if (!real_within(rootfs, host))
        die("mount %s (%s): path escapes the root", destination, m->type[0] ? m->type : "bind");
    return 0;
}

static int bind_mount(const struct init_mount *m, unsigned long flags, char *dest, size_t size) {
    char source[PATH_MAX + 8];
    if (m->source[0] == '/')
        snprintf(source, sizeof source, "%s", m->source);
    else
        snprintf(source, sizeof source, "%s/%s", cfg->bundle, m->source);
    struct stat st;
    if (stat(source, &st) < 0)
        die("mount source %s does not exist", m->source);
    char norm[PATH_MAX];
    normpath(m->destination, norm, sizeof norm);
    struct statfs fs;
    int proc_source = strcmp(norm, "/proc") == 0 && statfs(source, &fs) == 0 &&
                      fs.f_type == PROC_SUPER_MAGIC;
    mount_destination(m, proc_source, dest, size);
    if (S_ISDIR(st.st_mode) ? make_dirs_in(rootfs, dest, 0777) < 0 : file_in_root(m) < 0)
        return -1;
    if (mount_pinned(dest, m->destination, source, NULL, MS_BIND | (flags & MS_REC), NULL) < 0)
        return -1;
    unsigned long extra = flags & ~(unsigned long)(MS_BIND | MS_REC | MS_REMOUNT);
    if (extra && remount_pinned(dest, m->destination, extra) < 0) /* now the new mount */
        return -1;
    return 0;
}

/* _mount_cgroup: /sys/fs/cgroup inside, the container's own cgroups, not the host's tree */
static int mount_cgroup(const struct init_mount *m, char *dest, size_t size) {
    mount_destination(m, 0, dest, size);
    if (make_dirs_in(rootfs, dest, 0777) < 0)
        return -1;
    unsigned long flags = m->flags;
    if (cfg->cgroup_unified) {
        if (cfg->cgroupns)
            return mount_pinned(dest, m->destination, "cgroup2", "cgroup2",
                                flags & ~(unsigned long)MS_BIND, NULL);
        if (cfg->ncgroup_dirs) {
            if (mount_pinned(dest, m->destination, cfg->cgroup_dirs[0].host_dir, NULL,
                             MS_BIND | MS_REC, NULL) < 0)
                return -1;
            if (flags & MS_RDONLY && remount_pinned(dest, m->destination, flags & LOCKABLE) < 0)
                return -1;
        }
        return 0;
    }
    /* v1: a tmpfs holding one bind mount per hierarchy, read-only last.  Inside that
     * fresh tmpfs, nothing but us can have made a symlink. */
    if (mount_pinned(dest, m->destination, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "mode=755") < 0)
        return -1;
    for (int i = 0; i < cfg->ncgroup_dirs; i++) {
        const struct init_cgroup_dir *g = &cfg->cgroup_dirs[i];
        char sub[PATH_MAX + 128];
        snprintf(sub, sizeof sub, "%s/%s", dest, g->name);
        if (make_dirs(sub, 0777) < 0 || mount(g->host_dir, sub, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            remount(sub, (flags & LOCKABLE) | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
            return -1;
        if (!strchr(g->name, ',')) /* co-mounted: cpu -> cpu,cpuacct, as runc links them */
            continue;
        char parts[128];
        snprintf(parts, sizeof parts, "%s", g->name);
        for (char *save = NULL, *part = strtok_r(parts, ",", &save); part;
             part = strtok_r(NULL, ",", &save)) {
            char link[PATH_MAX + 128];
            struct stat st;
            snprintf(link, sizeof link, "%s/%s", dest, part);
            if (lstat(link, &st) < 0 && symlink(g->name, link) < 0)
                return -1;
        }
    }
    if (flags & MS_RDONLY &&
        mount(NULL, dest, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=755") < 0)
        return -1;
    return 0;
}

/* mountinfo's \ooo escapes of space, tab, newline and backslash */
static void unescape(char *s) {
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* "rro": every mount at or below DEST read-only, each keeping its own flags */
static int readonly_below(const char *dest) {
    size_t len = 0;
    char *text = read_small("/proc/self/mountinfo", 16 << 20, &len);
    if (!text)
        return -1;
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s", dest);
    size_t blen = strlen(base);
    while (blen > 1 && base[blen - 1] == '/')
        base[--blen] = '\0';
    /* in mount order, each mount point once */
    char **seen = calloc(len / 8 + 1, sizeof *seen);
    int nseen = 0, rc = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && seen && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        char *field = line;
        for (int i = 0; i < 4 && field; i++) {
            field = strchr(field, ' ');
            if (field)
                field++;
        }
        if (!field)
            continue;
        char *end = strchr(field, ' ');
        if (end)
            *end = '\0';
        unescape(field);
        if (!(strcmp(field, dest) == 0 ||
              (strncmp(field, base, blen) == 0 && field[blen] == '/')))
            continue;
        int again = 0;
        for (int i = 0; i < nseen; i++)
            again |= strcmp(seen[i], field) == 0;
        if (again)
            continue;
        seen[nseen++] = field;
        struct statvfs sv;
        rc = statvfs(field, &sv) < 0 ? -1 : remount(field, (sv.f_flag & LOCKABLE) | MS_RDONLY);
    }
    free(seen);
    free(text);
    return rc;
}

/* ---- the whole rootfs (rootfs.mount_all, steps 1-4) ---- */

static const char *const IPC_SYSCTLS[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
                                          "kernel.sem", "kernel.shmall", "kernel.shmmax",
                                          "kernel.shmmni", "kernel.shm_rmid_forced", NULL};

/* check_sysctls: refuse one no namespace of the container owns (it would be the host's) */
static void check_sysctls(void) {
    for (int i = 0; i < cfg->nsysctl; i++) {
        const char *key = cfg->sysctl_keys[i];
        char name[512];
        snprintf(name, sizeof name, "%s", key);
        for (char *c = name; *c; c++)
            if (*c == '/')
                *c = '.';
        const char *owner = NULL;
        int present = 0;
        for (const char *const *k = IPC_SYSCTLS; *k; k++)
            if (strcmp(*k, name) == 0)
                owner = "ipc";
        if (owner || strncmp(name, "fs.mqueue.", 10) == 0) {
            owner = "ipc";
            present = cfg->has_ipc_ns;
        } else if (strncmp(name, "net.", 4) == 0) {
            owner = "network";
            present = cfg->has_network_ns;
        } else if (strcmp(name, "kernel.hostname") == 0 || strcmp(name, "kernel.domainname") == 0) {
            owner = "uts";
            present = cfg->has_uts_ns;
        } else {
            die("sysctl %s is not namespaced: it would change the host", key);
        }
        if (!present)
            die("sysctl %s needs a %s namespace of the container's own: it would change the "
                "host's", key, owner);
    }
}

/* _parent_mount_propagation: the mount holding the rootfs private (slave for a slave
 * root): pivot_root refuses a shared parent, and our bind must not propagate back. */
static void parent_mount_propagation(int slave) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", rootfs);
    for (;;) {
        if (mount(NULL, path, NULL, slave ? MS_SLAVE : MS_PRIVATE, NULL) == 0)
            return;
        if (errno != EINVAL || strcmp(path, "/") == 0)
            die_path(errno, path);
        char *slash = strrchr(path, '/');
        slash[slash == path ? 1 : 0] = '\0';
    }
}

static unsigned long propagation_flag(const char *name) {
    static const struct {
        const char *name;
        unsigned long flag;
    } P[] = {{"private", MS_PRIVATE}, {"rprivate", MS_PRIVATE | MS_REC},
             {"shared", MS_SHARED},   {"rshared", MS_SHARED | MS_REC},
             {"slave", MS_SLAVE},     {"rslave", MS_SLAVE | MS_REC},
             {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
    for (size_t i = 0; name && i < sizeof P / sizeof *P; i++)
        if (strcmp(P[i].name, name) == 0)
            return P[i].flag;
    return 0;
}

/* Returns how many tmpfs and /dev mounts asked read-only were mounted read-write, to
 * be made read-only after the switch (LATER). */
int init_mount_all(const struct init_config *c, struct later *later) {
    cfg = c;
    rootfs = c->rootfs;
    check_sysctls();
    unsigned long given = propagation_flag(cfg->propagation);
    unsigned long root_flags = given && !(given & MS_UNBINDABLE) ? given : MS_SLAVE | MS_REC;
    if (mount(NULL, "/", NULL, root_flags, NULL) < 0)
        die_path(errno, "/");
    parent_mount_propagation((given & MS_SLAVE) != 0);
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        die_path(errno, rootfs);
    int dev_is_ours = 0, nlater = 0;
    for (int i = 0; i < cfg->nmounts; i++) {
        const struct init_mount *m = &cfg->mounts[i];
        unsigned long flags = m->flags;
        char norm[PATH_MAX], dest[PATH_MAX];
        int ro_later = 0;
        normpath(m->destination, norm, sizeof norm);
        if (flags & MS_RDONLY && (strcmp(m->type, "tmpfs") == 0 || strcmp(norm, "/dev") == 0)) {
            /* read-only once its submounts and devices are in (runc) */
            flags &= ~(unsigned long)MS_RDONLY;
            ro_later = 1;
        }
        int rc;
        if (m->bind) {
            rc = bind_mount(m, flags, dest, sizeof dest);
        } else if (strcmp(m->type, "cgroup") == 0) {
            rc = mount_cgroup(m, dest, sizeof dest);
        } else {
            mount_destination(m, 0, dest, sizeof dest);
            rc = make_dirs_in(rootfs, dest, 0777);
            if (rc == 0)
                rc = mount_pinned(dest, m->destination, m->source, m->type,
                                  flags & ~(unsigned long)MS_REMOUNT, m->data);
            if (strcmp(m->destination, "/dev") == 0)
                dev_is_ours = 1;
        }
        if (rc == 0 && m->recursive_ro)
            rc = readonly_below(dest);
        for (int p = 0; rc == 0 && p < m->npropagation; p++)
            rc = mount_pinned(dest, m->destination, NULL, NULL, m->propagation[p], NULL);
        if (rc < 0)
            die("mount %s (%s): %s", m->destination, m->type[0] ? m->type : "bind",
                strerror(errno));
        if (ro_later) /* by where it went, as the container will see it ("/a/../b": "/b") */
            later[nlater++] = (struct later){strdup(dest[strlen(rootfs)] ? dest + strlen(rootfs)
                                                                      : "/"),
                                             m->flags};
    }
    if (dev_is_ours)
        init_default_devices(rootfs);
    for (int i = 0; i < cfg->ndevices; i++) {
        const struct init_device *d = &cfg->devices[i];
        char norm[PATH_MAX];
        normpath(d->path, norm, sizeof norm);
        if (strcmp(norm, "/dev/ptmx") == 0)
            continue; /* the link to the container's devpts, made above (as runc) */
        init_make_device(rootfs, d->path, d->type, d->major, d->minor, d->mode, d->uid, d->gid);
    }
    return nlater;
}

/* ---- after the mounts: the switch and what goes on the new root ---- */

void init_pivot_root(void) {
    int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    int new_root = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (old_root < 0 || new_root < 0)
        die_path(errno, old_root < 0 ? "/" : rootfs);
    if (fchdir(new_root) < 0)
        die_os(errno);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        die_path(errno, ".");
    if (fchdir(old_root) < 0)
        die_os(errno);
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        die_path(errno, ".");
    if (umount2(".", MNT_DETACH) < 0)
        die_path(errno, ".");
    close(old_root);
    close(new_root);
    if (chdir("/") < 0)
        die_path(errno, "/");
}

static void apply_sysctls(void) {
    for (int i = 0; i < cfg->nsysctl; i++) {
        const char *key = cfg->sysctl_keys[i], *value = cfg->sysctl_values[i];
        char path[1024];
        int n = snprintf(path, sizeof path, "/proc/sys/%s", key);
        for (char *c = path + 10; *c; c++)
            if (*c == '.')
                *c = '/';
        /* ".." as a component of the dotted name */
        const char *k = key;
        for (const char *dot; k; k = dot ? dot + 1 : NULL) {
            dot = strchr(k, '.');
            size_t len = dot ? (size_t)(dot - k) : strlen(k);
            if (len == 2 && k[0] == '.' && k[1] == '.')
                die("invalid sysctl %s", key);
        }
        int fd = n < (int)sizeof path ? open(path, O_WRONLY | O_TRUNC | O_CLOEXEC) : -1;
        size_t vlen = strlen(value);
        if (fd < 0 || write(fd, value, vlen) != (ssize_t)vlen) {
            int err = errno;
            die("sysctl %s=%s: %s", key, value, strerror(err));
        }
        close(fd);
    }
}

static void mask_paths(void) {
    for (int i = 0; i < cfg->nmasked; i++) {
        const char *path = cfg->masked[i];
        struct stat st;
        if (stat(path, &st) < 0) {
            if (errno == ENOENT)
                continue;
            die_path(errno, path);
        }
        int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL)
                                     : mount("/dev/null", path, NULL, MS_BIND, NULL);
        if (rc < 0)
            die_path(errno, path);
    }
}

static void readonly_paths(void) {
    for (int i = 0; i < cfg->nreadonly; i++) {
        const char *path = cfg->readonly[i];
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT)
                continue;
            die_path(errno, path);
        }
        if (remount(path, MS_RDONLY | MS_REC) < 0)
            die_path(errno, path);
    }
}

/* Step 6, inside the new root. */
void init_after_pivot(const struct init_config *c, const struct later *later, int nlater) {
    rootfs = "/";
    apply_sysctls();
    mask_paths();
    readonly_paths();
    for (int i = 0; i < nlater; i++)
        if (remount(later[i].destination, (later[i].flags & LOCKABLE) | MS_RDONLY) < 0)
            die_path(errno, later[i].destination);
    /* last of the mounts: masks and read-only paths are binds, refused below an
     * unbindable "/" */
    unsigned long flag = propagation_flag(c->propagation);
    if (flag && !(flag & (MS_PRIVATE | MS_SLAVE)) && mount(NULL, "/", NULL, flag, NULL) < 0)
        die_path(errno, "/");
    if (c->root_readonly && remount("/", MS_RDONLY) < 0)
        die_path(errno, "/");
}
