/* The HTTP server on h2o's own event loop: one loop thread and one SO_REUSEPORT listener per
 * THREADS, a single catch-all h2o handler that routes through router.c, an optional pool of worker
 * threads that run the handlers (so that a handler waiting on its database never holds up a
 * loop), the built-in /healthz, /readyz and /metrics, request ids and trace context, access logs,
 * and the drain on stop. */
#define _GNU_SOURCE
#include "todo/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <h2o.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"
#include "todo/metrics.h"
#include "todo/router.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

_Static_assert(HTTP_MAX_PARAMS == ROUTER_MAX_PARAMS, "one parameter limit");

#define PARAM_STORAGE      1024        /* bytes for a request's decoded path parameters */
#define MAX_ROUTES         4096        /* keeps route indexes within the metrics cache key */
#define ACCEPTS_PER_EVENT  16          /* connections accepted per readiness event */
#define COUNTER_SLOTS      256         /* per-loop cache of request counters (a power of two) */
#define CLOSE_GRACE_MS     500         /* how long idle connections get to close after the drain */
#define BACKSTOP_MIN       (64u << 10) /* least margin of h2o's body limit above ours */
#define METRICS_RENDER_MAX (16u << 20)
#define UNMATCHED_ROUTE    "unmatched" /* the route label of paths no pattern matches */
#define ARENA_BLOCK        4096        /* least size of a request's memory blocks */
#define QUEUE_PER_WORKER   256         /* requests waiting for a worker, per worker, before 503 */

typedef enum { ROUTE_USER, ROUTE_HEALTHZ, ROUTE_READYZ, ROUTE_METRICS } route_kind_t;

/* What a router entry points to. */
typedef struct {
    route_kind_t kind;
    http_handler_fn fn;
    void *arg;
    metrics_histogram_t *duration;
} route_entry_t;

typedef struct loop loop_t;

/* An accepted connection, tracked so that the drain can see and close what is left. */
typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    loop_t *loop;
} conn_t;

typedef struct {
    uint32_t key; /* 0 = empty */
    metrics_counter_t *counter;
} counter_slot_t;

/* One event loop and what belongs to its thread. */
struct loop {
    h2o_multithread_receiver_t done; /* requests coming back from the workers */
    size_t at_workers;               /* requests handed to the workers and not back yet */
    http_server_t *srv;
    int index;
    pthread_t thread;
    bool thread_started;
    int listen_fd; /* ours until the loop thread hands it to h2o */
    int stop_fd;   /* the same descriptor for http_server_stop; open until the loop has stopped */
    int wake_rd, wake_wr;
    h2o_evloop_t *evloop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_socket_t *waker;
    void *thread_ctx;
    h2o_linklist_t conns;
    size_t nconns;
    size_t in_flight; /* requests handed to a handler whose response is not finished */
    counter_slot_t counters[COUNTER_SLOTS];
};

/* The h2o handler that takes every request. */
typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} catch_all_t;

/* A worker thread: it runs handlers with its own thread_ctx. */
typedef struct {
    http_server_t *srv;
    int index;
    pthread_t thread;
    bool thread_started;
    void *thread_ctx;
} worker_t;

struct http_server {
    http_server_config_t cfg;
    worker_t *workers;
    pthread_mutex_t queue_lock;
    pthread_cond_t queue_cond;
    h2o_linklist_t queue; /* requests waiting for a worker */
    size_t queued;
    bool workers_quit;
    router_t router;
    metrics_histogram_t *unmatched_duration;
    h2o_globalconf_t globalconf;
    loop_t *loops;
    int port;
    atomic_bool stop_called; /* http_server_stop was called */
    atomic_bool stopping;    /* ... and has shut the listeners: the loops may close them */
    bool started;
    bool joined;
    pthread_mutex_t init_lock;
    pthread_cond_t init_cond;
    int inits_reported;
    int init_rc;
};

/* Memory of one request, freed in one go when it ends: a list of blocks. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
} arena_block_t;

/* A header, of the request or of the response. */
typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} header_t;

typedef struct req_state req_state_t;

/* Lives in the h2o request's pool: tells a request that its h2o side is gone (the client went
 * away), and the h2o side which request to tell. Touched only by the loop thread. */
typedef struct {
    loop_t *loop;
    req_state_t *st;
} req_link_t;

/* A request from the moment it arrives until its response is handed to h2o. Everything a handler
 * reads is copied out of h2o first and everything it answers is kept here, so that a worker
 * thread can run the handler while only the loop thread touches h2o. http_req_t comes first so a
 * handler's pointer converts. */
struct req_state {
    http_req_t pub;
    h2o_multithread_message_t msg; /* in the workers' queue, then on the way back to the loop */
    loop_t *loop;
    h2o_req_t *h2o;   /* NULL once h2o disposed of the request (loop thread only) */
    req_link_t *link; /* the h2o side (loop thread only) */
    arena_block_t *arena;
    header_t *headers; /* the request's */
    size_t nheaders;
    const char *authority;
    const router_route_t *route; /* the pattern that matched the path, NULL when none */
    const route_entry_t *entry;
    char trace_id[33];
    int64_t start_usec;
    bool responded;
    int status;
    const char *content_type; /* of the response, NULL for none */
    const char *body;
    size_t body_len;
    header_t *res_headers;
    size_t nres_headers, res_headers_cap;
};

static void report_init(http_server_t *srv, int rc);

static req_state_t *state_of(http_req_t *req)
{
    return (req_state_t *)req;
}

static int64_t now_ms(void)
{
    return time_mono_usec() / 1000;
}

/* ---- request memory ----------------------------------------------------------------------- */

