/* exec's child, from fork to execve: exec.py's _child and process.py's last steps, in
 * their order (the security order of CVE-2019-5736 and issue 13):
 *
 *   not dumpable -> wait until the parent moved us into the cgroups -> setsid
 *   -> setns (ipc, uts, net, cgroup, mnt) -> fchdir(root) + chroot(".") + chdir("/")
 *   -> pty (opened inside, master sent over --console-socket, slave our stdio)
 *   -> rlimits -> HOME, PATH lookup -> umask -> bounding set -> keepcaps
 *   -> setgroups/setgid/setuid -> capabilities -> cwd -> no_new_privs
 *   -> every fd past the preserved ones close-on-exec -> default signals
 *   -> seccomp (the very last step; CAP_SYS_ADMIN, held only for it, dropped after)
 *   -> execve
 *
 * Everything was parsed and allocated by the parent before the fork; what fails is
 * written to the error pipe in Python's words (what its exception's str() would be)
 * and the child exits 126; the parent reports it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "front.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int err_fd = -1;
static int for_init; /* child_reports_to: 0 exec's child, else the container's init (init.c) */
static char message[8192];

void child_reports_to(int fd, int init) {
    err_fd = fd;
    for_init = init;
}

/* exec's child: the words alone on the error pipe, exit 126 (exec.c reads them).  The
 * init: one 'E' packet on the sync socket, exit 1 (create.h). */
void child_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap); /* whole: the parent reads the pipe to its end */
    va_end(ap);
    if (n < 0) {
        text = message + 1;
        n = snprintf(text, sizeof message - 1, "out of memory");
    }
    if (for_init == INIT_STARTED) { /* after "ready": on stderr, as Python's init then */
        dprintf(2, "tomato-runtime: %s\n", text);
    } else if (for_init) { /* one packet: 'E' and the words */
        char kind = 'E';
        struct iovec iov[2] = {{&kind, 1}, {text, (size_t)n}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        sendmsg(err_fd, &msg, MSG_NOSIGNAL); /* the parent gone: nobody to tell */
    } else {
        for (ssize_t done = 0, w; done < n; done += w)
            if ((w = write(err_fd, text + done, (size_t)(n - done))) <= 0)
                break;
    }
    _exit(for_init ? 1 : 126);
}

/* A warning for the runtime's log: the init's 'W' packet; exec's child, on stderr as
 * the runtime's log would word it. */
void child_warn(const char *fmt, ...) {
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text + 1, sizeof text - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof text - 2)
        n = (int)sizeof text - 2;
    text[0] = 'W';
    if (for_init == INIT_STARTED)
        dprintf(2, "tomato-runtime: warning: %s\n", text + 1);
    else if (for_init)
        send(err_fd, text, (size_t)n + 1, MSG_NOSIGNAL);
    else
        dprintf(2, "tomato-runtime: warning: %s\n", text + 1);
}

#define die child_die

const char *lower(const char *s, char *buf, size_t size) {
    snprintf(buf, size, "%s", s);
    for (char *c = buf; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return buf;
}

/* What the OSError Python would raise says, without and with a file name: its str()
 * in exec's child (exec.py prints it), init.describe's words in the init. */
void child_die_os(int err) {
    char low[256];
    if (for_init)
        die("%s", lower(strerror(err), low, sizeof low));
    die("[Errno %d] %s", err, strerror(err));
}

void child_die_path(int err, const char *path) {
    char low[256];
    if (for_init)
        die("%s: %s", path, lower(strerror(err), low, sizeof low));
    die("[Errno %d] %s: '%s'", err, strerror(err), path);
}

#define die_os child_die_os
#define die_path child_die_path

/* ---- capabilities (_sys/caps.py) ---- */

static int capget_self(uint64_t *eff, uint64_t *perm) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        return -1;
    *eff = data[0].effective | (uint64_t)data[1].effective << 32;
    *perm = data[0].permitted | (uint64_t)data[1].permitted << 32;
    return 0;
}

static int capset_self(uint64_t eff, uint64_t perm, uint64_t inh) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)eff, (uint32_t)perm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32)},
    };
    return (int)syscall(SYS_capset, &head, data);
}

