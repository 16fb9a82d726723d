/* A strict JSON parser (RFC 8259) and Python's json string escaping.
 *
 * It takes a subset of what Python's json.loads takes: no NaN/Infinity, no
 * lone surrogates, no U+0000 inside strings, nesting at most MAX_DEPTH, valid
 * UTF-8 only.  Whatever it refuses, the front end hands to Python, so the two
 * paths never disagree about a document: either both read the same values or
 * Python alone answers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front.h"

#define MAX_DEPTH 200

struct parser {
    const char *p, *end;
    struct json *j;
    int depth;
};

static int new_node(struct json *j, enum jtype type, const char *raw) {
    if (j->count == j->cap) {
        int cap = j->cap ? j->cap * 2 : 256;
        struct jnode *n = realloc(j->n, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        j->n = n;
        j->cap = cap;
    }
    struct jnode *n = &j->n[j->count];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->next = n->child = n->value = -1;
    n->raw = raw;
    return j->count++;
}

static void skip_ws(struct parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
                               *ps->p == '\r'))
        ps->p++;
}

/* Length of the UTF-8 sequence at s (strict: no overlongs, surrogates or > U+10FFFF). */
static int utf8_len(const unsigned char *s, const unsigned char *end, unsigned *cp) {
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2; min = 0x80; c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3; min = 0x800; c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4; min = 0x10000; c &= 0x07;
    } else {
        return -1;
    }
    if (end - s < n)
        return -1;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return -1;
    *cp = c;
    return n;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static int parse_string(struct parser *ps) {
    int idx = new_node(ps->j, J_STR, ps->p);
    if (idx < 0)
        return -1;
    const char *start = ps->p;
    ps->p++; /* the quote */
    char *out = ps->j->arena + ps->j->used, *o = out;
    while (1) {
        if (ps->p >= ps->end)
            return -1;
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20)
            return -1; /* Python's strict mode refuses raw control characters */
        if (c == '\\') {
            if (ps->end - ps->p < 2)
                return -1;
            char e = ps->p[1];
            ps->p += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0)
                    return -1;
                ps->p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return -1; /* a lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                        hex4(ps->p + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                        return -1; /* a lone high surrogate */
                    ps->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0)
                    return -1; /* C strings cannot hold it: Python answers */
                o = put_utf8(o, cp);
                break;
            }
            default:
                return -1;
            }
            continue;
        }
        unsigned cp;
        int n = utf8_len((const unsigned char *)ps->p, (const unsigned char *)ps->end, &cp);
        if (n < 0)
            return -1;
        memcpy(o, ps->p, (size_t)n);
        o += n;
        ps->p += n;
    }
    *o++ = '\0';
    ps->j->used += (size_t)(o - out);
    ps->j->n[idx].s = out;
    ps->j->n[idx].rawlen = (size_t)(ps->p - start);
    return idx;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(struct parser *ps) {
    const char *start = ps->p;
    int idx = new_node(ps->j, J_NUM, start);
    if (idx < 0)
        return -1;
    int integer = 1;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p))
        return -1;
    if (*ps->p == '0')
        ps->p++;
    else
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        integer = 0;
        ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return -1;
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integer = 0;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return -1;
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    struct jnode *n = &ps->j->n[idx];
    n->rawlen = (size_t)(ps->p - start);
    if (integer && n->rawlen < 20) {
        char tmp[24];
        memcpy(tmp, start, n->rawlen);
        tmp[n->rawlen] = '\0';
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == 0) {
            n->is_int = 1;
            n->i = v;
        }
    }
    return idx;
}

static int parse_value(struct parser *ps);

static int parse_container(struct parser *ps, int object) {
    int idx = new_node(ps->j, object ? J_OBJ : J_ARR, ps->p);
    if (idx < 0 || ++ps->depth > MAX_DEPTH)
        return -1;
    const char *start = ps->p;
    ps->p++;
    skip_ws(ps);
    int last = -1;
    char close = object ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        while (1) {
            int item;
            skip_ws(ps);
            if (object) {
                if (ps->p >= ps->end || *ps->p != '"')
                    return -1;
                item = parse_string(ps);
                if (item < 0)
                    return -1;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':')
                    return -1;
                ps->p++;
                int value = parse_value(ps);
                if (value < 0)
                    return -1;
                ps->j->n[item].value = value;
            } else {
                item = parse_value(ps);
                if (item < 0)
                    return -1;
            }
            if (last < 0)
                ps->j->n[idx].child = item;
            else
                ps->j->n[last].next = item;
            last = item;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            return -1;
        }
    }
    ps->depth--;
    ps->j->n[idx].rawlen = (size_t)(ps->p - start);
    return idx;
}

