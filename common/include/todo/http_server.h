/* The HTTP server every service runs: h2o event loops (one per thread, SO_REUSEPORT), a route
 * table with {param} segments and method dispatch (405 with Allow), a request body cap (413),
 * application/problem+json errors, request ids, /healthz, /readyz and /metrics, and a graceful
 * drain on shutdown. Only http_server.c includes <h2o.h>. */
#ifndef TODO_HTTP_SERVER_H
#define TODO_HTTP_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "todo/error.h"
#include "todo/json.h"

#define HTTP_MAX_PARAMS     4
#define HTTP_REQUEST_ID_MAX 64

typedef struct http_server http_server_t;

/* One request, valid until the handler returns. Strings are NUL-terminated and borrowed from
 * the request's memory, which the handler may use from any thread (the handler may run on a
 * worker thread: see http_server_config_t.workers). */
typedef struct http_req {
    const char *method;                  /* "GET", … */
    const char *path;                    /* decoded path without the query */
    const char *query;                   /* raw query string without '?', "" when none */
    const char *params[HTTP_MAX_PARAMS]; /* path parameters in pattern order, percent-decoded */
    size_t nparams;
    const char *body; /* request body, len body_len (NUL-terminated for convenience) */
    size_t body_len;
    char request_id[HTTP_REQUEST_ID_MAX + 1]; /* X-Request-Id of the request, or a new UUID */
    char traceparent[56]; /* W3C traceparent of the request, or a new one (a new span either way) */
    void *thread_ctx;     /* what thread_init made for this loop thread */
    void *route_arg;      /* the arg given with the route */
} http_req_t;

/* A handler responds through http_respond_* and returns 0, or returns a todo_err_t without
 * responding and the server answers with that error as problem+json. */
typedef int (*http_handler_fn)(http_req_t *req);

typedef struct {
    const char *service; /* name in logs and metrics (borrowed) */
    const char *host;    /* listen address, default "0.0.0.0" */
    int port;
    int threads; /* event loops, ≥ 1 */
    /* Worker threads that run the handlers (and /readyz), 0–1024. With 0 handlers run on the
     * loop threads, so a handler that waits holds up every connection of its loop; with workers
     * the loops only parse, route and send, and a request waits in a queue (at most 256 per
     * worker, then 503) for a free worker. thread_init/thread_dispose then run on each worker
     * instead of each loop. */
    int workers;
    size_t max_body;  /* request body cap in bytes */
    int64_t drain_ms; /* how long shutdown waits for in-flight requests */
    /* Per handler thread (loop or worker) set-up and tear-down (may be NULL). thread_init
     * returns 0 or an error, which stops the server from starting. */
    int (*thread_init)(int index, void **thread_ctx, void *arg);
    void (*thread_dispose)(void *thread_ctx, void *arg);
    /* /readyz: 200 when this returns true (NULL = always ready while not draining). Called on a
     * handler thread with that thread's ctx. */
    bool (*ready)(void *thread_ctx, void *arg, const char **why);
    void *arg;
    /* When set, /healthz, /readyz and /metrics are not served: only the routes added (a server
     * that mimics another product's API, such as the Dapr sidecar double). */
    bool no_builtin_routes;
} http_server_config_t;

/* new: caller frees with http_server_free. NULL when cfg is invalid. */
http_server_t *http_server_new(const http_server_config_t *cfg);
/* Stops and joins a started server first; NULL is a no-op. */
void http_server_free(http_server_t *srv);

/* Adds a route (before http_server_start); pattern segments "{name}" match one non-empty path
 * segment (see router.h for the pattern syntax). Routes are matched in the order added; a path
 * that matches some route but not the method → 405 with Allow. /healthz, /readyz and /metrics
 * are built in unless cfg.no_builtin_routes. TODO_EBAD_REQUEST for a malformed pattern,
 * TODO_ECONFLICT for a duplicate. */
int http_server_route(http_server_t *srv, const char *method, const char *pattern,
                      http_handler_fn fn, void *arg) TODO_WUR;

/* Binds the port (all loops) and returns once every handler thread ran thread_init; the loops
 * and workers run in their own threads. Ignores SIGPIPE when it still has its default action. */
int http_server_start(http_server_t *srv) TODO_WUR;
/* The bound port (useful when started with port 0). */
int http_server_port(const http_server_t *srv);
/* Asks the server to stop: new connections are refused at once, /readyz turns 503, listeners
 * close, in-flight requests get drain_ms to finish, idle connections are closed. Async-signal-
 * safe; calling it again is harmless. */
void http_server_stop(http_server_t *srv);
/* Waits until the loops have ended after a stop (returns at once when never started). */
void http_server_join(http_server_t *srv);
/* True once http_server_stop was called. */
bool http_server_stopping(const http_server_t *srv);

/* Request helpers. */
/* Header value (NUL-terminated, in the request's memory) or NULL; name is case-insensitive.
 * "Host" gives the authority; Content-Length, Transfer-Encoding, Expect and Upgrade are taken
 * by h2o and read as NULL (body_len has the length). */
const char *http_req_header(http_req_t *req, const char *name);
/* Decoded value ('+' and %XX) of the first query parameter name, "" when it has no '=', or NULL
 * when absent (a copy in the request's memory). */
const char *http_req_query_param(http_req_t *req, const char *name);
/* True when the query has the parameter name more than once. */
bool http_req_query_repeated(http_req_t *req, const char *name);
/* True when the request's Content-Type is application/json (parameters allowed). */
bool http_req_is_json(http_req_t *req);

/* Adds a response header (copied). Call before http_respond_*. */
void http_add_header(http_req_t *req, const char *name, const char *value);
/* Responds with status (200–599, else 500) and body (copied); content_type may be NULL for no
 * body. Adds X-Request-Id. TODO_EINTERNAL (and nothing sent) when already answered. */
int http_respond(http_req_t *req, int status, const char *content_type, const char *body,
                 size_t len);
/* Responds with the JSON value (borrowed) as application/json. */
int http_respond_json(http_req_t *req, int status, const json_t *v);
/* Responds with problem+json for rc: type, title, status, detail, code, and errors when given
 * (borrowed array of {field, message}). detail may be NULL (the title is used). */
int http_send_error(http_req_t *req, int rc, const char *detail, const json_t *errors);

#endif