static void *arena_alloc(req_state_t *st, size_t n)
{
    arena_block_t *b = st->arena;
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = xmalloc(sizeof(*b) + cap);
        b->cap = cap;
        b->used = 0;
        /* A large block goes second so that the current one keeps serving small requests. */
        if (st->arena && n > ARENA_BLOCK) {
            b->next = st->arena->next;
            st->arena->next = b;
        } else {
            b->next = st->arena;
            st->arena = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_strndup(req_state_t *st, const char *s, size_t len)
{
    char *p = arena_alloc(st, len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void arena_free(req_state_t *st)
{
    while (st->arena) {
        arena_block_t *next = st->arena->next;
        free(st->arena);
        st->arena = next;
    }
}

/* ---- request details ---------------------------------------------------------------------- */

static const header_t *find_header(const req_state_t *st, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < st->nheaders; i++) {
        const header_t *hd = &st->headers[i];
        if (hd->name_len == n && strncasecmp(hd->name, name, n) == 0)
            return hd;
    }
    return NULL;
}

const char *http_req_header(http_req_t *req, const char *name)
{
    const req_state_t *st = state_of(req);
    if (strcasecmp(name, "host") == 0)
        return st->authority;
    const header_t *hd = find_header(st, name);
    return hd ? hd->value : NULL;
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

/* Decodes a query component (application/x-www-form-urlencoded: '+' is a space) into the pool.
 * A malformed escape, or one for a NUL byte, is kept as it stands. */
static char *query_decode(req_state_t *st, const char *s, size_t len)
{
    char *out = arena_alloc(st, len + 1), *d = out;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '+') {
            *d++ = ' ';
        } else if (s[i] == '%' && len - i >= 3 && (hi = hex_value(s[i + 1])) >= 0 &&
                   (lo = hex_value(s[i + 2])) >= 0 && (hi | lo) != 0) {
            *d++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *d++ = s[i];
        }
    }
    *d = '\0';
    return out;
}

/* Walks the query for name: returns the first value (decoded) and how often name occurs. */
static const char *query_lookup(http_req_t *req, const char *name, int *count)
{
    req_state_t *st = state_of(req);
    const char *first = NULL;
    const char *p = req->query;
    *count = 0;
    while (*p) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        if (klen > 0 && strcmp(query_decode(st, p, klen), name) == 0) {
            if (++*count == 1)
                first = eq ? query_decode(st, eq + 1, n - klen - 1) : "";
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return first;
}

const char *http_req_query_param(http_req_t *req, const char *name)
{
    int count;
    return query_lookup(req, name, &count);
}

bool http_req_query_repeated(http_req_t *req, const char *name)
{
    int count;
    (void)query_lookup(req, name, &count);
    return count > 1;
}

bool http_req_is_json(http_req_t *req)
{
    const header_t *hd = find_header(state_of(req), "content-type");
    static const char json[] = "application/json";
    size_t n = sizeof(json) - 1, i = 0;
    if (!hd)
        return false;
    const char *v = hd->value;
    size_t len = hd->value_len;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (len - i < n || strncasecmp(v + i, json, n) != 0)
        return false;
    i += n;
    return i == len || v[i] == ';' || v[i] == ' ' || v[i] == '\t';
}

/* ---- responses ---------------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {412, "Precondition Failed"},
        {413, "Payload Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Entity"},
        {428, "Precondition Required"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status)
            return reasons[i].reason;
    }
    return status < 300   ? "OK"
           : status < 400 ? "Redirect"
           : status < 500 ? "Client Error"
                          : "Server Error";
}

void http_add_header(http_req_t *req, const char *name, const char *value)
{
    req_state_t *st = state_of(req);
    if (st->nres_headers == st->res_headers_cap) {
        size_t cap = st->res_headers_cap ? st->res_headers_cap * 2 : 8;
        header_t *grown = arena_alloc(st, cap * sizeof(*grown));
        if (st->nres_headers)
            memcpy(grown, st->res_headers, st->nres_headers * sizeof(*grown));
        st->res_headers = grown;
        st->res_headers_cap = cap;
    }
    header_t *hd = &st->res_headers[st->nres_headers++];
    hd->name_len = strlen(name);
    hd->value_len = strlen(value);
    hd->name = arena_strndup(st, name, hd->name_len);
    hd->value = arena_strndup(st, value, hd->value_len);
}

int http_respond(http_req_t *req, int status, const char *content_type, const char *body,
                 size_t len)
{
    req_state_t *st = state_of(req);

    if (st->responded) {
        log_error("http", "%s %s: a second response (%d) was dropped", req->method, req->path,
                  status);
        return TODO_EINTERNAL;
    }
    if (status < 200 || status > 599) {
        log_error("http", "%s %s: invalid status %d answered as 500", req->method, req->path,
                  status);
        status = 500;
        content_type = NULL;
    }
    st->responded = true;
    st->status = status;
    http_add_header(req, "x-request-id", req->request_id);
    if (!content_type || status == 204 || status == 304) {
        st->content_type = NULL;
        st->body = "";
        st->body_len = 0;
    } else {
        st->content_type = arena_strndup(st, content_type, strlen(content_type));
        st->body = arena_strndup(st, body ? body : "", body ? len : 0);
        st->body_len = body ? len : 0;
    }
    return 0;
}

int http_respond_json(http_req_t *req, int status, const json_t *v)
{
    char *s = json_dump(v);
    int rc = http_respond(req, status, "application/json", s, strlen(s));
    free(s);
    return rc;
}

int http_send_error(http_req_t *req, int rc, const char *detail, const json_t *errors)
{
    char type[64];
    const char *code;
    json_t *problem = NULL, *d = NULL;
    char *body = NULL;
    int status, ret;

    if (rc == TODO_OK)
        rc = TODO_EINTERNAL;
    status = todo_err_status(rc);
    code = todo_err_code(rc);
    size_t n = (size_t)snprintf(type, sizeof(type), "urn:todo:problem:");
    for (size_t i = 0; code[i] && n + 1 < sizeof(type); i++, n++)
        type[n] = code[i] == '_'
                      ? '-'
                      : (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] + 32 : code[i]);
    type[n] = '\0';
    problem = json_object();
    if (detail)
        d = json_string(detail); /* NULL when not UTF-8: the title stands in */
    json_object_set_new(problem, "type", json_string(type));
    json_object_set_new(problem, "title", json_string(todo_err_title(rc)));
    json_object_set_new(problem, "status", json_integer(status));
    json_object_set_new(problem, "detail", d ? d : json_string(todo_err_title(rc)));
    json_object_set_new(problem, "code", json_string(code));
    if (errors)
        json_object_set(problem, "errors", (json_t *)errors);
    body = json_dump(problem);
    ret = http_respond(req, status, "application/problem+json", body, strlen(body));
    json_decref(problem);
    free(body);
    return ret;
}

/* ---- request ids, trace context, metrics -------------------------------------------------- */

static void random_bytes(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            /* No kernel randomness: a UUID still differs from call to call. */
            char u[TODO_UUID_LEN];
            todo_uuid_v4(u);
            for (size_t i = 0; i < n; i++)
                p[i] ^= (unsigned char)(u[i % 36] * 31 + (int)i);
            return;
        }
        p += got;
        n -= (size_t)got;
    }
}