/* ", "-joined names of MASK's capabilities, by number */
static const char *names(uint64_t mask, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < 64; c++) {
        if (!(mask >> c & 1))
            continue;
        char tmp[16];
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
                         cap_name(c, tmp, sizeof tmp));
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

static void drop_bounding(uint64_t keep, int last_cap) {
    uint64_t eff, perm;
    char list[1024], tmp[16];
    if (capget_self(&eff, &perm) < 0)
        die("[Errno %d] capget: %s", errno, strerror(errno));
    if (!(eff >> CAP_SETPCAP & 1)) {
        uint64_t extra = 0;
        for (int c = 0; c <= last_cap; c++)
            if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 && !(keep >> c & 1))
                extra |= 1ULL << c;
        if (extra)
            die("cannot drop %s from the bounding set without CAP_SETPCAP; drop it before "
                "setuid", names(extra, list, sizeof list));
        return;
    }
    for (int c = 0; c <= last_cap; c++) {
        if (keep >> c & 1)
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            die("cannot drop %s from the bounding set: %s", cap_name(c, tmp, sizeof tmp),
                strerror(errno));
    }
}

/* caps.apply: bounding, capset, ambient (an ambient one not permitted and inheritable
 * is left out, as runc: apply_security ignores the warning). */
static void apply_caps(const struct exec_caps *c, int last_cap) {
    char list[1024], tmp[16];
    drop_bounding(c->bounding, last_cap);
    if (capset_self(c->effective, c->permitted, c->inheritable) < 0) {
        int err = errno;
        uint64_t eff = 0, have = 0;
        capget_self(&eff, &have);
        uint64_t missing = (c->permitted | c->effective) & ~have;
        if (missing)
            die("cannot set capabilities (not held: %s): %s", names(missing, list, sizeof list),
                strerror(err));
        die("cannot set capabilities: %s", strerror(err));
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
        if (errno != EINVAL)
            die("cannot clear the ambient capabilities: [Errno %d] prctl(%d): %s", errno,
                PR_CAP_AMBIENT, strerror(errno));
        return;
    }
    for (int cap = 0; cap < 64; cap++) {
        if (!(c->ambient >> cap & 1) || !(c->permitted >> cap & 1) ||
            !(c->inheritable >> cap & 1))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            die("cannot raise ambient capability %s: %s", cap_name(cap, tmp, sizeof tmp),
                strerror(errno));
    }
}

static void keep_caps(int on) {
    if (prctl(PR_SET_KEEPCAPS, on, 0, 0, 0) < 0)
        die("[Errno %d] prctl(%d): %s", errno, PR_SET_KEEPCAPS, strerror(errno));
}

/* ---- the user, the cwd, the filter (process.py) ---- */

static int setgroups_allowed(void) {
    char buf[16] = "";
    int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return 1;
    buf[n] = '\0';
    return strcmp(buf, "deny\n") != 0 && strcmp(buf, "deny") != 0;
}

static void switch_user(const struct exec_proc *p) {
    if (setgroups_allowed() && setgroups((size_t)p->ngids, p->gids) < 0)
        die_os(errno);
    if (setresgid(p->gid, p->gid, p->gid) < 0 || setresuid(p->uid, p->uid, p->uid) < 0)
        die("cannot become uid %u gid %u: %s (is it mapped in the user namespace?)",
            (unsigned)p->uid, (unsigned)p->gid, strerror(errno));
}

static void enter_cwd(const char *cwd) {
    char here[4096];
    if (chdir(cwd) < 0)
        die("cannot change to working directory %s: %s", cwd, strerror(errno));
    if (!getcwd(here, sizeof here) || here[0] != '/') /* "(unreachable)/...": outside */
        die("working directory %s is outside the container root", cwd);
}

static void load_filter(const struct exec_proc *p) {
    struct sock_fprog prog = {.len = p->filter_len, .filter = p->filter};
    long rc = p->filter_flags
                  ? syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->filter_flags, &prog)
                  : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    if (rc == 0)
        return;
    if (errno == EACCES || errno == EPERM)
        die("cannot load the seccomp filter: it needs no_new_privs or CAP_SYS_ADMIN");
    die("[Errno %d] seccomp(SET_MODE_FILTER): %s", errno, strerror(errno));
}

/* ---- the pty (console.py) ---- */

