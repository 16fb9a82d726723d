/* tomato-client: `tomato` without starting Python, when a fork server is up.
 *
 * bin/tomato runs us as:   tomato-client LAUNCHER ARGS...   (we are its #! interpreter)
 * or we are bin/tomato:     tomato ARGS...   (`pip install`'s layout, setup.py: no
 *                           script's first line can name a venv's path in a wheel),
 *                           and the launcher is bin/tomato-launcher beside us.
 *
 * We find the engine root the way the CLI does (--root, else TOMATO_ROOT, else
 * /var/lib/tomato for root, an ordinary user's $XDG_DATA_HOME/tomato or
 * ~/.local/share/tomato) and connect to ROOT/cli.sock, where tomato.cli.forkserver
 * listens: a Python process with every engine module imported that forks a
 * child per command.  We hand it our argv, environment, umask, working
 * directory and stdio (SCM_RIGHTS), so the child runs the command exactly as
 * `python LAUNCHER ARGS...` here would, on our terminal, in our directory.
 *
 * The child tells us its pid ("pid N\n") and, at the end, its exit code
 * ("exit N\n").  Signals we get (Ctrl-C, SIGTERM, SIGWINCH, ...) are passed to
 * it.  If we die, the child learns it (SIGIO on the connection) and dies too,
 * as the CLI itself would.
 *
 * No server, a server that refuses us (another namespace, code changed on
 * disk), or TOMATO_NO_FORKSERVER set: we exec the Python CLI ourselves
 * (PYTHON -I -S LAUNCHER ARGS...), which is what bin/tomato did before us.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_ROOT "/var/lib/tomato"
#define MAX_MESSAGE (1 << 20)

static volatile sig_atomic_t child_pid = 0;
static volatile sig_atomic_t pending_signal = 0;
static volatile sig_atomic_t last_signal = 0;

static void forward(int sig) {
    last_signal = sig;
    if (child_pid > 0)
        kill(child_pid, sig);
    else
        pending_signal = sig;
}

static void fall_back(int argc, char **argv) {
    /* PYTHON beside LAUNCHER (the venv's bin/), as the sh line of bin/tomato. */
    char python[PATH_MAX];
    const char *launcher = argv[1];
    const char *slash = strrchr(launcher, '/');
    if (slash)
        snprintf(python, sizeof python, "%.*s/python3", (int)(slash - launcher), launcher);
    else
        snprintf(python, sizeof python, "python3");
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args) {
        perror("tomato");
        exit(125);
    }
    int n = 0;
    args[n++] = python;
    args[n++] = "-I";
    args[n++] = "-S";
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    execv(python, args);
    fprintf(stderr, "tomato: cannot run %s: %s\n", python, strerror(errno));
    exit(125);
}

/* The engine root, as tomato.cli.engine decides it: the global flags come
 * before the command word. */
static const char *engine_root(int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--root") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(a, "--root=", 7) == 0)
            return a + 7;
        if (strcmp(a, "--insecure-registry") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (a[0] != '-')
            break; /* the command word: its own flags are not ours */
    }
    const char *env = getenv("TOMATO_ROOT");
    if (env && *env)
        return env;
    if (geteuid() == 0)
        return DEFAULT_ROOT;
    /* An ordinary user's (rootless) engine: engine/config.py's default_root. */
    static char user_root[PATH_MAX];
    const char *data = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int n;
    if (data && *data)
        n = snprintf(user_root, sizeof user_root, "%s/tomato", data);
    else if (home && *home)
        n = snprintf(user_root, sizeof user_root, "%s/.local/share/tomato", home);
    else
        return DEFAULT_ROOT; /* Python asks pwd: no server found, it runs the command */
    return n > 0 && (size_t)n < sizeof user_root ? user_root : DEFAULT_ROOT;
}

static int connect_server(const char *root) {
    /* Through /proc/self/fd/N/ so a long root still fits sun_path. */
    int dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/cli.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        fd = -1;
    }
    close(dir);
    return fd;
}

struct buffer {
    char *data;
    size_t len, cap;
};

static int append(struct buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > MAX_MESSAGE)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len++] = '\0';
    return 0;
}

static int append_number(struct buffer *b, long v) {
    char text[32];
    int n = snprintf(text, sizeof text, "%ld", v);
    return append(b, text, (size_t)n);
}

/* "tomato1" umask argc argv... envc env... , NUL-separated, after an 8-hex-digit
 * length; stdio and the working directory ride along as SCM_RIGHTS. */