static void hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* n lower-case hex digits, not all zero when nonzero is set. */
static bool lower_hex(const char *s, size_t n, bool nonzero)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        any |= s[i] != '0';
    }
    return any || !nonzero;
}

/* Parses a W3C traceparent "vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>" and takes
 * its trace id (33 bytes) and flags (3 bytes). */
static bool traceparent_parse(const char *v, char *trace_id, char *flags)
{
    if (!v)
        return false;
    size_t n = strlen(v);
    if (n < 55 || !lower_hex(v, 2, false) || memcmp(v, "ff", 2) == 0)
        return false;
    if (memcmp(v, "00", 2) == 0 ? n != 55 : (n > 55 && v[55] != '-'))
        return false;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-' || !lower_hex(v + 3, 32, true) ||
        !lower_hex(v + 36, 16, true) || !lower_hex(v + 53, 2, false))
        return false;
    memcpy(trace_id, v + 3, 32);
    trace_id[32] = '\0';
    memcpy(flags, v + 53, 2);
    flags[2] = '\0';
    return true;
}

/* The request's traceparent: the caller's trace with a new span id, or a new trace. */
static void trace_context(http_req_t *req, const char *incoming, char *trace_id)
{
    char flags[3];
    unsigned char span[8], trace[16];
    char span_hex[17];

    if (!traceparent_parse(incoming, trace_id, flags)) {
        random_bytes(trace, sizeof(trace));
        hex_encode(trace, sizeof(trace), trace_id);
        if (!lower_hex(trace_id, 32, true))
            trace_id[31] = '1';
        strcpy(flags, "01");
    }
    random_bytes(span, sizeof(span));
    hex_encode(span, sizeof(span), span_hex);
    if (!lower_hex(span_hex, 16, true))
        span_hex[15] = '1';
    snprintf(req->traceparent, sizeof(req->traceparent), "00-%s-%s-%s", trace_id, span_hex, flags);
}

static bool request_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > HTTP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Method label of the request counter: the standard methods, anything else as "other" so that
 * clients cannot grow the label set. */
static const char *method_label(const char *method, unsigned *index)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(method, known[i]) == 0) {
            *index = i;
            return known[i];
        }
    }
    *index = sizeof(known) / sizeof(known[0]);
    return "other";
}

/* http_requests_total{route,method,status}, through the loop's cache (no lock once seen). */
static void count_request(loop_t *loop, size_t route_index, const char *route, const char *method,
                          int status)
{
    unsigned midx;
    const char *mlabel = method_label(method, &midx);
    uint32_t key = ((uint32_t)route_index << 16 | midx << 10 | (uint32_t)status) + 1;
    uint32_t h = (key * 2654435761u) >> 24;
    counter_slot_t *slot = NULL;
    metrics_counter_t *c = NULL;

    for (unsigned probe = 0; probe < COUNTER_SLOTS; probe++) {
        counter_slot_t *s = &loop->counters[(h + probe) & (COUNTER_SLOTS - 1)];
        if (s->key == key) {
            c = s->counter;
            break;
        }
        if (s->key == 0) {
            slot = s;
            break;
        }
    }
    if (!c) {
        char labels[ROUTER_PATTERN_MAX + 64];
        snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%d\"", route, mlabel,
                 status);
        c = metrics_counter("http_requests_total",
                            "HTTP requests by route pattern, method and status", labels);
        if (slot) {
            slot->key = key;
            slot->counter = c;
        }
    }
    metrics_counter_add(c, 1);
}

static metrics_histogram_t *duration_histogram(const char *route)
{
    char labels[ROUTER_PATTERN_MAX + 16];
    snprintf(labels, sizeof(labels), "route=\"%s\"", route);
    return metrics_histogram("http_request_duration_seconds",
                             "Time to handle an HTTP request by route pattern, in seconds", labels);
}

/* Metrics and the access log line of a request, taken just before its response goes out so
 * that a client never sees a response its metrics do not count yet. Loop thread. */
static void record_request(const req_state_t *st)
{
    const http_req_t *req = &st->pub;
    double seconds = (double)(time_mono_usec() - st->start_usec) / 1e6;
    const route_entry_t *e = st->route ? st->route->data : NULL;
    const char *route = st->route ? st->route->pattern : UNMATCHED_ROUTE;

    metrics_histogram_observe(e ? e->duration : st->loop->srv->unmatched_duration, seconds);
    count_request(st->loop, st->route ? st->route->index : MAX_ROUTES, route, req->method,
                  st->status);
    log_debug("http", "%s %s %d %.3f ms route=%s request_id=%s%s", req->method, req->path,
              st->status, seconds * 1e3, route, req->request_id,
              st->h2o ? "" : " (the client had gone)");
}