static void open_console(const struct exec_proc *p, int console_fd) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        die_path(errno, "/dev/ptmx");
    int unlock = 0;
    unsigned number = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &number) < 0)
        die_os(errno);
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        die_os(errno);
    if (p->has_size) {
        struct winsize ws = {.ws_row = (unsigned short)p->rows, .ws_col = (unsigned short)p->cols};
        if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
            die_os(errno);
    }
    if (fchown(slave, p->uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM &&
        errno != EROFS)
        die_os(errno);
    char name[64];
    int n = snprintf(name, sizeof name, "/dev/pts/%u", number);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = name, .iov_len = (size_t)n};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof(int));
    if (sendmsg(console_fd, &msg, MSG_NOSIGNAL) < 0) /* a closed socket: an error, as Python */
        die_os(errno);
    close(master);
    for (int target = 0; target < 3; target++)
        if (dup2(slave, target) < 0)
            die_os(errno);
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        die_os(errno);
    if (slave > 2)
        close(slave);
}

/* ---- rlimits, HOME, the executable (process.py) ---- */

static void apply_rlimits(const struct exec_proc *p) {
    for (int i = 0; i < p->nrlimits; i++) {
        const struct exec_rlimit *r = &p->rlimits[i];
        struct rlimit want = {(rlim_t)r->soft, (rlim_t)r->hard}, have;
        if (setrlimit((__rlimit_resource_t)r->resource, &want) == 0)
            continue;
        if (getrlimit((__rlimit_resource_t)r->resource, &have) < 0)
            die_os(errno);
        rlim_t hard = have.rlim_max != RLIM_INFINITY && have.rlim_max < want.rlim_max
                          ? have.rlim_max : want.rlim_max;
        rlim_t soft = want.rlim_cur < hard ? want.rlim_cur : hard;
        struct rlimit clamped = {soft, hard};
        if (setrlimit((__rlimit_resource_t)r->resource, &clamped) < 0)
            die_os(errno);
        child_warn("rlimit %s %llu:%llu clamped to %llu:%llu (cannot raise the hard limit)",
                   r->name, r->soft, r->hard, (unsigned long long)soft, (unsigned long long)hard);
    }
}

/* process.home_of: the uid's directory in the container's /etc/passwd (a regular file),
 * else "/"; the whole file, as bytes, lines split on "\n" alone, a NUL ending the scan. */
static char *home_of(uid_t uid) {
    char *text = NULL;
    size_t n = 0, cap = 0;
    /* a FIFO there would block us before "ready" (review 14): a regular file only */
    int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    while (fd >= 0) { /* to its end, as Python's read() */
        if (n + 1 >= cap) {
            char *more = realloc(text, cap = cap ? 2 * cap : 1 << 16);
            if (!more)
                die_os(ENOMEM);
            text = more;
        }
        ssize_t r = read(fd, text + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    char want[16];
    snprintf(want, sizeof want, "%u", (unsigned)uid);
    if (text)
        text[n] = '\0';
    for (char *line = text; line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *field[7] = {0};
        int count = 0;
        for (char *s = line; count < 7; count++) {
            field[count] = s;
            char *colon = strchr(s, ':');
            if (!colon) {
                count++;
                break;
            }
            *colon = '\0';
            s = colon + 1;
        }
        if (count >= 6 && strcmp(field[2], want) == 0)
            return field[5][0] ? field[5] : "/";
        line = next;
    }
    return "/";
}

static const char *find_executable(const struct exec_proc *p, const char *name, char *buf,
                                   size_t size) {
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) < 0)
            die("exec: \"%s\": no such file or directory", name);
        if (S_ISDIR(st.st_mode) || access(name, X_OK) < 0)
            die("exec: \"%s\": permission denied", name);
        return name;
    }
    const char *dirs = p->has_path ? p->path_value
                                   : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const char *d = dirs;; d++) {
        const char *end = strchrnul(d, ':');
        int len = (int)(end - d);
        const char *dir = len ? d : ".";
        if (!len)
            len = 1;
        snprintf(buf, size, "%.*s%s%s", len, dir, dir[len - 1] == '/' ? "" : "/", name);
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
            return buf;
        if (!*end)
            break;
        d = end;
    }
    die("exec: \"%s\": executable file not found in $PATH", name);
}