static int literal(struct parser *ps, const char *word, enum jtype type) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return -1;
    int idx = new_node(ps->j, type, ps->p);
    if (idx < 0)
        return -1;
    ps->j->n[idx].rawlen = n;
    ps->p += n;
    return idx;
}

static int parse_value(struct parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end)
        return -1;
    switch (*ps->p) {
    case '{': return parse_container(ps, 1);
    case '[': return parse_container(ps, 0);
    case '"': return parse_string(ps);
    case 't': return literal(ps, "true", J_TRUE);
    case 'f': return literal(ps, "false", J_FALSE);
    case 'n': return literal(ps, "null", J_NULL);
    default: return parse_number(ps);
    }
}

int json_parse(const char *text, size_t len, struct json *out) {
    memset(out, 0, sizeof *out);
    out->arena = malloc(len + 1);
    if (!out->arena)
        return -1;
    struct parser ps = {.p = text, .end = text + len, .j = out};
    if (parse_value(&ps) != 0)
        return -1;
    skip_ws(&ps);
    return ps.p == ps.end ? 0 : -1;
}

int json_get(const struct json *j, int obj, const char *key) {
    if (obj < 0 || j->n[obj].type != J_OBJ)
        return -1;
    int found = -1;
    for (int k = j->n[obj].child; k >= 0; k = j->n[k].next)
        if (strcmp(j->n[k].s, key) == 0)
            found = j->n[k].value;
    return found;
}

int json_has_duplicates(const struct json *j, int obj) {
    for (int a = j->n[obj].child; a >= 0; a = j->n[a].next)
        for (int b = j->n[a].next; b >= 0; b = j->n[b].next)
            if (strcmp(j->n[a].s, j->n[b].s) == 0)
                return 1;
    return 0;
}

int json_len(const struct json *j, int node) {
    int n = 0;
    for (int k = j->n[node].child; k >= 0; k = j->n[k].next)
        n++;
    return n;
}

/* ---- output ---- */

int buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (*len + n + 1 > c)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

int buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return buf_put(buf, len, cap, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int r = buf_put(buf, len, cap, big, (size_t)n);
    free(big);
    return r;
}

/* As CPython's encode_basestring_ascii (ascii) or encode_basestring (not). */
int json_put_string(char **buf, size_t *len, size_t *cap, const char *s, int ascii) {
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    if (buf_put(buf, len, cap, "\"", 1) < 0)
        return -1;
    while (p < end) {
        char esc[16];
        unsigned cp;
        int n = utf8_len(p, end, &cp);
        if (n < 0)
            return -1;
        const char *short_esc = NULL;
        switch (cp) {
        case '"': short_esc = "\\\""; break;
        case '\\': short_esc = "\\\\"; break;
        case '\n': short_esc = "\\n"; break;
        case '\r': short_esc = "\\r"; break;
        case '\t': short_esc = "\\t"; break;
        case '\b': short_esc = "\\b"; break;
        case '\f': short_esc = "\\f"; break;
        }
        int r;
        if (short_esc) {
            r = buf_put(buf, len, cap, short_esc, strlen(short_esc));
        } else if (cp < 0x20 || (ascii && cp >= 0x7F)) {
            if (cp >= 0x10000) {
                unsigned v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 | (v >> 10), 0xDC00 | (v & 0x3FF));
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            }
            r = buf_put(buf, len, cap, esc, strlen(esc));
        } else {
            r = buf_put(buf, len, cap, (const char *)p, (size_t)n);
        }
        if (r < 0)
            return -1;
        p += n;
    }
    return buf_put(buf, len, cap, "\"", 1);
}