/* ---- the handler -------------------------------------------------------------------------- */

static void on_request_disposed(void *p)
{
    req_link_t *link = p;
    link->loop->in_flight--;
    if (link->st) { /* still with a worker: its response will have no one to go to */
        link->st->h2o = NULL;
        link->st->link = NULL;
    }
}

static void req_free(req_state_t *st)
{
    arena_free(st);
    free(st);
}

/* Hands the response kept in st to h2o (when the request is still there) and frees st. Loop
 * thread. */
static void finish(req_state_t *st)
{
    h2o_req_t *h = st->h2o;

    record_request(st);
    if (h) {
        st->link->st = NULL;
        h->res.status = st->status;
        h->res.reason = reason_phrase(st->status);
        for (size_t i = 0; i < st->nres_headers; i++) {
            const header_t *hd = &st->res_headers[i];
            char *lname = h2o_mem_alloc_pool(&h->pool, hd->name_len + 1);
            for (size_t j = 0; j < hd->name_len; j++) {
                char c = hd->name[j];
                lname[j] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
            }
            lname[hd->name_len] = '\0';
            h2o_add_header_by_str(&h->pool, &h->res.headers, lname, hd->name_len, 1,
                                  h2o_strdup(&h->pool, hd->name, hd->name_len).base,
                                  h2o_strdup(&h->pool, hd->value, hd->value_len).base,
                                  hd->value_len);
        }
        if (st->content_type) {
            h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           h2o_strdup(&h->pool, st->content_type, SIZE_MAX).base,
                           strlen(st->content_type));
            h->res.content_length = st->body_len;
        }
        h2o_send_inline(h, st->body, st->body_len);
    }
    req_free(st);
}

static int serve_builtin(req_state_t *st, route_kind_t kind, void *thread_ctx)
{
    http_server_t *srv = st->loop->srv;
    http_req_t *req = &st->pub;
    int rc = 0;

    if (kind == ROUTE_HEALTHZ) {
        static const char ok[] = "{\"status\":\"ok\"}";
        rc = http_respond(req, 200, "application/json", ok, sizeof(ok) - 1);
    } else if (kind == ROUTE_READYZ) {
        const char *why = NULL;
        if (atomic_load(&srv->stop_called)) {
            rc = http_send_error(req, TODO_EUNAVAILABLE, "shutting down", NULL);
        } else if (srv->cfg.ready && !srv->cfg.ready(thread_ctx, srv->cfg.arg, &why)) {
            rc = http_send_error(req, TODO_EUNAVAILABLE, why ? why : "not ready", NULL);
        } else {
            static const char ready[] = "{\"status\":\"ready\"}";
            rc = http_respond(req, 200, "application/json", ready, sizeof(ready) - 1);
        }
    } else {
        buf_t b;
        buf_init(&b, METRICS_RENDER_MAX);
        rc = metrics_render(&b);
        rc = rc ? http_send_error(req, rc, "cannot render the metrics", NULL)
                : http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        buf_dispose(&b);
    }
    return rc;
}

/* Runs the route's handler (or /readyz) with thread_ctx, on a worker or on the loop. */
static void run_handler(req_state_t *st, void *thread_ctx)
{
    http_req_t *req = &st->pub;
    const route_entry_t *e = st->entry;
    int rc;

    req->thread_ctx = thread_ctx;
    log_set_trace(st->trace_id);
    if (e->kind != ROUTE_USER) {
        (void)serve_builtin(st, e->kind, thread_ctx);
        log_set_trace(NULL);
        return;
    }
    rc = e->fn(req);
    if (st->responded) {
        if (rc != 0)
            log_debug("http", "%s %s: handler returned %s after responding", req->method,
                      st->route->pattern, todo_err_code(rc));
    } else {
        if (rc == 0) {
            log_error("http", "%s %s: handler returned without responding", req->method,
                      st->route->pattern);
            rc = TODO_EINTERNAL;
        }
        (void)http_send_error(req, rc, NULL, NULL);
    }
    log_set_trace(NULL);
}

/* Queues st for a worker; false when the queue is full. Loop thread. */
static bool to_worker(req_state_t *st)
{
    http_server_t *srv = st->loop->srv;
    bool queued = false;

    pthread_mutex_lock(&srv->queue_lock);
    if (srv->queued < (size_t)srv->cfg.workers * QUEUE_PER_WORKER) {
        h2o_linklist_insert(&srv->queue, &st->msg.link);
        srv->queued++;
        queued = true;
        pthread_cond_signal(&srv->queue_cond);
    }
    pthread_mutex_unlock(&srv->queue_lock);
    if (queued)
        st->loop->at_workers++;
    return queued;
}

/* Requests back from the workers: their responses go out. Loop thread. */
static void on_worker_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    loop_t *loop = H2O_STRUCT_FROM_MEMBER(loop_t, done, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        req_state_t *st = H2O_STRUCT_FROM_MEMBER(req_state_t, msg.link, messages->next);
        h2o_linklist_unlink(&st->msg.link);
        loop->at_workers--;
        finish(st);
    }
}

static void *worker_main(void *arg);

/* Routes the request and runs its handler, here or on a worker; answers 404, 405, 413 and a
 * full queue (503) itself. True when a worker has it now (st is then the worker's until it
 * comes back). Loop thread. */
