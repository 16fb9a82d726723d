/*
 * tomato-shim: the steady state of a container's monitor, in C.
 *
 * The Python monitor (tomato.engine.monitor) creates and starts the container
 * (it is the init's parent), then execs this program in its place: same pid,
 * so still the parent.  From then until the container exits, all a monitor
 * does is copy bytes: the container's stdout/stderr (or pty) into the
 * json-file log and to attached clients, and clients' stdin into the
 * container.  A Python process costs ~3-5 MB of private memory for that; this
 * costs a few hundred kB.  When the container exits, the shim writes nothing
 * to the store itself: it execs the Python monitor again (--after) with the
 * wait status and the still-open client sockets, and Python records the exit,
 * applies the restart policy and --rm.
 *
 * Attach protocol (same as frames.py): 8-byte header {stream, 0, 0, 0, be32
 * length} + payload; streams 0 stdin, 1 stdout, 2 stderr, 3 JSON control
 * ({"resize":[r,c]}, {"signal":N}, {"close_stdin":true}).
 *
 * usage: tomato-shim PID OUT ERR MASTER STDIN LISTEN LOG MAXSIZE MAXFILES CLIENTS
 *                    EXITFILE MEMCG HEALTH -- CMD... [-- PROBE...]
 *   (fd numbers, -1 when absent; CLIENTS is a comma list or "-"; MEMCG the
 *   container's memory cgroup directory or "-"; CMD is exec'd on exit with
 *   "--status N --clients a,b,c" appended)
 *
 * Healthchecks: HEALTH is "-", or INTERVAL:TIMEOUT:START_PERIOD:START_INTERVAL in
 * nanoseconds (defaults applied).  When a check is due the shim forks and execs
 * PROBE (tomato.engine.healthprobe: one check through the runtime's exec, recorded
 * by it), and counts the next interval from its end, as dockerd does: the start
 * interval while the start period lasts and the probe says the container is still
 * starting (its exit code 10), else the interval.  Between checks there is no
 * process but this one.  A probe still there TIMEOUT + 30 s after it began is
 * killed (it kills its own command at TIMEOUT; the 30 s are dockerd's for starting
 * an exec), and one still running when the container exits too.
 *
 * On exit, before anything else, the shim writes EXITFILE ({"exit_code": N,
 * "finished_at": T, "oom_killed": B}) and sends {"exit": N} to attached
 * clients: the engine reads that file while the record still says running,
 * so `tomato run` returns as soon as the container is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_LINE 16384

struct client { int fd; unsigned char buf[65536 + 8]; size_t len; };

static struct client clients[MAX_CLIENTS];
static int nclients;
static int out_fd = -1, err_fd = -1, master_fd = -1, stdin_fd = -1, listen_fd = -1;
static int log_fd = -1;
static const char *log_path;
static long long max_size;
static int max_files = 1;
static pid_t child;
static char partial[2][MAX_LINE];
static size_t partial_len[2];

/* Healthchecks (see the top): the schedule, and the probe while it runs */
#define PROBE_STARTING 10        /* the probe's exit code while the container starts */
#define PROBE_GRACE 30000000000LL /* dockerd's 30 s for an exec to start */
static int health_on;
static long long h_interval, h_timeout, h_start_period, h_start_interval;
static long long began_ns, next_probe_ns, probe_deadline_ns;
static pid_t probe_pid;
static char **probe_argv;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* moby's getInterval: the start interval while starting within the start period */
static void schedule_probe(int starting) {
    long long now = now_ns();
    int in_start_period = now - began_ns < h_start_period;
    next_probe_ns = now + (in_start_period && starting ? h_start_interval : h_interval);
}

static void start_probe(void) {
    pid_t pid = fork();
    if (pid < 0) { schedule_probe(1); return; }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* a blocked mask survives exec, */
        int ignored[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP}; /* ignoring too (the monitor's) */
        for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++) signal(ignored[i], SIG_DFL);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
        /* none of the container's stdio, the log or attached clients */
        for (int fd = 3; fd < 1024; fd++) close(fd);
        execv(probe_argv[0], probe_argv);
        _exit(127);
    }
    probe_pid = pid;
    probe_deadline_ns = now_ns() + h_timeout + PROBE_GRACE;
}

static void reap_probe(void) {
    int st;
    if (probe_pid <= 0 || waitpid(probe_pid, &st, WNOHANG) != probe_pid) return;
    probe_pid = 0;
    schedule_probe(WIFEXITED(st) && WEXITSTATUS(st) == PROBE_STARTING);
}

static void end_probe(void) {
    if (probe_pid <= 0) return;
    kill(probe_pid, SIGKILL);
    while (waitpid(probe_pid, NULL, 0) < 0 && errno == EINTR) {}
    probe_pid = 0;
}

