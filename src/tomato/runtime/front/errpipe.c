/* exec's error pipe, read as exec.py reads it: to its end, whatever its length, and
 * decoded as `bytes.decode(errors="replace")` does.
 *
 * What the child (exec_child.c) or tomato-dmz writes there holds the container's bytes
 * (a program's path, the interpreter a #! line names): it can be longer than any
 * fixed buffer (a 4 KB one cut a 5000-byte path's "no such file" in the middle), and
 * need not be UTF-8.  Python prints U+FFFD for each bad sequence, so the same message
 * comes out of both, byte for byte.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "front.h"

/* More than anyone writes (the child's messages are at most 8 KB): read and dropped
 * beyond it, so a runaway writer cannot make us grow without bound. */
#define MAX_FAILURE (1 << 20)

/* How many bytes of the sequence at S (N left) form a valid UTF-8 character (>0), or
 * minus the length of its maximal valid prefix (each such prefix is one U+FFFD to
 * Python's decoder: Unicode's "maximal subpart" practice, as CPython does it). */
static int utf8_step(const unsigned char *s, size_t n) {
    unsigned char b = s[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0)
            lo = 0xA0; /* no overlongs */
        if (b == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return -1; /* a continuation byte, an overlong lead (C0, C1), or F5..FF */
    }
    for (int k = 1; k <= need; k++) {
        unsigned char want_lo = k == 1 ? lo : 0x80, want_hi = k == 1 ? hi : 0xBF;
        if ((size_t)k >= n || s[k] < want_lo || s[k] > want_hi)
            return -k;
    }
    return need + 1;
}

char *read_failure(int fd, size_t *len) {
    char *raw = NULL, chunk[4096];
    size_t got = 0, cap = 0;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t keep = got + (size_t)r <= MAX_FAILURE ? (size_t)r : MAX_FAILURE - got;
        if (keep && buf_put(&raw, &got, &cap, chunk, keep) < 0)
            break;
    }
    char *text = NULL;
    size_t out = 0, out_cap = 0;
    const unsigned char *s = (const unsigned char *)raw;
    for (size_t i = 0; i < got;) {
        int step = utf8_step(s + i, got - i);
        if (step > 0) {
            buf_put(&text, &out, &out_cap, raw + i, (size_t)step);
            i += (size_t)step;
        } else {
            buf_put(&text, &out, &out_cap, "\xEF\xBF\xBD", 3); /* U+FFFD */
            i += (size_t)-step;
        }
    }
    free(raw);
    *len = out;
    return text; /* NULL when nothing was written: exec succeeded */
}