static bool dispatch(req_state_t *st)
{
    http_server_t *srv = st->loop->srv;
    http_req_t *req = &st->pub;
    h2o_req_t *h = st->h2o;
    size_t raw_len = h->query_at != SIZE_MAX ? h->query_at : h->path.len;
    char *storage = arena_alloc(st, PARAM_STORAGE);
    router_match_t m;

    switch (router_match(&srv->router, req->method, h->path.base, raw_len, storage, PARAM_STORAGE,
                         &m)) {
    case ROUTER_NOT_FOUND:
        (void)http_send_error(req, TODO_ENOT_FOUND, "no resource at this path", NULL);
        return false;
    case ROUTER_METHOD_NOT_ALLOWED:
        st->route = m.route;
        http_add_header(req, "allow", m.allow);
        (void)http_send_error(req, TODO_EMETHOD_NOT_ALLOWED, NULL, NULL);
        return false;
    case ROUTER_FOUND:
        break;
    }
    st->route = m.route;
    st->entry = m.route->data;
    if (req->body_len > srv->cfg.max_body) {
        char detail[80];
        snprintf(detail, sizeof(detail), "the request body exceeds %zu bytes", srv->cfg.max_body);
        (void)http_send_error(req, TODO_EPAYLOAD_TOO_LARGE, detail, NULL);
        return false;
    }
    for (size_t i = 0; i < m.nparams; i++)
        req->params[i] = m.params[i];
    req->nparams = m.nparams;
    req->route_arg = st->entry->arg;
    /* /healthz and /metrics never wait on anything: they stay on the loop. */
    bool blocking = st->entry->kind == ROUTE_USER || st->entry->kind == ROUTE_READYZ;
    if (srv->cfg.workers > 0 && blocking) {
        if (to_worker(st))
            return true;
        (void)http_send_error(req, TODO_EUNAVAILABLE, "the server is overloaded", NULL);
        return false;
    }
    run_handler(st, st->loop->thread_ctx);
    return false;
}

/* Copies what a handler may read out of the h2o request. */
static void snapshot(req_state_t *st, h2o_req_t *h)
{
    http_req_t *req = &st->pub;

    req->method = arena_strndup(st, h->method.base, h->method.len);
    req->path = arena_strndup(st, h->path_normalized.base, h->path_normalized.len);
    req->query = h->query_at != SIZE_MAX ? arena_strndup(st, h->path.base + h->query_at + 1,
                                                         h->path.len - h->query_at - 1)
                                         : "";
    req->body = h->entity.base ? arena_strndup(st, h->entity.base, h->entity.len) : "";
    req->body_len = h->entity.base ? h->entity.len : 0;
    st->authority = h->input.authority.base
                        ? arena_strndup(st, h->input.authority.base, h->input.authority.len)
                        : NULL;
    st->nheaders = h->headers.size;
    st->headers = arena_alloc(st, (h->headers.size ? h->headers.size : 1) * sizeof(header_t));
    for (size_t i = 0; i < h->headers.size; i++) {
        const h2o_header_t *hd = h->headers.entries + i;
        header_t *c = &st->headers[i];
        c->name = arena_strndup(st, hd->name->base, hd->name->len);
        c->name_len = hd->name->len;
        c->value = arena_strndup(st, hd->value.base, hd->value.len);
        c->value_len = hd->value.len;
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *h)
{
    http_server_t *srv = ((catch_all_t *)self)->srv;
    loop_t *loop = H2O_STRUCT_FROM_MEMBER(loop_t, ctx, h->conn->ctx);
    req_state_t *st = xcalloc(1, sizeof(*st));
    http_req_t *req = &st->pub;

    st->start_usec = time_mono_usec();
    st->h2o = h;
    st->loop = loop;
    st->link = h2o_mem_alloc_shared(&h->pool, sizeof(req_link_t), on_request_disposed);
    st->link->loop = loop;
    st->link->st = st;
    loop->in_flight++;
    if (atomic_load(&srv->stop_called))
        h->http1_is_persistent = 0;

    snapshot(st, h);
    const char *rid = http_req_header(req, "x-request-id");
    if (request_id_ok(rid)) {
        strcpy(req->request_id, rid);
    } else {
        char u[TODO_UUID_LEN];
        todo_uuid_v4(u);
        strcpy(req->request_id, u);
    }
    trace_context(req, http_req_header(req, "traceparent"), st->trace_id);

    if (!dispatch(st))
        finish(st);
    return 0;
}

/* ---- workers ------------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    http_server_t *srv = w->srv;
    int rc =
        srv->cfg.thread_init ? srv->cfg.thread_init(w->index, &w->thread_ctx, srv->cfg.arg) : 0;
    if (rc != 0)
        log_error("http", "worker %d: thread set-up failed: %s", w->index, todo_err_code(rc));
    report_init(srv, rc);
    for (;;) {
        pthread_mutex_lock(&srv->queue_lock);
        while (h2o_linklist_is_empty(&srv->queue) && !srv->workers_quit)
            pthread_cond_wait(&srv->queue_cond, &srv->queue_lock);
        if (h2o_linklist_is_empty(&srv->queue)) { /* and told to quit */
            pthread_mutex_unlock(&srv->queue_lock);
            break;
        }
        req_state_t *st = H2O_STRUCT_FROM_MEMBER(req_state_t, msg.link, srv->queue.next);
        h2o_linklist_unlink(&st->msg.link);
        srv->queued--;
        pthread_mutex_unlock(&srv->queue_lock);
        if (rc == 0)
            run_handler(st, w->thread_ctx);
        else
            (void)http_send_error(&st->pub, TODO_EUNAVAILABLE, "worker not set up", NULL);
        h2o_multithread_send_message(&st->loop->done, &st->msg);
    }
    if (rc == 0 && srv->cfg.thread_dispose)
        srv->cfg.thread_dispose(w->thread_ctx, srv->cfg.arg);
    return NULL;
}

/* ---- connections and loops ---------------------------------------------------------------- */