/* poll's timeout: until the next probe, or until a running one is overdue */
static int health_wait_ms(void) {
    if (!health_on) return -1;
    long long until = (probe_pid > 0 ? probe_deadline_ns : next_probe_ns) - now_ns();
    if (until <= 0) return 0;
    return until / 1000000 + 1 > 3600000 ? 3600000 : (int)(until / 1000000 + 1);
}

static void health_tick(void) {
    if (!health_on) return;
    reap_probe();
    long long now = now_ns();
    if (probe_pid > 0 && now >= probe_deadline_ns) {
        end_probe();
        schedule_probe(1);
    } else if (probe_pid <= 0 && now >= next_probe_ns) {
        start_probe();
    }
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}

static void rotate(void) {
    char from[4096], to[4096];
    close(log_fd);
    if (max_files > 1) {
        for (int i = max_files - 1; i >= 1; i--) {
            if (i == 1) snprintf(from, sizeof from, "%s", log_path);
            else snprintf(from, sizeof from, "%s.%d", log_path, i - 1);
            snprintf(to, sizeof to, "%s.%d", log_path, i);
            rename(from, to);
        }
    } else if (truncate(log_path, 0) != 0) {
        /* nothing better to do: keep appending */
    }
    log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Length of a valid UTF-8 sequence starting at s (0 if invalid). */
static size_t utf8_len(const unsigned char *s, size_t left) {
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    else if ((s[0] & 0xE0) == 0xC0) { n = 2; cp = s[0] & 0x1F; }
    else if ((s[0] & 0xF0) == 0xE0) { n = 3; cp = s[0] & 0x0F; }
    else if ((s[0] & 0xF8) == 0xF0) { n = 4; cp = s[0] & 0x07; }
    else return 0;
    if (n > left) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* One json-file entry, as Python's json.dumps writes it (ASCII, \uXXXX escapes). */
static void log_entry(int stream, const unsigned char *data, size_t len) {
    static char out[MAX_LINE * 12 + 256];
    size_t o = 0;
    o += (size_t)snprintf(out + o, 16, "{\"log\": \"");
    for (size_t i = 0; i < len;) {
        unsigned char ch = data[i];
        if (ch == '"' || ch == '\\') { out[o++] = '\\'; out[o++] = (char)ch; i++; }
        else if (ch == '\n') { out[o++] = '\\'; out[o++] = 'n'; i++; }
        else if (ch == '\r') { out[o++] = '\\'; out[o++] = 'r'; i++; }
        else if (ch == '\t') { out[o++] = '\\'; out[o++] = 't'; i++; }
        else if (ch < 0x20 || ch == 0x7f) { o += (size_t)sprintf(out + o, "\\u%04x", ch); i++; }
        else if (ch < 0x80) { out[o++] = (char)ch; i++; }
        else {
            size_t n = utf8_len(data + i, len - i);
            uint32_t cp;
            if (n == 0) { cp = 0xFFFD; n = 1; }
            else {
                cp = data[i] & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
                for (size_t k = 1; k < n; k++) cp = (cp << 6) | (data[i + k] & 0x3F);
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                o += (size_t)sprintf(out + o, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
                                     0xDC00 + (cp & 0x3FF));
            } else {
                o += (size_t)sprintf(out + o, "\\u%04x", cp);
            }
            i += n;
        }
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    o += (size_t)snprintf(out + o, 128,
                          "\", \"stream\": \"%s\", \"time\": \"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}\n",
                          stream == 1 ? "stdout" : "stderr", tm.tm_year + 1900, tm.tm_mon + 1,
                          tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
    write_all(log_fd, out, o);
    if (max_size > 0) {
        struct stat st;
        if (fstat(log_fd, &st) == 0 && st.st_size >= max_size) rotate();
    }
}

static void log_bytes(int stream, const unsigned char *data, size_t len) {
    int k = stream - 1;
    for (size_t i = 0; i < len; i++) {
        partial[k][partial_len[k]++] = (char)data[i];
        if (data[i] == '\n' || partial_len[k] == MAX_LINE) {
            log_entry(stream, (unsigned char *)partial[k], partial_len[k]);
            partial_len[k] = 0;
        }
    }
}

static int oom_killed(const char *memcg) {
    const char *names[2] = {"memory.oom_control", "memory.events"};
    char path[4096], line[256];
    if (!memcg || strcmp(memcg, "-") == 0) return 0;
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", memcg, names[k]);
        FILE *f = fopen(path, "re");
        if (!f) continue;
        long long n = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "oom_kill %lld", &n) == 1 && n > 0) { fclose(f); return 1; }
        fclose(f);
    }
    return 0;
}

static void write_exit_file(const char *path, int code, int oom) {
    char tmp[4096], text[256];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    int n = snprintf(text, sizeof text,
                     "{\"exit_code\": %d, \"finished_at\": %lld.%09ld, \"oom_killed\": %s}\n",
                     code, (long long)ts.tv_sec, ts.tv_nsec, oom ? "true" : "false");
    /* A full disk: no half-written exit.json (the monitor after us records the exit,
       or leaves it in a file's name, which needs no free block) */
    int failed = write_all(fd, text, (size_t)n) < 0;
    if (close(fd) < 0) failed = 1;
    if (failed) {
        unlink(tmp);
        return;
    }
    rename(tmp, path);
}

static void drop_client(int i) {
    close(clients[i].fd);
    clients[i] = clients[--nclients];
}

static void broadcast(int stream, const unsigned char *data, size_t len) {
    unsigned char head[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(len >> 24),
                             (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                             (unsigned char)len};
    for (int i = 0; i < nclients;) {
        if (send(clients[i].fd, head, 8, MSG_NOSIGNAL) != 8 ||
            send(clients[i].fd, data, len, MSG_NOSIGNAL) != (ssize_t)len) {
            drop_client(i);
            continue;
        }
        i++;
    }
}

static int pump(int fd, int stream) {
    unsigned char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return 0;
    log_bytes(stream, buf, (size_t)n);
    broadcast(stream, buf, (size_t)n);
    return 1;
}

/* The few control messages, parsed without a JSON library: they are ours. */
static void control(const char *msg, size_t len) {
    char text[256];
    if (len >= sizeof text) return;
    memcpy(text, msg, len);
    text[len] = 0;
    const char *p;
    if ((p = strstr(text, "\"resize\"")) && master_fd >= 0) {
        int rows, cols;
        p = strchr(p, '[');
        if (p && sscanf(p, "[%d ,%d]", &rows, &cols) == 2) {
            struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
            ioctl(master_fd, TIOCSWINSZ, &ws);
        }
    }
    if ((p = strstr(text, "\"signal\""))) {
        int sig;
        p = strchr(p, ':');
        if (p && sscanf(p + 1, "%d", &sig) == 1) kill(child, sig);
    }
    if (strstr(text, "\"close_stdin\"") && stdin_fd >= 0) {
        close(stdin_fd);
        stdin_fd = -1;
    }
}

static void client_input(int i) {
    struct client *c = &clients[i];
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (n <= 0) { drop_client(i); return; }
    c->len += (size_t)n;
    while (c->len >= 8) {
        size_t size = ((size_t)c->buf[4] << 24) | ((size_t)c->buf[5] << 16) |
                      ((size_t)c->buf[6] << 8) | c->buf[7];
        if (size > sizeof c->buf - 8) { drop_client(i); return; }
        if (c->len < 8 + size) break;
        int target = master_fd >= 0 ? master_fd : stdin_fd;
        if (c->buf[0] == 0 && target >= 0) write_all(target, c->buf + 8, size);
        else if (c->buf[0] == 3) control((char *)c->buf + 8, size);
        memmove(c->buf, c->buf + 8 + size, c->len - 8 - size);
        c->len -= 8 + size;
    }
}

int main(int argc, char **argv) {
    if (argc < 15 || strcmp(argv[14], "--") != 0) {
        fprintf(stderr, "usage: tomato-shim PID OUT ERR MASTER STDIN LISTEN LOG MAXSIZE "
                        "MAXFILES CLIENTS EXITFILE MEMCG HEALTH -- CMD... [-- PROBE...]\n");
        return 2;
    }
    /* CMD runs to the next "--"; PROBE (the health check) after it */
    int cmd_argc = 0;
    while (15 + cmd_argc < argc && strcmp(argv[15 + cmd_argc], "--") != 0) cmd_argc++;
    if (strcmp(argv[13], "-") != 0) {
        if (sscanf(argv[13], "%lld:%lld:%lld:%lld", &h_interval, &h_timeout, &h_start_period,
                   &h_start_interval) != 4 || h_interval <= 0 || h_timeout <= 0 ||
            h_start_interval <= 0 || 15 + cmd_argc + 1 >= argc) {
            fprintf(stderr, "tomato-shim: bad HEALTH %s (or no PROBE)\n", argv[13]);
            return 2;
        }
        health_on = 1;
        probe_argv = argv + 15 + cmd_argc + 1; /* NULL-terminated: argv's own end */
        began_ns = now_ns();
        schedule_probe(1);
    }
    const char *exit_file = argv[11], *memcg = argv[12];
    child = (pid_t)atoi(argv[1]);
    out_fd = atoi(argv[2]); err_fd = atoi(argv[3]); master_fd = atoi(argv[4]);
    stdin_fd = atoi(argv[5]); listen_fd = atoi(argv[6]);
    log_path = argv[7]; max_size = atoll(argv[8]); max_files = atoi(argv[9]);
    if (strcmp(argv[10], "-") != 0) {
        char *save, *tok = strtok_r(argv[10], ",", &save);
        while (tok && nclients < MAX_CLIENTS) {
            clients[nclients++].fd = atoi(tok);
            tok = strtok_r(NULL, ",", &save);
        }
    }
    log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);

    int status = 0, done = 0;
    /* The container may have exited before we got here. */
    if (waitpid(child, &status, WNOHANG) == child) done = 1;
    while (!done) {
        struct pollfd fds[4 + MAX_CLIENTS];
        int n = 0;
        int o = -1, e = -1, m = -1, l = -1;
        fds[n].fd = sfd; fds[n++].events = POLLIN;
        if (out_fd >= 0) { o = n; fds[n].fd = out_fd; fds[n++].events = POLLIN; }
        if (err_fd >= 0) { e = n; fds[n].fd = err_fd; fds[n++].events = POLLIN; }
        if (master_fd >= 0) { m = n; fds[n].fd = master_fd; fds[n++].events = POLLIN; }
        if (listen_fd >= 0 && nclients < MAX_CLIENTS) {
            l = n; fds[n].fd = listen_fd; fds[n++].events = POLLIN;
        }
        int first_client = n;
        for (int i = 0; i < nclients; i++) { fds[n].fd = clients[i].fd; fds[n++].events = POLLIN; }
        if (poll(fds, (nfds_t)n, health_wait_ms()) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (o >= 0 && fds[o].revents && !pump(out_fd, 1)) { close(out_fd); out_fd = -1; }
        if (e >= 0 && fds[e].revents && !pump(err_fd, 2)) { close(err_fd); err_fd = -1; }
        if (m >= 0 && fds[m].revents && !pump(master_fd, 1)) { /* keep the master for resize */
            if (fds[m].revents & (POLLHUP | POLLERR)) { /* slave side closed */ }
        }
        if (l >= 0 && fds[l].revents) {
            int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) { clients[nclients].fd = c; clients[nclients++].len = 0; }
        }
        for (int i = nclients - 1; i >= 0; i--)
            if (first_client + i < n && fds[first_client + i].revents) client_input(i);
        if (fds[0].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {}
            if (waitpid(child, &status, WNOHANG) == child) done = 1;
        }
        if (!done) health_tick();
    }
    end_probe(); /* the monitor after us writes the health: no probe may be left */
    /* Drain what the container wrote before it exited. */
    struct pollfd d[3];
    int fdsv[3] = {out_fd, err_fd, master_fd};
    for (int k = 0; k < 3; k++) {
        if (fdsv[k] < 0) continue;
        d[0].fd = fdsv[k]; d[0].events = POLLIN;
        while (poll(d, 1, 0) > 0 && (d[0].revents & POLLIN) && pump(fdsv[k], k == 1 ? 2 : 1)) {}
    }
    for (int k = 0; k < 2; k++)
        if (partial_len[k]) log_entry(k + 1, (unsigned char *)partial[k], partial_len[k]);

    int code = WIFEXITED(status) ? WEXITSTATUS(status)
             : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
    write_exit_file(exit_file, code, oom_killed(memcg));
    char exit_msg[64];
    int exit_len = snprintf(exit_msg, sizeof exit_msg, "{\"exit\": %d}", code);
    broadcast(3, (unsigned char *)exit_msg, (size_t)exit_len);

    /* Hand over to the Python monitor: it records the exit and decides what next. */
    char status_text[32], client_text[MAX_CLIENTS * 12 + 2] = "-";
    snprintf(status_text, sizeof status_text, "%d", status);
    size_t off = 0;
    for (int i = 0; i < nclients; i++) {
        int fl = fcntl(clients[i].fd, F_GETFD);
        fcntl(clients[i].fd, F_SETFD, fl & ~FD_CLOEXEC);
        off += (size_t)snprintf(client_text + off, sizeof client_text - off, "%s%d",
                                i ? "," : "", clients[i].fd);
    }
    int fl = fcntl(listen_fd, F_GETFD);
    if (listen_fd >= 0) fcntl(listen_fd, F_SETFD, fl & ~FD_CLOEXEC);
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    char **cmd = calloc((size_t)cmd_argc + 5, sizeof *cmd);
    for (int i = 0; i < cmd_argc; i++) cmd[i] = argv[15 + i];
    cmd[cmd_argc] = "--status";
    cmd[cmd_argc + 1] = status_text;
    cmd[cmd_argc + 2] = "--clients";
    cmd[cmd_argc + 3] = client_text;
    execv(cmd[0], cmd);
    perror("tomato-shim: exec the monitor");
    return 1;
}
