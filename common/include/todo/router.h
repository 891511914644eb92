/* A route table: path patterns of literal and {param} segments, matched in the order added, with
 * method dispatch (405 and its Allow list). Matching allocates nothing; path parameters are
 * percent-decoded into storage the caller provides. */
#ifndef TODO_ROUTER_H
#define TODO_ROUTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "todo/error.h"

#define ROUTER_MAX_PARAMS   4   /* {param} segments per pattern */
#define ROUTER_MAX_SEGMENTS 16  /* segments per pattern; longer paths never match */
#define ROUTER_PATTERN_MAX  255 /* bytes per pattern */
#define ROUTER_METHOD_MAX   15  /* bytes per method name */
#define ROUTER_ALLOW_MAX    128 /* bytes of an Allow list with its NUL */

/* One route. Read-only for callers; the parsed pattern fields are the router's. */
typedef struct {
    char method[ROUTER_METHOD_MAX + 1]; /* "GET", … */
    char *pattern;                      /* copy of the pattern, e.g. "/api/{user_id}/tasks" */
    void *data;                         /* the caller's, as given to router_add (borrowed) */
    size_t index;                       /* position in the table, from 0 in the order added */
    /* Segment i is pattern[seg_off[i]] for seg_len[i] bytes; a {param} (name without braces)
     * when seg_param[i]. */
    uint16_t seg_off[ROUTER_MAX_SEGMENTS];
    uint16_t seg_len[ROUTER_MAX_SEGMENTS];
    bool seg_param[ROUTER_MAX_SEGMENTS];
    /* True for a trailing "{name*}" segment (then seg_param is true as well). */
    bool seg_rest[ROUTER_MAX_SEGMENTS];
    size_t nsegs;
    size_t nparams;
} router_route_t;

/* The table; caller-owned storage (router_init / router_dispose). Not safe to add to while
 * another thread matches; matching from many threads at once is fine. */
typedef struct {
    router_route_t **routes; /* in the order added; each route stays at its address */
    size_t n, cap;
} router_t;

typedef enum {
    ROUTER_NOT_FOUND,          /* no pattern matches the path */
    ROUTER_FOUND,              /* a route for this path and method */
    ROUTER_METHOD_NOT_ALLOWED, /* the path matches, but only routes of other methods */
} router_result_t;

/* What router_match found. */
typedef struct {
    /* FOUND: the route; METHOD_NOT_ALLOWED: the first route whose pattern matched the path;
     * NOT_FOUND: NULL. Borrowed from the router. */
    const router_route_t *route;
    /* FOUND: the parameters in pattern order, percent-decoded and NUL-terminated, in the
     * caller's storage. */
    const char *params[ROUTER_MAX_PARAMS];
    size_t nparams;
    /* METHOD_NOT_ALLOWED: the methods of every route matching the path, in the order added,
     * without repeats, HEAD after GET, e.g. "GET, HEAD, POST"; "" otherwise. */
    char allow[ROUTER_ALLOW_MAX];
} router_match_t;

/* An empty table in caller-owned storage. */
void router_init(router_t *r);
/* Frees every route (their data stays the caller's) and leaves r empty; safe to repeat. */
void router_dispose(router_t *r);

/* Adds a route; method and pattern are copied, data is the caller's. method: 1 to
 * ROUTER_METHOD_MAX upper-case letters. pattern: "/" followed by segments separated by "/",
 * each either "{name}" (name of [A-Za-z0-9_], matching one non-empty path segment) or literal
 * text of URI path characters (unreserved, sub-delims, ':' and '@'; no '%'), at most
 * ROUTER_MAX_SEGMENTS segments and ROUTER_MAX_PARAMS parameters. A literal matches the path
 * segment that percent-decodes to it. The last segment may be "{name*}": it matches the rest of
 * the path, '/' included and possibly empty ("/a/{r*}" matches "/a/", "/a/x" and "/a/x/y", not
 * "/a"), each of its segments percent-decoded (a path longer than ROUTER_MAX_SEGMENTS segments
 * may match it). TODO_EBAD_REQUEST for a malformed method or pattern,
 * TODO_ECONFLICT when a route of the same method and shape (parameter names aside) exists. */
int router_add(router_t *r, const char *method, const char *pattern, void *data) TODO_WUR;

/* Matches method and the raw path (path_len bytes, without the query; must start with '/').
 * HEAD is answered by the path's first GET route when the path has no HEAD route, so Allow
 * lists HEAD after GET.
 * Parameters are decoded into storage (storage_size bytes, each parameter followed by a NUL).
 * A path segment that is malformed percent-encoding, decodes to a NUL byte, or does not fit
 * storage does not match the {param} it stands for. Allocates nothing. */
router_result_t router_match(const router_t *r, const char *method, const char *path,
                             size_t path_len, char *storage, size_t storage_size,
                             router_match_t *m);

#endif