static void on_conn_close(void *data)
{
    conn_t *c = data;
    h2o_linklist_unlink(&c->link);
    c->loop->nconns--;
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    loop_t *loop = listener->data;
    if (err) {
        log_warn("http", "accept: %s", err);
        return;
    }
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            break;
        conn_t *c = xmalloc(sizeof(*c));
        c->sock = sock;
        c->loop = loop;
        h2o_linklist_insert(&loop->conns, &c->link);
        loop->nconns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        int one = 1;
        (void)setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        h2o_accept(&loop->accept_ctx, sock);
    }
}

/* The stop pipe became readable: empty it; the loop checks the flag when the run returns. */
static void on_wake(h2o_socket_t *sock, const char *err)
{
    loop_t *loop = sock->data;
    char b[64];
    while (read(loop->wake_rd, b, sizeof(b)) > 0)
        ;
}

/* Shuts down one or both directions of every connection left; h2o then sees the end of the
 * input (or an error) and closes each connection once its response is out. */
static void shutdown_conns(loop_t *loop, int how)
{
    for (h2o_linklist_t *n = loop->conns.next; n != &loop->conns; n = n->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, n);
        (void)shutdown(h2o_socket_get_fd(c->sock), how);
    }
}

/* Runs the loop until done(loop) or the deadline (monotonic ms). */
static void run_until(loop_t *loop, int64_t deadline, bool (*done)(const loop_t *))
{
    int64_t now;
    while (!done(loop) && (now = now_ms()) < deadline) {
        int64_t wait = deadline - now;
        h2o_evloop_run(loop->evloop, (int32_t)(wait < INT32_MAX ? wait : INT32_MAX));
    }
}

static bool no_requests(const loop_t *loop)
{
    return loop->in_flight == 0 && loop->at_workers == 0;
}

static bool none_at_workers(const loop_t *loop)
{
    return loop->at_workers == 0;
}

static bool no_conns(const loop_t *loop)
{
    return loop->nconns == 0;
}

/* After a stop: stop accepting, give requests in flight drain_ms, then close what is left. */
static void drain(loop_t *loop)
{
    http_server_t *srv = loop->srv;
    int64_t deadline = now_ms() + srv->cfg.drain_ms;

    h2o_socket_read_stop(loop->listener);
    h2o_socket_close(loop->listener);
    loop->listener = NULL;
    /* New HTTP/1 requests now get "Connection: close". (h2o_context_request_shutdown would also
     * arm a GOAWAY timer for HTTP/2, which is off here, and leave it linked past the drain.) */
    loop->ctx.shutdown_requested = 1;
    run_until(loop, deadline, no_requests);
    if (loop->in_flight > 0)
        log_warn("http", "loop %d: %zu requests still running after the %lld ms drain", loop->index,
                 loop->in_flight, (long long)srv->cfg.drain_ms);
    shutdown_conns(loop, SHUT_RD);
    int64_t grace = now_ms() + CLOSE_GRACE_MS;
    run_until(loop, deadline > grace ? deadline : grace, no_conns);
    if (loop->nconns > 0) {
        shutdown_conns(loop, SHUT_RDWR);
        run_until(loop, now_ms() + CLOSE_GRACE_MS, no_conns);
    }
    /* A worker still on a request answers this loop when it is done: the loop must outlive it.
     * (Handlers' own time limits, such as the statement timeout, bound this wait.) */
    if (loop->at_workers > 0) {
        log_warn("http", "loop %d: waiting for %zu requests still at the workers", loop->index,
                 loop->at_workers);
        run_until(loop, INT64_MAX, none_at_workers);
    }
}

static void report_init(http_server_t *srv, int rc)
{
    pthread_mutex_lock(&srv->init_lock);
    srv->inits_reported++;
    if (rc != 0 && srv->init_rc == 0)
        srv->init_rc = rc;
    pthread_cond_broadcast(&srv->init_cond);
    pthread_mutex_unlock(&srv->init_lock);
}