static int send_request(int sock, int argc, char **argv) {
    extern char **environ;
    struct buffer b = {0};
    mode_t mask = umask(0);
    umask(mask);
    int envc = 0;
    while (environ[envc])
        envc++;
    int bad = append(&b, "tomato1", 7) || append_number(&b, (long)mask) ||
              append_number(&b, argc - 1);
    for (int i = 1; i < argc && !bad; i++)
        bad = append(&b, argv[i], strlen(argv[i]));
    bad = bad || append_number(&b, envc);
    for (int i = 0; i < envc && !bad; i++)
        bad = append(&b, environ[i], strlen(environ[i]));
    if (bad) {
        free(b.data);
        return -1;
    }
    char head[9];
    snprintf(head, sizeof head, "%08zx", b.len);

    int fds[4];
    for (int i = 0; i < 3; i++) {
        fds[i] = i;
        if (fcntl(i, F_GETFD) < 0) /* a closed stdio slot: give the child /dev/null */
            fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    fds[3] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[3] < 0)
        fds[3] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov[2] = {{head, 8}, {b.data, b.len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = control,
                         .msg_controllen = sizeof control};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cm), fds, sizeof fds);

    size_t total = 8 + b.len, sent = 0;
    int rc = 0;
    while (sent < total) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        sent += (size_t)n;
        msg.msg_control = NULL; /* the fds go with the first bytes only */
        msg.msg_controllen = 0;
        /* move the iovecs past what went out */
        size_t skip = (size_t)n;
        for (int i = 0; i < 2; i++) {
            size_t take = skip < iov[i].iov_len ? skip : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            skip -= take;
        }
    }
    for (int i = 0; i < 3; i++)
        if (fds[i] != i)
            close(fds[i]);
    close(fds[3]);
    free(b.data);
    return rc;
}

/* One "word N\n" line; 0 at EOF, -1 on error. */
static int read_line(int sock, char *line, size_t size) {
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(sock, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 && len == 0 ? 0 : -1;
        if (line[len] == '\n') {
            line[len] = '\0';
            return 1;
        }
        len++;
    }
    return -1;
}

/* Run as bin/tomato itself (not as a script's interpreter): argv as the
 * interpreter form would have it, LAUNCHER = tomato-launcher beside our binary. */
static char **as_interpreter(int *argc, char **argv) {
    static char launcher[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", launcher, sizeof launcher - 1);
    char *slash = n > 0 ? memrchr(launcher, '/', (size_t)n) : NULL;
    if (!slash || (size_t)(slash - launcher) + sizeof "/tomato-launcher" > sizeof launcher) {
        fprintf(stderr, "tomato: cannot find tomato-launcher beside this program\n");
        exit(125);
    }
    strcpy(slash, "/tomato-launcher");
    char **args = calloc((size_t)*argc + 2, sizeof *args);
    if (!args) {
        perror("tomato");
        exit(125);
    }
    args[0] = argv[0];
    args[1] = launcher;
    for (int i = 1; i < *argc; i++)
        args[i + 1] = argv[i];
    *argc += 1;
    return args;
}

int main(int argc, char **argv) {
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    if (strcmp(self, "tomato-client") != 0)
        argv = as_interpreter(&argc, argv);
    if (argc < 2) {
        fprintf(stderr, "usage: tomato-client LAUNCHER [ARGS...]\n");
        return 125;
    }
    if (getenv("TOMATO_NO_FORKSERVER"))
        fall_back(argc, argv);
    int sock = connect_server(engine_root(argc, argv));
    if (sock < 0)
        fall_back(argc, argv);

    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1,
                                    SIGUSR2};
    struct sigaction sa = {.sa_handler = forward};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaction(forwarded[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (send_request(sock, argc, argv) < 0) {
        close(sock);
        fall_back(argc, argv);
    }
    char line[256];
    int rc = read_line(sock, line, sizeof line);
    if (rc <= 0 || strncmp(line, "refuse", 6) == 0) {
        /* Refused before anything ran (another namespace, code changed on disk):
         * the command runs here instead. */
        close(sock);
        fall_back(argc, argv);
    }
    if (strncmp(line, "pid ", 4) != 0) {
        fprintf(stderr, "tomato: the fork server said %s\n", line);
        return 125;
    }
    child_pid = atoi(line + 4);
    if (pending_signal)
        kill(child_pid, pending_signal);
    while ((rc = read_line(sock, line, sizeof line)) > 0) {
        if (strncmp(line, "exit ", 5) == 0)
            return atoi(line + 5);
    }
    /* The child died without a word: killed, as the CLI itself would have been. */
    return 128 + (last_signal ? last_signal : SIGKILL);
}
