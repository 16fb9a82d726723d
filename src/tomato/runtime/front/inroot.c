/* inroot.c: paths inside the container's root, resolved without leaving it, for the
 * init in C (init.c, init_rootfs.c): _sys/paths.py's resolve_in_root, is_within and
 * makedirs, so errors and results are Python's.  The init runs alone in its new mount
 * namespace before pivot_root; what could race it (another container sharing a volume)
 * is caught where it matters, at the mount, by init_rootfs.c's pinned fds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "create.h"

/* Python's os.path.normpath of an absolute path, into OUT. */
void normpath(const char *path, char *out, size_t size) {
    char parts[PATH_MAX];
    snprintf(parts, sizeof parts, "%s", path);
    const char *stack[PATH_MAX / 2];
    int n = 0;
    for (char *save = NULL, *c = strtok_r(parts, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            if (n)
                n--;
            continue;
        }
        stack[n++] = c;
    }
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "/%s", stack[i]);
    if (!n)
        snprintf(out, size, "/");
}

int is_within(const char *root, const char *path) {
    size_t n = strlen(root);
    return strcmp(root, "/") == 0 || strcmp(path, root) == 0 ||
           (strncmp(path, root, n) == 0 && path[n] == '/');
}

/* resolve_in_root: the host path PATH names inside ROOT, symlinks resolved as if ROOT
 * were "/"; components that do not exist are appended.  -1 with errno (EXDEV: a ".."
 * above the root under STRICT; ELOOP; what lstat or readlink said). */
int resolve_in_root(const char *root, const char *path, int strict, char *out,
                           size_t size) {
    /* pending components, last first, in one buffer */
    char pending[4 * PATH_MAX];
    size_t plen = 0;
    char current[PATH_MAX] = "";
    int links = 0;
#define PUSH(s, len)                                                             \
    do {                                                                         \
        if (plen + (len) + 1 > sizeof pending) {                                 \
            errno = ENAMETOOLONG;                                                \
            return -1;                                                           \
        }                                                                        \
        pending[plen++] = '/';                                                   \
        memcpy(pending + plen, (s), (len));                                      \
        plen += (len);                                                           \
    } while (0)
    /* push PATH's components in reverse, so the first is popped first */
    for (const char *end = path + strlen(path); end > path;) {
        const char *start = end;
        while (start > path && start[-1] != '/')
            start--;
        if (end > start)
            PUSH(start, (size_t)(end - start));
        end = start > path ? start - 1 : path;
    }
    while (plen) {
        size_t at = plen;
        while (pending[at - 1] != '/')
            at--;
        char part[NAME_MAX + 1];
        size_t len = plen - at;
        if (len > NAME_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(part, pending + at, len);
        part[len] = '\0';
        plen = at - 1;
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            if (!current[0] && strict) {
                errno = EXDEV;
                return -1;
            }
            char *slash = strrchr(current, '/');
            if (slash)
                *slash = '\0';
            else
                current[0] = '\0';
            continue;
        }
        char candidate[PATH_MAX], full[PATH_MAX + 4096];
        if ((size_t)snprintf(candidate, sizeof candidate, "%s%s%s", current,
                             current[0] ? "/" : "", part) >= sizeof candidate) {
            errno = ENAMETOOLONG;
            return -1;
        }
        snprintf(full, sizeof full, "%s/%s", root, candidate);
        struct stat st;
        if (lstat(full, &st) < 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                return -1;
            snprintf(current, sizeof current, "%s", candidate);
            continue;
        }
        if (!S_ISLNK(st.st_mode)) {
            snprintf(current, sizeof current, "%s", candidate);
            continue;
        }
        if (++links > 255) {
            errno = ELOOP;
            return -1;
        }
        char target[PATH_MAX];
        ssize_t n = readlink(full, target, sizeof target - 1);
        if (n < 0)
            return -1;
        target[n] = '\0';
        if (target[0] == '/')
            current[0] = '\0';
        for (const char *end = target + n; end > target;) {
            const char *start = end;
            while (start > target && start[-1] != '/')
                start--;
            if (end > start)
                PUSH(start, (size_t)(end - start));
            end = start > target ? start - 1 : target;
        }
    }
#undef PUSH
    if ((size_t)snprintf(out, size, "%s%s%s", root, current[0] ? "/" : "", current) >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* os.makedirs(path, mode, exist_ok=True): -1 with errno */
int make_dirs(const char *path, mode_t mode) {
    struct stat st;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : (errno = EEXIST, -1);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (make_dirs(parent, 0777) < 0)
            return -1;
    }
    if (mkdir(path, mode) < 0 && !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return -1;
    return 0;
}

int real_within(const char *root, const char *path) {
    char real[PATH_MAX];
    return realpath(path, real) && is_within(root, real);
}

/* An O_PATH fd of directory HOST, a host path at or below ROOT that resolve_in_root gave
 * (so without symlinks, but one a racer swaps in), made where missing as os.makedirs
 * would (intermediates 0777, the last MODE; the umask applies) -- one component at a
 * time, each made with mkdirat in its parent's fd and opened O_NOFOLLOW.  Made by name
 * through the host's root instead, a directory of a volume another container shares,
 * swapped for a symlink to the host between resolution and creation, put the node, file
 * or directory on the host (review 14).  Here a swapped component fails (ENOTDIR).
 * -1 with errno: os.makedirs's (EEXIST for a last component that is not a directory). */
int open_dirs_in(const char *root, const char *host, mode_t mode) {
    if (!is_within(root, host)) {
        errno = EXDEV;
        return -1;
    }
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s", host + strlen(root));
    int cur = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (char *save = NULL, *c = strtok_r(rel, "/", &save); c && cur >= 0;) {
        char *next = strtok_r(NULL, "/", &save);
        int fd = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            if (mkdirat(cur, c, next ? 0777 : mode) < 0 && errno != EEXIST) {
                int err = errno;
                close(cur);
                errno = err;
                return -1;
            }
            fd = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int err = errno;
        if (fd < 0 && err == ENOTDIR && !next) /* a file there: makedirs' "File exists" */
            err = EEXIST;
        close(cur);
        errno = err;
        cur = fd;
        c = next;
    }
    return cur;
}

int make_dirs_in(const char *root, const char *host, mode_t mode) {
    int fd = open_dirs_in(root, host, mode);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}
