/* create_record.c: the record of a container being created (statedir.Record), written as
 * statedir.StateDir.save writes it: json.dumps' text (Python's separators, ensure_ascii),
 * to state.json.tmp (0600), renamed over state.json. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "create_runtime.h"

/* ---- the config, as Python's json.dumps writes it again ---- */

/* Python's dict keeps a key's first place and its last value, and prints floats its own
 * way: documents with either are Python's. */
int config_plain(const struct json *j, int v) {
    const struct jnode *n = &j->n[v];
    if (n->type == J_NUM) /* an integer (of any size: its digits, as Python's), not a float */
        return n->is_int || (n->rawlen > 0 && strspn(n->raw, "-0123456789") >= n->rawlen);
    if (n->type == J_OBJ && json_has_duplicates(j, v))
        return 0;
    if (n->type == J_OBJ || n->type == J_ARR)
        for (int k = n->child; k >= 0; k = j->n[k].next)
            if (!config_plain(j, n->type == J_OBJ ? j->n[k].value : k))
                return 0;
    return 1;
}

static void dump(const struct json *j, int v, char **b, size_t *len, size_t *cap) {
    const struct jnode *n = &j->n[v];
    switch (n->type) {
    case J_NULL: buf_printf(b, len, cap, "null"); break;
    case J_TRUE: buf_printf(b, len, cap, "true"); break;
    case J_FALSE: buf_printf(b, len, cap, "false"); break;
    case J_NUM:
        if (n->is_int)
            buf_printf(b, len, cap, "%lld", n->i);
        else
            buf_put(b, len, cap, n->raw, n->rawlen);
        break;
    case J_STR: json_put_string(b, len, cap, n->s, 1); break;
    case J_ARR:
    case J_OBJ:
        buf_printf(b, len, cap, n->type == J_ARR ? "[" : "{");
        for (int k = n->child; k >= 0; k = j->n[k].next) {
            if (k != n->child)
                buf_printf(b, len, cap, ", ");
            if (n->type == J_OBJ) {
                json_put_string(b, len, cap, j->n[k].s, 1);
                buf_printf(b, len, cap, ": ");
                dump(j, j->n[k].value, b, len, cap);
            } else {
                dump(j, k, b, len, cap);
            }
        }
        buf_printf(b, len, cap, n->type == J_ARR ? "]" : "}");
        break;
    }
}

char *json_dumps_py(const struct json *j, int v) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    dump(j, v, &b, &len, &cap);
    return b;
}

/* ---- the record (statedir.Record) ---- */


int record_save(const struct create_state *s) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    buf_printf(&b, &len, &cap, "{\"id\": ");
    json_put_string(&b, &len, &cap, s->id, 1);
    buf_printf(&b, &len, &cap, ", \"bundle\": ");
    json_put_string(&b, &len, &cap, s->bundle, 1);
    buf_printf(&b, &len, &cap, ", \"rootfs\": ");
    json_put_string(&b, &len, &cap, s->rootfs, 1);
    buf_printf(&b, &len, &cap, ", \"created\": \"%s\", \"pid\": %lld, \"pid_start\": %lld, "
               "\"creator_pid\": %lld, \"creator_start\": %lld, \"status\": \"%s\", "
               "\"annotations\": %s, \"cgroup\": %s, \"config\": %s, \"owner\": \"\", "
               "\"no_pivot\": %s, \"host_mounts\": null}",
               s->created, s->pid, s->pid_start, s->creator_pid, s->creator_start, s->status,
               s->annotations, s->cgroup, s->config, s->no_pivot ? "true" : "false");
    char *tmp = NULL, *path = NULL;
    if (!b || asprintf(&tmp, "%s/state.json.tmp", s->dir) < 0 ||
        asprintf(&path, "%s/state.json", s->dir) < 0)
        return fail_os(ENOMEM, NULL);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail_os(errno, tmp);
    ssize_t w = write(fd, b, len);
    int err = w == (ssize_t)len ? 0 : (w < 0 ? errno : EIO);
    close(fd);
    if (err)
        return fail_os(err, NULL);
    if (rename(tmp, path) < 0)
        return fail_os(errno, tmp);
    free(b);
    free(tmp);
    free(path);
    return 0;
}

/* create.now_rfc3339: Go's RFC3339Nano (no trailing zeros) */
void now_rfc3339(char *out, size_t size) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32], frac[16];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(frac, sizeof frac, "%09ld", ts.tv_nsec);
    for (int i = 8; i >= 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(out, size, "%s%s%s%s", stamp, frac[0] ? "." : "", frac, "Z");
}

/* os.path.abspath: lexical, ".." included */
