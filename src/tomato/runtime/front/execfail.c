/* The words of a failed execve, as process.exec_failure gives them: runc's "exec
 * /entry.sh: no such file or directory", and why when the file itself is there: the
 * interpreter its #! line or its ELF header names is missing or cannot be run.
 *
 * Shared by the front end's exec child and tomato-dmz (runtime/dmz/), which makes the
 * container's last execve and must report its failure in the same words.  Runs inside
 * the container's root, after every security step: plain libc, no allocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "execfail.h"

static const char *lower(const char *s, char *buf, size_t size) {
    snprintf(buf, size, "%s", s);
    for (char *c = buf; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return buf;
}

static unsigned long long num_at(const unsigned char *buf, ssize_t at, int size, int little) {
    unsigned long long v = 0;
    for (int k = 0; k < size; k++)
        v |= (unsigned long long)buf[at + (little ? k : size - 1 - k)] << (8 * k);
    return v;
}

/* process._interpreter: the #! interpreter or the ELF PT_INTERP; 0 when none. */
static int interpreter(const char *path, char *out, size_t size) {
    unsigned char head[4096], table[64 * 64];
    /* non-blocking, and only a regular file is read: an executable FIFO would hang us */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), found = 0;
    struct stat st;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    ssize_t n = pread(fd, head, sizeof head, 0);
    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        ssize_t i = 2, end = 2;
        while (end < n && head[end] != '\n')
            end++;
        while (i < end && (head[i] == ' ' || head[i] == '\t'))
            i++;
        ssize_t j = i;
        while (j < end && head[j] != ' ' && head[j] != '\t')
            j++;
        if (j > i && (size_t)(j - i) < size) {
            memcpy(out, head + i, (size_t)(j - i));
            out[j - i] = '\0';
            found = out[0] != '\0';
        }
    } else if (n >= 64 && memcmp(head, "\x7f" "ELF", 4) == 0 && (head[4] == 1 || head[4] == 2)) {
        int wide = head[4] == 2, little = head[5] == 1;
#define NUM(buf, at, sz) num_at(buf, at, sz, little)
        unsigned long long phoff = wide ? NUM(head, 0x20, 8) : NUM(head, 0x1C, 4);
        unsigned long long phsize = NUM(head, wide ? 0x36 : 0x2A, 2);
        unsigned long long phnum = NUM(head, wide ? 0x38 : 0x2C, 2);
        if (phsize >= (wide ? 40u : 32u) && phsize <= 64 && phoff < (1ULL << 62)) {
            ssize_t got = pread(fd, table, phsize * (phnum < 64 ? phnum : 64), (off_t)phoff);
            for (ssize_t i = 0; got > 0 && i + (ssize_t)phsize <= got; i += (ssize_t)phsize) {
                if (NUM(table, i, 4) != 3) /* PT_INTERP */
                    continue;
                unsigned long long offset = wide ? NUM(table, i + 8, 8) : NUM(table, i + 4, 4);
                unsigned long long sz = wide ? NUM(table, i + 32, 8) : NUM(table, i + 16, 4);
                if (sz > size - 1)
                    sz = size - 1;
                ssize_t r = offset < (1ULL << 62) ? pread(fd, out, sz, (off_t)offset) : -1;
                if (r >= 0) {
                    out[r] = '\0';
                    found = out[0] != '\0';
                }
                break;
            }
        }
#undef NUM
    }
    close(fd);
    return found;
}

/* '"' + repr(s)[1:-1].replace('"', '\\"') + '"' for ASCII S */
static void quoted(const char *s, char *out, size_t size) {
    char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    size_t o = 0;
    out[o++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c && o + 8 < size; c++) {
        if (*c == '\\')
            o += (size_t)snprintf(out + o, size - o, "\\\\");
        else if (*c == '"')
            o += (size_t)snprintf(out + o, size - o, "\\\"");
        else if (*c == '\'' && quote == '\'')
            o += (size_t)snprintf(out + o, size - o, "\\'");
        else if (*c == '\n')
            o += (size_t)snprintf(out + o, size - o, "\\n");
        else if (*c == '\r')
            o += (size_t)snprintf(out + o, size - o, "\\r");
        else if (*c == '\t')
            o += (size_t)snprintf(out + o, size - o, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", *c);
        else
            out[o++] = (char)*c;
    }
    out[o++] = '"';
    out[o] = '\0';
}

void exec_failure_words(const char *executable, int err, char *out, size_t size) {
    char reason[256], why[256], interp[4096], q[4096 * 4 + 8];
    lower(strerror(err), reason, sizeof reason);
    if ((err == ENOENT || err == EACCES || err == ELOOP) &&
        interpreter(executable, interp, sizeof interp)) {
        struct stat st;
        const char *because = reason;
        if (stat(interp, &st) < 0)
            because = lower(strerror(errno), why, sizeof why);
        quoted(interp, q, sizeof q);
        snprintf(out, size, "exec %s: interpreter %s: %s", executable, q, because);
        return;
    }
    snprintf(out, size, "exec %s: %s", executable, reason);
}
