/* seccomp_cache.c: a config's linux.seccomp as the BPF program Python compiled before.
 *
 * The front end never compiles a profile (that is libseccomp's, ~10 ms).  Python's
 * create keeps each compiled profile under ROOT/.seccomp/ (runtime/seccomp_cache.py,
 * which says the format): the file is named by the CRC-32 and length of a key, the
 * canonical JSON of [libseccomp's version, the machine, "enosys", the profile], and
 * begins with that whole key, so a hit compares the whole profile.  Here the same key
 * is made (json.dumps(sort_keys=True, separators=(",", ":")) of the parsed config) and
 * the file read; anything else -- no file, another key, warnings the compile gave, a
 * number Python would print otherwise, flags only libseccomp applies -- is a miss, and
 * the whole create is Python's (which then fills the cache for the next one).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "front.h"

/* binascii.crc32 (zlib's CRC-32) */
static uint32_t crc32_of(const unsigned char *data, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static int put_canonical(char **buf, size_t *len, size_t *cap, const struct json *j, int v);

/* An object's members in Python's sorted(dict) order: by code point, which for UTF-8 is
 * strcmp's byte order. */
static int put_object(char **buf, size_t *len, size_t *cap, const struct json *j, int v) {
    int n = json_len(j, v);
    int *keys = calloc((size_t)n + 1, sizeof *keys);
    if (!keys)
        return -1;
    int count = 0;
    for (int k = j->n[v].child; k >= 0; k = j->n[k].next) {
        int at = count++;
        while (at > 0 && strcmp(j->n[keys[at - 1]].s, j->n[k].s) > 0) {
            keys[at] = keys[at - 1];
            at--;
        }
        keys[at] = k;
    }
    int rc = buf_put(buf, len, cap, "{", 1);
    for (int i = 0; rc == 0 && i < count; i++) {
        if ((i && buf_put(buf, len, cap, ",", 1) < 0) ||
            json_put_string(buf, len, cap, j->n[keys[i]].s, 1) < 0 ||
            buf_put(buf, len, cap, ":", 1) < 0 ||
            put_canonical(buf, len, cap, j, j->n[keys[i]].value) < 0)
            rc = -1;
    }
    free(keys);
    return rc < 0 ? -1 : buf_put(buf, len, cap, "}", 1);
}

static int put_canonical(char **buf, size_t *len, size_t *cap, const struct json *j, int v) {
    const struct jnode *n = &j->n[v];
    switch (n->type) {
    case J_NULL:
        return buf_put(buf, len, cap, "null", 4);
    case J_TRUE:
        return buf_put(buf, len, cap, "true", 4);
    case J_FALSE:
        return buf_put(buf, len, cap, "false", 5);
    case J_STR:
        return json_put_string(buf, len, cap, n->s, 1);
    case J_NUM:
        /* an integer literal is printed back by Python as it is written (but "-0");
         * a fraction or an exponent is a float, whose repr is not ours to mimic */
        if (strcspn(n->raw, ".eE") < n->rawlen)
            return -1;
        if (n->rawlen == 2 && n->raw[0] == '-' && n->raw[1] == '0')
            return buf_put(buf, len, cap, "0", 1);
        return buf_put(buf, len, cap, n->raw, n->rawlen);
    case J_ARR:
        if (buf_put(buf, len, cap, "[", 1) < 0)
            return -1;
        for (int e = n->child; e >= 0; e = j->n[e].next)
            if ((e != n->child && buf_put(buf, len, cap, ",", 1) < 0) ||
                put_canonical(buf, len, cap, j, e) < 0)
                return -1;
        return buf_put(buf, len, cap, "]", 1);
    case J_OBJ:
        return json_has_duplicates(j, v) ? -1 : put_object(buf, len, cap, j, v);
    }
    return -1;
}

/* libseccomp's version, as seccomp.version() reads it: "2.5.4" */
static int libseccomp_version(char *out, size_t size) {
    struct version {
        unsigned major, minor, micro;
    };
    void *lib = dlopen("libseccomp.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return -1;
    const struct version *(*get)(void) =
        (const struct version *(*)(void))dlsym(lib, "seccomp_version");
    const struct version *v = get ? get() : NULL;
    int rc = v ? snprintf(out, size, "%u.%u.%u", v->major, v->minor, v->micro) : -1;
    dlclose(lib);
    return rc > 0 && (size_t)rc < size ? 0 : -1;
}

/* seccomp.LOAD_FLAGS: the flags a plain seccomp(2) of the program applies */
static int load_flags(const struct json *j, int profile, unsigned *bits) {
    static const char *const NAMES[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW"};
    *bits = 0;
    int flags = json_get(j, profile, "flags");
    if (flags < 0 || j->n[flags].type == J_NULL)
        return 0;
    if (j->n[flags].type != J_ARR)
        return -1;
    for (int e = j->n[flags].child; e >= 0; e = j->n[e].next) {
        int known = -1;
        for (int k = 0; k < 3; k++)
            if (j->n[e].type == J_STR && strcmp(j->n[e].s, NAMES[k]) == 0)
                known = k;
        if (known < 0)
            return -1;
        *bits |= 1u << known;
    }
    return 0;
}

int seccomp_from_cache(const char *root, const struct json *j, int profile,
                       struct exec_proc *p) {
    char version[64];
    struct utsname un;
    if (j->n[profile].type != J_OBJ || load_flags(j, profile, &p->filter_flags) < 0 ||
        libseccomp_version(version, sizeof version) < 0 || uname(&un) < 0)
        return -1;
    char *key = NULL;
    size_t len = 0, cap = 0;
    if (buf_put(&key, &len, &cap, "[", 1) < 0 || json_put_string(&key, &len, &cap, version, 1) < 0 ||
        buf_put(&key, &len, &cap, ",", 1) < 0 ||
        json_put_string(&key, &len, &cap, un.machine, 1) < 0 ||
        buf_put(&key, &len, &cap, ",\"enosys\",", 10) < 0 ||
        put_canonical(&key, &len, &cap, j, profile) < 0 || buf_put(&key, &len, &cap, "]", 1) < 0) {
        free(key);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/.seccomp/%08x-%zu.bpf", root,
             crc32_of((const unsigned char *)key, len), len);
    size_t size = 0;
    char *data = read_small(path, len + 3 + 8 * 65535, &size);
    /* KEY NUL "[]" NUL PROGRAM: warnings from the compile are Python's to log */
    int hit = data && size > len + 4 && memcmp(data, key, len) == 0 &&
              memcmp(data + len, "\0[]\0", 4) == 0;
    free(key);
    size_t program = hit ? size - len - 4 : 0;
    if (!hit || program == 0 || program % 8 || program / 8 > 65535) {
        free(data);
        return -1;
    }
    memmove(data, data + len + 4, program);
    p->filter = data;
    p->filter_len = (unsigned short)(program / 8);
    return 0;
}

/* seccomp_cache.save_for_exec: the program where the front end's exec finds it
 * (STATE_DIR/seccomp.bpf: "TSECCOMP", u32 load flags, u32 instructions, the program),
 * 0600, whole or not at all.  Best effort, as Python's: no file only costs exec its
 * speed (exec is then Python's). */
void seccomp_save_for_exec(const char *state_dir, const struct exec_proc *p) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", state_dir, SECCOMP_FILE);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    uint32_t head[2] = {p->filter_flags, p->filter_len};
    size_t program = (size_t)p->filter_len * 8;
    int ok = write(fd, SECCOMP_MAGIC, 8) == 8 && write(fd, head, 8) == 8 &&
             (program == 0 || write(fd, p->filter, program) == (ssize_t)program);
    ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
}