static void *loop_main(void *arg)
{
    loop_t *loop = arg;
    http_server_t *srv = loop->srv;
    int rc;

    loop->evloop = h2o_evloop_create();
    h2o_context_init(&loop->ctx, loop->evloop, &srv->globalconf);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = srv->globalconf.hosts;
    h2o_linklist_init_anchor(&loop->conns);
    loop->listener =
        h2o_evloop_socket_create(loop->evloop, loop->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    loop->listen_fd = -1; /* h2o closes it with the socket */
    loop->listener->data = loop;
    loop->waker = h2o_evloop_socket_create(loop->evloop, loop->wake_rd, H2O_SOCKET_FLAG_DONT_READ);
    loop->waker->data = loop;
    h2o_socket_read_start(loop->waker, on_wake);
    h2o_multithread_register_receiver(loop->ctx.queue, &loop->done, on_worker_done);

    /* With workers the handlers run there, with the workers' thread_ctx. */
    rc = srv->cfg.thread_init && srv->cfg.workers == 0
             ? srv->cfg.thread_init(loop->index, &loop->thread_ctx, srv->cfg.arg)
             : 0;
    if (rc != 0)
        log_error("http", "loop %d: thread set-up failed: %s", loop->index, todo_err_code(rc));
    report_init(srv, rc);
    if (rc == 0)
        h2o_socket_read_start(loop->listener, on_accept);
    /* After a failed set-up, too, the listener stays open until the stop that http_server_start
     * then makes, since http_server_stop shuts it down by descriptor. */
    while (!atomic_load(&srv->stopping))
        h2o_evloop_run(loop->evloop, INT32_MAX);
    if (rc == 0)
        drain(loop);
    if (loop->listener) {
        h2o_socket_close(loop->listener);
        loop->listener = NULL;
    }
    h2o_socket_close(loop->waker); /* closes wake_rd */
    loop->waker = NULL;
    loop->wake_rd = -1;
    if (rc == 0 && srv->cfg.thread_dispose && srv->cfg.workers == 0)
        srv->cfg.thread_dispose(loop->thread_ctx, srv->cfg.arg);
    if (loop->nconns == 0) {
        h2o_multithread_queue_t *queue = loop->ctx.queue;
        h2o_multithread_unregister_receiver(queue, &loop->done);
        h2o_context_dispose(&loop->ctx);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
        free(queue); /* h2o 2.2 closes the context's queue but does not free it */
#endif
        h2o_evloop_run(loop->evloop, 0); /* frees the sockets closed above */
        h2o_evloop_destroy(loop->evloop);
    } else {
        /* h2o cannot dispose a context with live connections; the process is ending anyway. */
        log_warn("http", "loop %d: %zu connections would not close", loop->index, loop->nconns);
    }
    loop->evloop = NULL;
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* LeakSanitizer reads this hook from the executable. h2o keeps per-thread free lists of memory
 * chunks (h2o_mem_alloc_recycle) that it never releases, so every loop thread that ends leaves
 * them behind; only those are exempt. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}

static int add_route(http_server_t *srv, const char *method, const char *pattern, route_kind_t kind,
                     http_handler_fn fn, void *arg)
{
    int rc = TODO_EINTERNAL;
    route_entry_t *e = NULL;

    if (srv->started || srv->router.n >= MAX_ROUTES) {
        log_error("http", "cannot add route %s %s %s", method ? method : "?",
                  pattern ? pattern : "?", srv->started ? "after start" : "(too many routes)");
        goto out;
    }
    e = xcalloc(1, sizeof(*e));
    e->kind = kind;
    e->fn = fn;
    e->arg = arg;
    rc = router_add(&srv->router, method, pattern, e);
    if (rc != 0) {
        log_error("http", "cannot add route %s %s: %s", method ? method : "?",
                  pattern ? pattern : "?", todo_err_code(rc));
        goto out;
    }
    e->duration = duration_histogram(pattern);
    e = NULL; /* the router holds it now */
out:
    free(e);
    return rc;
}

int http_server_route(http_server_t *srv, const char *method, const char *pattern,
                      http_handler_fn fn, void *arg)
{
    if (!fn)
        return TODO_EBAD_REQUEST;
    return add_route(srv, method, pattern, ROUTE_USER, fn, arg);
}

static bool config_ok(const http_server_config_t *cfg)
{
    return cfg && cfg->threads >= 1 && cfg->threads <= 1024 && cfg->workers >= 0 &&
           cfg->workers <= 1024 && cfg->port >= 0 && cfg->port <= 65535 && cfg->max_body > 0 &&
           cfg->max_body <= SIZE_MAX / 4 && cfg->drain_ms >= 0;
}

http_server_t *http_server_new(const http_server_config_t *cfg)
{
    http_server_t *srv = NULL;

    if (!config_ok(cfg)) {
        log_error("http", "invalid HTTP server configuration");
        goto out;
    }
    srv = xcalloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    if (!srv->cfg.host || !srv->cfg.host[0])
        srv->cfg.host = "0.0.0.0";
    if (!srv->cfg.service)
        srv->cfg.service = "todo";
    router_init(&srv->router);
    atomic_init(&srv->stop_called, false);
    atomic_init(&srv->stopping, false);
    pthread_mutex_init(&srv->init_lock, NULL);
    pthread_cond_init(&srv->init_cond, NULL);
    pthread_mutex_init(&srv->queue_lock, NULL);
    pthread_cond_init(&srv->queue_cond, NULL);
    h2o_linklist_init_anchor(&srv->queue);
    srv->workers = xcalloc((size_t)cfg->workers + 1, sizeof(*srv->workers));
    for (int i = 0; i < cfg->workers; i++) {
        srv->workers[i].srv = srv;
        srv->workers[i].index = i;
    }

    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT(""));
    /* h2o's own 413 (plain text, before the body is read) is a backstop well above our cap, so
     * that a body a little or a few times too large still gets our problem+json answer. */
    srv->globalconf.max_request_entity_size =
        cfg->max_body + (cfg->max_body > BACKSTOP_MIN ? cfg->max_body : BACKSTOP_MIN);
    srv->globalconf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    catch_all_t *handler = (catch_all_t *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;

    srv->loops = xcalloc((size_t)cfg->threads, sizeof(*srv->loops));
    for (int i = 0; i < cfg->threads; i++) {
        loop_t *loop = &srv->loops[i];
        loop->srv = srv;
        loop->index = i;
        loop->listen_fd = loop->stop_fd = loop->wake_rd = loop->wake_wr = -1;
    }
    for (int i = 0; i < cfg->threads; i++) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
            log_error("http", "pipe: %s", strerror(errno));
            http_server_free(srv);
            srv = NULL;
            goto out;
        }
        srv->loops[i].wake_rd = fds[0];
        srv->loops[i].wake_wr = fds[1];
    }
    srv->unmatched_duration = duration_histogram(UNMATCHED_ROUTE);
    if (!cfg->no_builtin_routes &&
        (add_route(srv, "GET", "/healthz", ROUTE_HEALTHZ, NULL, NULL) != 0 ||
         add_route(srv, "GET", "/readyz", ROUTE_READYZ, NULL, NULL) != 0 ||
         add_route(srv, "GET", "/metrics", ROUTE_METRICS, NULL, NULL) != 0)) {
        http_server_free(srv);
        srv = NULL;
    }
out:
    return srv;
}

