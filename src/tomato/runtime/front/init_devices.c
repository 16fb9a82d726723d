/* init_devices.c: /dev inside the container, made by the init in C before the switch
 * (init_rootfs.c, step 4), as runtime/devices.py makes it: the spec's default devices,
 * the /dev/fd and stdio links, ptmx as a link to the container's devpts; and each of
 * linux.devices (a link at the node's own path is replaced, never followed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "create.h"

#define die child_die
#define die_os child_die_os
#define die_path child_die_path

/* The pinned parent directory of HOST (resolved inside ROOTFS), made where missing
 * (inroot.c: nothing is made by name through the host's root); NAME: HOST's last part. */
static int parent_of(const char *rootfs, const char *host, const char **name) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", host);
    char *slash = strrchr(dir, '/');
    *name = host + (slash - dir) + 1;
    slash[slash == dir ? 1 : 0] = '\0';
    int fd = open_dirs_in(rootfs, dir, 0777);
    if (fd < 0)
        die_path(errno, dir);
    return fd;
}

void init_make_device(const char *rootfs, const char *path, char type, long long major,
                      long long minor, unsigned mode, uid_t uid, gid_t gid) {
    char norm[PATH_MAX], dir[PATH_MAX], resolved[PATH_MAX], host[2 * PATH_MAX];
    normpath(path, norm, sizeof norm);
    snprintf(dir, sizeof dir, "%s", norm);
    char *slash = strrchr(dir, '/');
    const char *name = strrchr(norm, '/') + 1;
    slash[slash == dir ? 1 : 0] = '\0';
    if (resolve_in_root(rootfs, dir, 0, resolved, sizeof resolved) < 0)
        die_path(errno, dir);
    snprintf(host, sizeof host, "%s/%s", resolved, name);
    if (!is_within(rootfs, host) || strcmp(host, rootfs) == 0 || !*name)
        die("device path %s escapes the rootfs", path);
    int parent = open_dirs_in(rootfs, resolved, 0777);
    if (parent < 0)
        die_path(errno, resolved);
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && unlinkat(parent, name, 0) < 0)
        die_path(errno, host);
    mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
    mode_t old = umask(0);
    int rc = mknodat(parent, name, kind | (mode & 07777), makedev(major, minor));
    umask(old);
    if (rc < 0) /* os.mknod's error names no file */
        die_os(errno);
    if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        die_path(errno, host);
    close(parent);
}

void init_default_devices(const char *rootfs) {
    static const struct {
        const char *path;
        int major, minor;
    } DEFAULTS[] = {{"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
                    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
    for (size_t i = 0; i < sizeof DEFAULTS / sizeof *DEFAULTS; i++)
        init_make_device(rootfs, DEFAULTS[i].path, 'c', DEFAULTS[i].major, DEFAULTS[i].minor,
                         0666, 0, 0);
    static const char *const LINKS[][2] = {{"/proc/self/fd", "/dev/fd"},
                                           {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"},
                                           {"/proc/self/fd/2", "/dev/stderr"},
                                           {"pts/ptmx", "/dev/ptmx"}};
    char host[PATH_MAX];
    struct stat st;
    for (size_t i = 0; i < sizeof LINKS / sizeof *LINKS; i++) {
        if (resolve_in_root(rootfs, LINKS[i][1], 0, host, sizeof host) < 0)
            die_path(errno, LINKS[i][1]);
        const char *name;
        int parent = parent_of(rootfs, host, &name);
        int exists = fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (exists && i == 4 && unlinkat(parent, name, 0) < 0) /* ptmx: always ours */
            die_path(errno, host);
        if ((!exists || i == 4) && symlinkat(LINKS[i][0], parent, name) < 0)
            die_path(errno, host);
        close(parent);
    }
}