/* ---- the process's last steps, exec's child's and the init's (process.py) ---- */

/* From the pty to every fd close-on-exec: what may fail before the init says "ready". */
void process_prepare(struct exec_proc *p, int console_fd, struct prepared *out) {
    if (p->terminal)
        open_console(p, console_fd);
    if (console_fd >= 0)
        close(console_fd);
    apply_rlimits(p);
    static char path_buf[8192];
    if (!p->has_home) {
        char *home = NULL;
        if (asprintf(&home, "HOME=%s", home_of(p->uid)) < 0)
            die_os(ENOMEM);
        int n = 0;
        while (p->env[n])
            n++;
        p->env[n] = home;
    }
    out->executable = find_executable(p, p->args[0], path_buf, sizeof path_buf);

    /* process.apply_security */
    if (p->umask >= 0)
        umask((mode_t)p->umask);
    int seccomp = p->filter != NULL, held = 0;
    if (seccomp && !p->no_new_privs && !p->has_caps && p->uid != 0) {
        load_filter(p); /* no capability sets to keep CAP_SYS_ADMIN through setuid */
        seccomp = 0;
    }
    if (p->has_caps) {
        struct exec_caps target = p->caps;
        if (seccomp && !p->no_new_privs && !(p->caps.effective >> CAP_SYS_ADMIN & 1)) {
            held = 1;
            target.effective |= 1ULL << CAP_SYS_ADMIN;
            target.permitted |= 1ULL << CAP_SYS_ADMIN;
        }
        drop_bounding(p->caps.bounding, p->last_cap);
        keep_caps(1);
        switch_user(p);
        keep_caps(0);
        apply_caps(&target, p->last_cap);
    } else {
        switch_user(p);
    }
    enter_cwd(p->cwd);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("[Errno %d] %s", errno, strerror(errno));
    /* process.close_fds_on_exec: nothing of ours past the preserved fds */
    if (syscall(SYS_close_range, 3U + (unsigned)p->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = 3 + p->preserve_fds; fd < 65536; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    out->seccomp = seccomp;
    out->held = held;
}

/* Default signals, the seccomp filter (the very last step), then the execve through
 * tomato-dmz (MODE "exec" or "init"), which reports its own execve's failure. */
void process_exec(struct exec_proc *p, const struct prepared *ready, const char *mode,
                  int report_fd) {
    /* process.restore_signals: ignored dispositions and the mask survive execve */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (ready->seccomp) { /* the last step before execve */
        load_filter(p);
        if (ready->held &&
            capset_self(p->caps.effective, p->caps.permitted, p->caps.inheritable) < 0)
            die("[Errno %d] capset: %s", errno, strerror(errno));
    }
    dmz_execve(p->dmz, mode, report_fd, ready->executable, p->args, p->env);
    char reason[256];
    die("exec %s: cannot run tomato-dmz: %s", ready->executable,
        lower(strerror(errno), reason, sizeof reason));
}

/* ---- the whole child ---- */

void exec_child(struct exec_proc *p, const int *ns_fds, const int *ns_types,
                const char *const *ns_names, int nns,
                int root_fd, int go_fd, int console_fd, int err) {
    child_reports_to(err, 0);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) /* before anything of the container's */
        die_os(errno);
    char go;
    ssize_t got;
    while ((got = read(go_fd, &go, 1)) < 0 && errno == EINTR)
        ; /* until we are in the container's cgroups */
    if (got != 1) /* the runtime died before it moved us: never run outside them */
        _exit(126);
    close(go_fd);
    if (setsid() < 0)
        die_os(errno);
    for (int i = 0; i < nns; i++) {
        if (setns(ns_fds[i], ns_types[i]) < 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%lld/ns/%s", p->container_pid, ns_names[i]);
            die_path(errno, path);
        }
        close(ns_fds[i]);
    }
    if (fchdir(root_fd) < 0)
        die_os(errno);
    if (chroot(".") < 0)
        die_path(errno, ".");
    close(root_fd);
    if (chdir("/") < 0)
        die_path(errno, "/");
    struct prepared ready;
    process_prepare(p, console_fd, &ready);
    process_exec(p, &ready, "exec", err_fd);
}
