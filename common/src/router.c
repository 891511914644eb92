/* The route table behind the HTTP server: patterns parsed once when added, then matched against
 * raw request paths segment by segment, decoding percent-escapes in place of allocating. */
#include "todo/router.h"

#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"

/* One segment of a request path: raw bytes, still percent-encoded. */
typedef struct {
    const char *p;
    size_t len;
} segment_t;

void router_init(router_t *r)
{
    r->routes = NULL;
    r->n = 0;
    r->cap = 0;
}

void router_dispose(router_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->routes[i]->pattern);
        free(r->routes[i]);
    }
    free(r->routes);
    router_init(r);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the byte at s[*i] (a "%XX" escape or a plain byte) and advances *i; -1 when the
 * escape is malformed. */
static int next_byte(const char *s, size_t len, size_t *i)
{
    if (s[*i] != '%') {
        return (unsigned char)s[(*i)++];
    }
    if (len - *i < 3)
        return -1;
    int hi = hex_value(s[*i + 1]), lo = hex_value(s[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi * 16 + lo;
}

/* Length of seg once decoded, or -1 when it is malformed or decodes to a NUL byte. */
static long decoded_length(segment_t seg)
{
    long n = 0;
    for (size_t i = 0; i < seg.len; n++) {
        int c = next_byte(seg.p, seg.len, &i);
        if (c <= 0)
            return -1;
    }
    return n;
}

/* True when seg percent-decodes to exactly the literal lit (lit_len bytes). */
static bool literal_equals(segment_t seg, const char *lit, size_t lit_len)
{
    size_t i = 0, j = 0;
    while (i < seg.len) {
        int c = next_byte(seg.p, seg.len, &i);
        if (c < 0 || j == lit_len || (unsigned char)lit[j] != c)
            return false;
        j++;
    }
    return j == lit_len;
}

static bool literal_char_ok(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static bool param_name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool method_ok(const char *method)
{
    size_t n = strlen(method);
    if (n == 0 || n > ROUTER_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (method[i] < 'A' || method[i] > 'Z')
            return false;
    }
    return true;
}

/* Parses pattern (already copied into rt->pattern) into rt's segment fields. */
static bool parse_pattern(router_route_t *rt)
{
    const char *p = rt->pattern;
    size_t len = strlen(p);
    if (len == 0 || len > ROUTER_PATTERN_MAX || p[0] != '/')
        return false;
    size_t start = 1;
    rt->nsegs = 0;
    rt->nparams = 0;
    for (;;) {
        size_t end = start;
        while (end < len && p[end] != '/')
            end++;
        if (rt->nsegs == ROUTER_MAX_SEGMENTS)
            return false;
        size_t seg = rt->nsegs++;
        size_t n = end - start;
        if (n >= 2 && p[start] == '{' && p[end - 1] == '}') {
            /* "{name*}" (only as the last segment) takes the rest of the path */
            bool rest = n >= 3 && p[end - 2] == '*';
            size_t name_len = n - 2 - (rest ? 1 : 0);
            if (name_len == 0 || rt->nparams == ROUTER_MAX_PARAMS || (rest && end != len))
                return false;
            for (size_t i = start + 1; i < start + 1 + name_len; i++) {
                if (!param_name_char_ok(p[i]))
                    return false;
            }
            rt->seg_param[seg] = true;
            rt->seg_rest[seg] = rest;
            rt->seg_off[seg] = (uint16_t)(start + 1);
            rt->seg_len[seg] = (uint16_t)name_len;
            rt->nparams++;
        } else {
            for (size_t i = start; i < end; i++) {
                if (!literal_char_ok(p[i]))
                    return false;
            }
            rt->seg_param[seg] = false;
            rt->seg_rest[seg] = false;
            rt->seg_off[seg] = (uint16_t)start;
            rt->seg_len[seg] = (uint16_t)n;
        }
        if (end == len)
            break;
        start = end + 1;
    }
    return true;
}

/* Same method and same segments, parameter names aside. */
static bool same_route(const router_route_t *a, const router_route_t *b)
{
    if (strcmp(a->method, b->method) != 0 || a->nsegs != b->nsegs)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->seg_param[i] != b->seg_param[i] || a->seg_rest[i] != b->seg_rest[i])
            return false;
        if (!a->seg_param[i] &&
            (a->seg_len[i] != b->seg_len[i] ||
             memcmp(a->pattern + a->seg_off[i], b->pattern + b->seg_off[i], a->seg_len[i]) != 0))
            return false;
    }
    return true;
}

int router_add(router_t *r, const char *method, const char *pattern, void *data)
{
    int rc = TODO_EBAD_REQUEST;
    router_route_t *rt = NULL;

    if (!method || !pattern || !method_ok(method) || strlen(pattern) > ROUTER_PATTERN_MAX)
        goto out;
    rt = xcalloc(1, sizeof(*rt));
    strcpy(rt->method, method);
    rt->pattern = xstrdup(pattern);
    rt->data = data;
    rt->index = r->n;
    if (!parse_pattern(rt))
        goto out;
    for (size_t i = 0; i < r->n; i++) {
        if (same_route(r->routes[i], rt)) {
            rc = TODO_ECONFLICT;
            goto out;
        }
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->routes = xrealloc(r->routes, r->cap * sizeof(*r->routes));
    }
    r->routes[r->n++] = rt;
    rt = NULL; /* the table owns it now */
    rc = 0;
out:
    if (rt)
        free(rt->pattern);
    free(rt);
    return rc;
}

/* The segments of a request path, and where the path ends (for "{name*}"). */
typedef struct {
    segment_t segs[ROUTER_MAX_SEGMENTS];
    size_t nsegs;  /* segments kept, at most ROUTER_MAX_SEGMENTS */
    bool overflow; /* the path has more segments than were kept */
    const char *end;
} split_t;

/* Splits path ("/a/b") into its segments ("a", "b"); false when it does not start with '/'.
 * "/" is one empty segment. */
static bool split_path(const char *path, size_t len, split_t *sp)
{
    if (len == 0 || path[0] != '/')
        return false;
    size_t start = 1;
    sp->nsegs = 0;
    sp->overflow = false;
    sp->end = path + len;
    for (;;) {
        size_t end = start;
        while (end < len && path[end] != '/')
            end++;
        if (sp->nsegs == ROUTER_MAX_SEGMENTS) {
            sp->overflow = true;
            return true;
        }
        sp->segs[sp->nsegs++] = (segment_t){path + start, end - start};
        if (end == len)
            return true;
        start = end + 1;
    }
}

/* Decoded length of the rest of the path from seg on ('/' kept), or -1 as decoded_length. */
static long rest_length(segment_t seg, const char *end)
{
    return decoded_length((segment_t){seg.p, (size_t)(end - seg.p)});
}

/* True when the route's pattern matches the path segments and its decoded parameters fit in
 * storage_size bytes. */
static bool route_matches(const router_route_t *rt, const split_t *sp, size_t storage_size)
{
    const segment_t *segs = sp->segs;
    size_t need = 0;
    bool rest = rt->nsegs > 0 && rt->seg_rest[rt->nsegs - 1];
    if (rest ? sp->nsegs < rt->nsegs : (sp->overflow || rt->nsegs != sp->nsegs))
        return false;
    for (size_t i = 0; i < rt->nsegs; i++) {
        if (rt->seg_rest[i]) {
            long n = rest_length(segs[i], sp->end);
            if (n < 0)
                return false;
            need += (size_t)n + 1;
            if (need > storage_size)
                return false;
        } else if (rt->seg_param[i]) {
            long n = segs[i].len ? decoded_length(segs[i]) : -1;
            if (n < 0)
                return false;
            need += (size_t)n + 1;
            if (need > storage_size)
                return false;
        } else if (!literal_equals(segs[i], rt->pattern + rt->seg_off[i], rt->seg_len[i])) {
            return false;
        }
    }
    return true;
}

/* Decodes the route's parameters into storage; route_matches has checked that they fit. */
static void decode_params(const router_route_t *rt, const split_t *sp, char *storage,
                          router_match_t *m)
{
    char *dst = storage;
    for (size_t i = 0; i < rt->nsegs; i++) {
        if (!rt->seg_param[i])
            continue;
        segment_t seg = sp->segs[i];
        if (rt->seg_rest[i])
            seg.len = (size_t)(sp->end - seg.p);
        m->params[m->nparams++] = dst;
        for (size_t j = 0; j < seg.len;)
            *dst++ = (char)next_byte(seg.p, seg.len, &j);
        *dst++ = '\0';
    }
}

/* Appends method to the Allow list unless it is there already (or would not fit). */
static void allow_add(char *allow, const char *method)
{
    size_t mlen = strlen(method), alen = strlen(allow);
    for (const char *p = allow; *p;) {
        size_t n = strcspn(p, ",");
        if (n == mlen && memcmp(p, method, n) == 0)
            return;
        p += n;
        p += strspn(p, ", ");
    }
    size_t need = alen + (alen ? 2 : 0) + mlen + 1;
    if (need > ROUTER_ALLOW_MAX)
        return;
    if (alen) {
        memcpy(allow + alen, ", ", 2);
        alen += 2;
    }
    memcpy(allow + alen, method, mlen + 1);
}

router_result_t router_match(const router_t *r, const char *method, const char *path,
                             size_t path_len, char *storage, size_t storage_size, router_match_t *m)
{
    split_t sp;

    const router_route_t *found = NULL; /* for HEAD, the first GET route until a HEAD one */
    bool head = strcmp(method, "HEAD") == 0;

    m->route = NULL;
    m->nparams = 0;
    m->allow[0] = '\0';
    if (!split_path(path, path_len, &sp))
        return ROUTER_NOT_FOUND;
    for (size_t i = 0; i < r->n; i++) {
        const router_route_t *rt = r->routes[i];
        if (!route_matches(rt, &sp, storage_size))
            continue;
        if (strcmp(rt->method, method) == 0) {
            found = rt;
            break;
        }
        if (head && !found && strcmp(rt->method, "GET") == 0)
            found = rt;
        if (!m->route)
            m->route = rt;
        allow_add(m->allow, rt->method);
        if (strcmp(rt->method, "GET") == 0)
            allow_add(m->allow, "HEAD");
    }
    if (found) {
        m->route = found;
        m->allow[0] = '\0';
        decode_params(found, &sp, storage, m);
        return ROUTER_FOUND;
    }
    return m->route ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}