void http_server_free(http_server_t *srv)
{
    if (!srv)
        return;
    if (srv->started && !srv->joined) {
        http_server_stop(srv);
        http_server_join(srv);
    }
    for (size_t i = 0; i < srv->router.n; i++)
        free(srv->router.routes[i]->data);
    router_dispose(&srv->router);
    for (int i = 0; srv->loops && i < srv->cfg.threads; i++) {
        loop_t *loop = &srv->loops[i];
        if (loop->listen_fd >= 0)
            close(loop->listen_fd);
        if (loop->wake_rd >= 0)
            close(loop->wake_rd);
        if (loop->wake_wr >= 0)
            close(loop->wake_wr);
    }
    free(srv->loops);
    free(srv->workers);
    h2o_config_dispose(&srv->globalconf);
    pthread_cond_destroy(&srv->init_cond);
    pthread_mutex_destroy(&srv->init_lock);
    pthread_cond_destroy(&srv->queue_cond);
    pthread_mutex_destroy(&srv->queue_lock);
    free(srv);
}

/* Opens one listening socket per loop on the same address with SO_REUSEPORT; with port 0 the
 * first socket picks the port and the others join it. */
static int open_listeners(http_server_t *srv)
{
    int rc = TODO_EUNAVAILABLE;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage addr;
    char port[8];
    int gai, port_no = srv->cfg.port;

    snprintf(port, sizeof(port), "%d", srv->cfg.port);
    if ((gai = getaddrinfo(srv->cfg.host, port, &hints, &ai)) != 0) {
        log_error("http", "cannot resolve listen address %s: %s", srv->cfg.host, gai_strerror(gai));
        goto out;
    }
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    for (int i = 0; i < srv->cfg.threads; i++) {
        int one = 1;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        srv->loops[i].listen_fd = fd;
        if (addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port_no);
        else
            ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port_no);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
            bind(fd, (struct sockaddr *)&addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            log_error("http", "cannot listen on %s port %d: %s", srv->cfg.host, port_no,
                      strerror(errno));
            goto out;
        }
        if (i == 0) {
            struct sockaddr_storage bound;
            socklen_t len = sizeof(bound);
            if (getsockname(fd, (struct sockaddr *)&bound, &len) != 0) {
                log_error("http", "getsockname: %s", strerror(errno));
                goto out;
            }
            port_no =
                ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
        }
    }
    srv->port = port_no;
    for (int i = 0; i < srv->cfg.threads; i++)
        srv->loops[i].stop_fd = srv->loops[i].listen_fd;
    rc = 0;
out:
    if (rc != 0) {
        for (int i = 0; i < srv->cfg.threads; i++) {
            if (srv->loops[i].listen_fd >= 0)
                close(srv->loops[i].listen_fd);
            srv->loops[i].listen_fd = -1;
        }
    }
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

int http_server_start(http_server_t *srv)
{
    int rc = TODO_EINTERNAL, created = 0, workers = 0;
    struct sigaction sa;

    if (srv->started) {
        log_error("http", "http_server_start called twice");
        goto out;
    }
    /* A peer that hangs up must not kill the process with SIGPIPE while h2o writes to it. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    if ((rc = open_listeners(srv)) != 0)
        goto out;
    srv->started = true;
    for (; workers < srv->cfg.workers; workers++) {
        worker_t *w = &srv->workers[workers];
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err != 0) {
            log_error("http", "cannot start worker thread %d: %s", workers, strerror(err));
            break;
        }
        w->thread_started = true;
    }
    for (; workers == srv->cfg.workers && created < srv->cfg.threads; created++) {
        loop_t *loop = &srv->loops[created];
        int err = pthread_create(&loop->thread, NULL, loop_main, loop);
        if (err != 0) {
            log_error("http", "cannot start loop thread %d: %s", created, strerror(err));
            break;
        }
        loop->thread_started = true;
    }
    pthread_mutex_lock(&srv->init_lock);
    while (srv->inits_reported < created + workers)
        pthread_cond_wait(&srv->init_cond, &srv->init_lock);
    rc = created < srv->cfg.threads || workers < srv->cfg.workers ? TODO_EINTERNAL : srv->init_rc;
    pthread_mutex_unlock(&srv->init_lock);
    if (rc != 0) {
        http_server_stop(srv);
        http_server_join(srv);
        goto out;
    }
    log_debug("http", "%s listening on %s port %d with %d loops and %d workers", srv->cfg.service,
              srv->cfg.host, srv->port, srv->cfg.threads, srv->cfg.workers);
out:
    return rc;
}

int http_server_port(const http_server_t *srv)
{
    return srv->port;
}

void http_server_stop(http_server_t *srv)
{
    int saved_errno = errno;
    if (!atomic_exchange(&srv->stop_called, true)) {
        /* Refuse new connections at once, even on a loop that is busy in a handler (its listener
         * would otherwise queue connections only to reset them). No loop closes its listener
         * before stopping is set, so these descriptors are still the listeners. */
        for (int i = 0; i < srv->cfg.threads; i++) {
            if (srv->loops[i].stop_fd >= 0)
                (void)shutdown(srv->loops[i].stop_fd, SHUT_RD);
        }
        atomic_store(&srv->stopping, true);
    }
    for (int i = 0; i < srv->cfg.threads; i++) {
        ssize_t w = write(srv->loops[i].wake_wr, "", 1);
        (void)w;
    }
    errno = saved_errno;
}

void http_server_join(http_server_t *srv)
{
    if (!srv->started || srv->joined)
        return;
    for (int i = 0; i < srv->cfg.threads; i++) {
        if (srv->loops[i].thread_started)
            pthread_join(srv->loops[i].thread, NULL);
    }
    /* The loops waited for every request they gave the workers: the queue is empty. */
    pthread_mutex_lock(&srv->queue_lock);
    srv->workers_quit = true;
    pthread_cond_broadcast(&srv->queue_cond);
    pthread_mutex_unlock(&srv->queue_lock);
    for (int i = 0; i < srv->cfg.workers; i++) {
        if (srv->workers[i].thread_started)
            pthread_join(srv->workers[i].thread, NULL);
    }
    srv->joined = true;
}

bool http_server_stopping(const http_server_t *srv)
{
    return atomic_load(&srv->stop_called);
}
