/* Tests of common/src/http_server.c over real HTTP: a server on 127.0.0.1 (port 0, two loop
 * threads; the whole suite once with the handlers on the loops and once on three workers) driven
 * with libcurl, and a raw socket where pipelining makes the drain deterministic. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "todo/buf.h"
#include "todo/http_server.h"
#include "todo/json.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

#define MAX_BODY  1024
#define BIG_BODY  (128 * 1024) /* beyond h2o's own limit, which is 64 KiB above ours */
#define DRAIN_MS  5000
#define WAIT_MS   10000 /* the longest any step may take before the test gives up on it */
#define TAG_ROUTE "/api/{user_id}/tasks/{id}/tags/{tag_id}"

static http_server_t *srv;
static int port;
static CURL *keep; /* one handle whose connection stays open across requests */
static atomic_int inits, disposes;
static atomic_bool not_ready;
static int handler_threads; /* loops or workers: where thread_init runs */

/* ---- the server side ---------------------------------------------------------------------- */

static int thread_init(int index, void **ctx, void *arg)
{
    int *i = malloc(sizeof(*i));
    if (!i)
        return TODO_EINTERNAL;
    *i = index;
    *ctx = i;
    atomic_fetch_add(&inits, 1);
    return 0;
}

static void thread_dispose(void *ctx, void *arg)
{
    free(ctx);
    atomic_fetch_add(&disposes, 1);
}

static bool ready(void *ctx, void *arg, const char **why)
{
    if (atomic_load(&not_ready)) {
        *why = "the test says not yet";
        return false;
    }
    return true;
}

/* Echoes what the server handed the handler as JSON. */
static int echo_handler(http_req_t *req)
{
    json_t *o = json_object(), *params = json_array();
    const char *a = http_req_query_param(req, "a");
    for (size_t i = 0; i < req->nparams; i++)
        json_array_append_new(params, json_string(req->params[i]));
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "arg", json_string(req->route_arg));
    json_object_set_new(o, "a", a ? json_string(a) : json_null());
    json_object_set_new(o, "a_repeated", json_boolean(http_req_query_repeated(req, "a")));
    json_object_set_new(o, "missing", json_boolean(http_req_query_param(req, "zz") == NULL));
    json_object_set_new(o, "path", json_string(req->path));
    json_object_set_new(o, "query", json_string(req->query));
    json_object_set_new(o, "thread", json_integer(*(int *)req->thread_ctx));
    json_object_set_new(o, "traceparent", json_string(req->traceparent));
    json_object_set_new(o, "request_id", json_string(req->request_id));
    const char *ua = http_req_header(req, "X-Test");
    json_object_set_new(o, "x_test", ua ? json_string(ua) : json_null());
    http_add_header(req, "X-Echo", "yes");
    int rc = http_respond_json(req, 200, o);
    json_decref(o);
    return rc;
}

static int delete_handler(http_req_t *req)
{
    return http_respond(req, 204, NULL, NULL, 0);
}

static int body_handler(http_req_t *req)
{
    char head[64];
    snprintf(head, sizeof(head), "%zu %s ", req->body_len,
             http_req_is_json(req) ? "json" : "other");
    buf_t b;
    buf_init(&b, 0);
    int rc = buf_puts(&b, head);
    if (rc == 0)
        rc = buf_append(&b, req->body, req->body_len);
    if (rc == 0)
        rc = http_respond(req, 200, "text/plain", b.data, b.len);
    buf_dispose(&b);
    return rc;
}

/* Fails with the error code named in the path, without responding. */
static int fail_handler(http_req_t *req)
{
    return strcmp(req->params[0], "conflict") == 0 ? TODO_ECONFLICT
           : strcmp(req->params[0], "gone") == 0   ? TODO_EUNAVAILABLE
                                                   : TODO_EINTERNAL;
}

static int invalid_handler(http_req_t *req)
{
    json_errors_t e;
    json_errors_init(&e);
    json_errors_add(&e, "title", "must not be empty");
    int rc = http_send_error(req, TODO_EVALIDATION_ERROR, "some fields are invalid", e.list);
    json_errors_dispose(&e);
    return rc;
}

static int silent_handler(http_req_t *req)
{
    return 0;
}

static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cond;
static bool slow_entered, slow_released;

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Blocks its thread until the test releases it (or gives up waiting). */
static int slow_handler(http_req_t *req)
{
    struct timespec until = deadline_in(WAIT_MS);
    pthread_mutex_lock(&slow_lock);
    slow_entered = true;
    pthread_cond_broadcast(&slow_cond);
    while (!slow_released && pthread_cond_timedwait(&slow_cond, &slow_lock, &until) == 0)
        ;
    bool released = slow_released;
    pthread_mutex_unlock(&slow_lock);
    return released ? http_respond(req, 200, "text/plain", "slow done", 9) : TODO_EUNAVAILABLE;
}

/* Waits until the slow handler runs; false after WAIT_MS. */
static bool wait_slow_entered(void)
{
    struct timespec until = deadline_in(WAIT_MS);
    pthread_mutex_lock(&slow_lock);
    while (!slow_entered && pthread_cond_timedwait(&slow_cond, &slow_lock, &until) == 0)
        ;
    bool entered = slow_entered;
    pthread_mutex_unlock(&slow_lock);
    return entered;
}

static void release_slow(void)
{
    pthread_mutex_lock(&slow_lock);
    slow_released = true;
    pthread_cond_broadcast(&slow_cond);
    pthread_mutex_unlock(&slow_lock);
}

/* ---- the client side ---------------------------------------------------------------------- */

typedef struct {
    CURLcode code;
    long status;
    buf_t headers;
    buf_t body;
} resp_t;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* One request; extra is a NULL-terminated list of header lines. Uses keep when reuse is set,
 * else a fresh handle (and connection). */
static void request(const char *method, const char *path, const char *body, size_t len,
                    const char *const *extra, bool reuse, resp_t *r)
{
    CURL *c = reuse ? keep : curl_easy_init();
    struct curl_slist *hl = NULL;
    char url[512];

    buf_init(&r->headers, 0);
    buf_init(&r->body, 0);
    r->status = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    for (; extra && *extra; extra++)
        hl = curl_slist_append(hl, *extra);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    r->code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    if (!reuse)
        curl_easy_cleanup(c);
}

static void get(const char *path, resp_t *r)
{
    request("GET", path, NULL, 0, NULL, true, r);
}

static void resp_dispose(resp_t *r)
{
    buf_dispose(&r->headers);
    buf_dispose(&r->body);
}

/* The value of the response header name (the last one), copied into out; NULL when absent. */
static const char *header(const resp_t *r, const char *name, char *out, size_t size)
{
    const char *found = NULL;
    size_t n = strlen(name), flen = 0;
    for (const char *p = r->headers.data; p && *p;) {
        const char *end = strstr(p, "\r\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
            found = p + n + 1;
            flen = len - n - 1;
            while (flen && *found == ' ') {
                found++;
                flen--;
            }
        }
        p += len + (end ? 2 : 0);
    }
    if (!found)
        return NULL;
    snprintf(out, size, "%.*s", (int)flen, found);
    return out;
}

static json_t *body_json(const resp_t *r)
{
    json_t *v = NULL;
    if (json_parse(r->body.data, r->body.len, true, &v) != 0) {
        fprintf(stderr, "not a JSON object: %s\n", r->body.data);
        return NULL;
    }
    return v;
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Checks a problem+json response: status, code, type, title, detail and content type. */
static void check_problem(const resp_t *r, int status, const char *code, const char *type,
                          const char *detail)
{
    char ct[128];
    CHECK_INT(r->status, status);
    CHECK_STR(header(r, "content-type", ct, sizeof(ct)), "application/problem+json");
    json_t *p = body_json(r);
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK_STR(jstr(p, "type"), type);
    CHECK_STR(jstr(p, "code"), code);
    CHECK(jstr(p, "title") && strlen(jstr(p, "title")) > 0);
    CHECK_INT(json_integer_value(json_object_get(p, "status")), status);
    if (detail)
        CHECK_STR(jstr(p, "detail"), detail);
    else
        CHECK(jstr(p, "detail") && strlen(jstr(p, "detail")) > 0);
    json_decref(p);
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void test_routing(void)
{
    resp_t r;
    char h[128];

    get("/api/u%201/tasks/42/tags/a%2Fb?a=x%20y+z&b=2", &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "content-type", h, sizeof(h)), "application/json");
    CHECK_STR(header(&r, "x-echo", h, sizeof(h)), "yes");
    json_t *o = body_json(&r);
    CHECK(o != NULL);
    if (o) {
        json_t *p = json_object_get(o, "params");
        CHECK_INT(json_array_size(p), 3);
        CHECK_STR(json_string_value(json_array_get(p, 0)), "u 1");
        CHECK_STR(json_string_value(json_array_get(p, 1)), "42");
        CHECK_STR(json_string_value(json_array_get(p, 2)), "a/b");
        CHECK_STR(jstr(o, "arg"), "tag-arg");
        CHECK_STR(jstr(o, "a"), "x y z");
        CHECK(json_is_false(json_object_get(o, "a_repeated")));
        CHECK(json_is_true(json_object_get(o, "missing")));
        CHECK_STR(jstr(o, "query"), "a=x%20y+z&b=2");
        CHECK_STR(jstr(o, "path"), "/api/u 1/tasks/42/tags/a/b");
        CHECK(json_integer_value(json_object_get(o, "thread")) >= 0 &&
              json_integer_value(json_object_get(o, "thread")) < handler_threads);
        CHECK(jstr(o, "x_test") == NULL);
        json_decref(o);
    }
    resp_dispose(&r);

    get("/api/u/tasks/1/tags/2?a=1&a=2&=&b", &r);
    CHECK_INT(r.status, 200);
    o = body_json(&r);
    if (o) {
        CHECK_STR(jstr(o, "a"), "1");
        CHECK(json_is_true(json_object_get(o, "a_repeated")));
        json_decref(o);
    }
    resp_dispose(&r);

    const char *const xt[] = {"X-Test: hello", NULL};
    request("GET", "/api/u/tasks/1/tags/2", NULL, 0, xt, true, &r);
    o = body_json(&r);
    if (o) {
        CHECK_STR(jstr(o, "x_test"), "hello");
        json_decref(o);
    }
    resp_dispose(&r);

    /* 204 without a body */
    request("DELETE", "/api/u/tasks/1/tags/2", NULL, 0, NULL, true, &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.body.len, 0);
    CHECK(header(&r, "x-request-id", h, sizeof(h)) != NULL);
    resp_dispose(&r);

    /* a parameter too long for the server's parameter storage is not found */
    char path[2200];
    int n = snprintf(path, sizeof(path), "/api/");
    memset(path + n, 'u', 1100);
    snprintf(path + n + 1100, sizeof(path) - (size_t)n - 1100, "/tasks/1/tags/2");
    get(path, &r);
    check_problem(&r, 404, "NOT_FOUND", "urn:todo:problem:not-found", NULL);
    resp_dispose(&r);
}

static void test_errors(void)
{
    resp_t r;
    char h[128];

    get("/nope/at/all", &r);
    check_problem(&r, 404, "NOT_FOUND", "urn:todo:problem:not-found", NULL);
    CHECK(header(&r, "x-request-id", h, sizeof(h)) != NULL);
    resp_dispose(&r);

    get("/api/u/tasks/1/tags/%zz", &r);
    check_problem(&r, 404, "NOT_FOUND", "urn:todo:problem:not-found", NULL);
    resp_dispose(&r);

    request("POST", "/api/u/tasks/1/tags/2", "{}", 2, NULL, true, &r);
    check_problem(&r, 405, "METHOD_NOT_ALLOWED", "urn:todo:problem:method-not-allowed", NULL);
    CHECK_STR(header(&r, "allow", h, sizeof(h)), "GET, HEAD, DELETE");
    resp_dispose(&r);

    request("BREW", "/healthz", NULL, 0, NULL, true, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(header(&r, "allow", h, sizeof(h)), "GET, HEAD");
    resp_dispose(&r);

    /* HEAD: the GET route's headers, no body (and the connection stays usable) */
    request("HEAD", "/healthz", NULL, 0, NULL, true, &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "content-length", h, sizeof(h)), "15");
    CHECK_INT(r.body.len, 0);
    resp_dispose(&r);
    get("/healthz", &r);
    CHECK_STR(r.body.data, "{\"status\":\"ok\"}");
    resp_dispose(&r);

    get("/fail/conflict", &r);
    check_problem(&r, 409, "CONFLICT", "urn:todo:problem:conflict", NULL);
    resp_dispose(&r);
    get("/fail/gone", &r);
    check_problem(&r, 503, "UNAVAILABLE", "urn:todo:problem:unavailable", NULL);
    resp_dispose(&r);

    get("/silent", &r);
    check_problem(&r, 500, "INTERNAL", "urn:todo:problem:internal", NULL);
    resp_dispose(&r);

    get("/invalid", &r);
    check_problem(&r, 422, "VALIDATION_ERROR", "urn:todo:problem:validation-error",
                  "some fields are invalid");
    json_t *p = body_json(&r);
    if (p) {
        json_t *errors = json_object_get(p, "errors");
        CHECK_INT(json_array_size(errors), 1);
        CHECK_STR(jstr(json_array_get(errors, 0), "field"), "title");
        CHECK_STR(jstr(json_array_get(errors, 0), "message"), "must not be empty");
        json_decref(p);
    }
    resp_dispose(&r);
}

static void test_body_cap(void)
{
    resp_t r;
    char *body = malloc(BIG_BODY);
    memset(body, 'x', BIG_BODY);
    const char *const json_ct[] = {"Content-Type: application/json; charset=utf-8", NULL};

    /* exactly at the cap: accepted */
    request("POST", "/echo", body, MAX_BODY, json_ct, true, &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body.len, strlen("1024 json ") + MAX_BODY);
    CHECK(strncmp(r.body.data, "1024 json xxx", 13) == 0);
    resp_dispose(&r);

    /* one byte over: 413 problem+json */
    request("POST", "/echo", body, MAX_BODY + 1, NULL, true, &r);
    check_problem(&r, 413, "PAYLOAD_TOO_LARGE", "urn:todo:problem:payload-too-large",
                  "the request body exceeds 1024 bytes");
    resp_dispose(&r);

    /* a few times over: still ours */
    request("POST", "/echo", body, 8 * MAX_BODY, NULL, true, &r);
    check_problem(&r, 413, "PAYLOAD_TOO_LARGE", "urn:todo:problem:payload-too-large", NULL);
    resp_dispose(&r);

    /* far over: h2o's own limit answers before reading it all */
    request("POST", "/echo", body, BIG_BODY, NULL, false, &r);
    CHECK_INT(r.status, 413);
    resp_dispose(&r);

    /* an empty body */
    request("POST", "/echo", "", 0, NULL, true, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body.data, "0 other ");
    resp_dispose(&r);
    free(body);
}

static void test_request_id_and_trace(void)
{
    resp_t r;
    char h[128];

    const char *const good[] = {"X-Request-Id: abc.DEF_123-x", NULL};
    request("GET", "/api/u/tasks/1/tags/2", NULL, 0, good, true, &r);
    CHECK_STR(header(&r, "x-request-id", h, sizeof(h)), "abc.DEF_123-x");
    json_t *o = body_json(&r);
    if (o) {
        CHECK_STR(jstr(o, "request_id"), "abc.DEF_123-x");
        json_decref(o);
    }
    resp_dispose(&r);

    const char *const bad[] = {"X-Request-Id: not ok!", NULL};
    request("GET", "/healthz", NULL, 0, bad, true, &r);
    CHECK(header(&r, "x-request-id", h, sizeof(h)) && todo_uuid_valid(h));
    resp_dispose(&r);

    char long_id[100] = "X-Request-Id: ";
    memset(long_id + strlen(long_id), 'a', 65);
    const char *const too_long[] = {long_id, NULL};
    request("GET", "/healthz", NULL, 0, too_long, true, &r);
    CHECK(header(&r, "x-request-id", h, sizeof(h)) && todo_uuid_valid(h));
    resp_dispose(&r);

    get("/nope", &r); /* a new id on errors too */
    CHECK(header(&r, "x-request-id", h, sizeof(h)) && todo_uuid_valid(h));
    resp_dispose(&r);

    /* a valid traceparent: same trace, new span, same flags */
    const char *const tp[] = {
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL};
    request("GET", "/api/u/tasks/1/tags/2", NULL, 0, tp, true, &r);
    o = body_json(&r);
    if (o) {
        const char *t = jstr(o, "traceparent");
        CHECK(t && strlen(t) == 55);
        CHECK(t && strncmp(t, "00-0af7651916cd43dd8448eb211c80319c-", 36) == 0);
        CHECK(t && strncmp(t + 36, "b7ad6b7169203331", 16) != 0);
        CHECK(t && strcmp(t + 52, "-01") == 0);
        json_decref(o);
    }
    resp_dispose(&r);

    /* invalid ones (all-zero trace id, upper case, short): a fresh trace */
    const char *const invalid[] = {
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "traceparent: %s", invalid[i]);
        const char *const hdrs[] = {line, NULL};
        request("GET", "/api/u/tasks/1/tags/2", NULL, 0, hdrs, true, &r);
        o = body_json(&r);
        if (o) {
            const char *t = jstr(o, "traceparent");
            CHECK(t && strlen(t) == 55 && strncmp(t, "00-", 3) == 0);
            CHECK(t && strncmp(t + 3, invalid[i] + 3, 32) != 0);
            json_decref(o);
        }
        resp_dispose(&r);
    }
}

static void test_health_ready(void)
{
    resp_t r;
    get("/healthz", &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body.data, "{\"status\":\"ok\"}");
    resp_dispose(&r);

    get("/readyz", &r);
    CHECK_INT(r.status, 200);
    resp_dispose(&r);

    atomic_store(&not_ready, true);
    get("/readyz", &r);
    check_problem(&r, 503, "UNAVAILABLE", "urn:todo:problem:unavailable", "the test says not yet");
    resp_dispose(&r);
    atomic_store(&not_ready, false);

    get("/readyz", &r);
    CHECK_INT(r.status, 200);
    resp_dispose(&r);
}

/* The counter line for route/method/status in text, or -1 when it is missing. */
static long counter_value(const char *text, const char *route, const char *method, int status)
{
    char line[256];
    snprintf(line, sizeof(line), "\nhttp_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} ",
             route, method, status);
    const char *p = strstr(text, line);
    return p ? strtol(p + strlen(line), NULL, 10) : -1;
}

static long histogram_count(const char *text, const char *route)
{
    char line[256];
    snprintf(line, sizeof(line), "\nhttp_request_duration_seconds_count{route=\"%s\"} ", route);
    const char *p = strstr(text, line);
    return p ? strtol(p + strlen(line), NULL, 10) : -1;
}

static void test_metrics(void)
{
    resp_t r, m1, m2;
    char h[128];

    get("/metrics", &m1);
    CHECK_INT(m1.status, 200);
    CHECK(header(&m1, "content-type", h, sizeof(h)) &&
          strncmp(h, "text/plain; version=0.0.4", 25) == 0);
    for (int i = 0; i < 3; i++) {
        request("GET", "/api/u/tasks/1/tags/2", NULL, 0, NULL, i != 1, &r);
        resp_dispose(&r);
    }
    get("/another/unknown/path", &r);
    resp_dispose(&r);
    request("BREW", "/another/unknown/path", NULL, 0, NULL, true, &r);
    resp_dispose(&r);
    request("POST", "/api/u/tasks/1/tags/2", NULL, 0, NULL, true, &r);
    resp_dispose(&r);
    get("/metrics", &m2);
    CHECK_INT(m2.status, 200);

    const char *a = m1.body.data, *b = m2.body.data;
    CHECK(strstr(b, "# TYPE http_requests_total counter\n") != NULL);
    CHECK(strstr(b, "# TYPE http_request_duration_seconds histogram\n") != NULL);
    CHECK_INT(counter_value(b, TAG_ROUTE, "GET", 200) - counter_value(a, TAG_ROUTE, "GET", 200), 3);
    CHECK_INT(counter_value(b, TAG_ROUTE, "POST", 405) -
                  (counter_value(a, TAG_ROUTE, "POST", 405) < 0
                       ? 0
                       : counter_value(a, TAG_ROUTE, "POST", 405)),
              1);
    /* 3 GET + 1 POST on the pattern */
    CHECK_INT(histogram_count(b, TAG_ROUTE) - histogram_count(a, TAG_ROUTE), 4);
    CHECK_INT(counter_value(b, "unmatched", "GET", 404) - counter_value(a, "unmatched", "GET", 404),
              1);
    CHECK_INT(counter_value(b, "unmatched", "other", 404) -
                  (counter_value(a, "unmatched", "other", 404) < 0
                       ? 0
                       : counter_value(a, "unmatched", "other", 404)),
              1);
    CHECK_INT(histogram_count(b, "unmatched") - histogram_count(a, "unmatched"), 2);
    /* a request is counted just before its response: the first /metrics did not see itself
     * (the counters are the process's: the suite's first run starts them) */
    long before = counter_value(a, "/metrics", "GET", 200);
    if (handler_threads == 2) /* the first run */
        CHECK_INT(before, -1);
    CHECK_INT(counter_value(b, "/metrics", "GET", 200), before < 0 ? 1 : before + 1);
    /* labelled by pattern: no raw paths */
    CHECK(strstr(b, "/another/unknown/path") == NULL);
    CHECK(strstr(b, "/api/u/tasks") == NULL);
    CHECK(strstr(b, "http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}") !=
          NULL);
    resp_dispose(&m1);
    resp_dispose(&m2);
}

/* ---- the drain, over one raw connection with two pipelined requests ----------------------- */

static int connect_local(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Reads until the peer closes, at most WAIT_MS; false on timeout or error. */
static bool read_to_eof(int fd, buf_t *out)
{
    int64_t deadline = time_mono_usec() / 1000 + WAIT_MS;
    for (;;) {
        int64_t left = deadline - time_mono_usec() / 1000;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        char b[4096];
        ssize_t n = read(fd, b, sizeof(b));
        if (n == 0)
            return true;
        if (n < 0 || buf_append(out, b, (size_t)n) != 0)
            return false;
    }
}

static void test_drain(void)
{
    static const char pipelined[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
    resp_t r;
    buf_t got;

    /* the keep-alive handle's connection is open and idle while the server stops */
    get("/healthz", &r);
    CHECK_INT(r.status, 200);
    resp_dispose(&r);

    int fd = connect_local();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(write(fd, pipelined, sizeof(pipelined) - 1), (long long)(sizeof(pipelined) - 1));
    CHECK(wait_slow_entered());
    CHECK(!http_server_stopping(srv));
    http_server_stop(srv);
    CHECK(http_server_stopping(srv));
    /* while a loop is still busy with the request, new connections are refused at once */
    request("GET", "/healthz", NULL, 0, NULL, false, &r);
    CHECK_INT(r.code, CURLE_COULDNT_CONNECT);
    resp_dispose(&r);
    release_slow();

    buf_init(&got, 0);
    CHECK(read_to_eof(fd, &got));
    close(fd);
    /* the request in flight finished; the one behind it saw the server stopping */
    const char *second = strstr(got.data, "HTTP/1.1 503");
    CHECK(strncmp(got.data, "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(got.data, "\r\n\r\nslow done") != NULL);
    CHECK(second != NULL);
    CHECK(second && strstr(second, "application/problem+json") != NULL);
    CHECK(second && strstr(second, "\"detail\":\"shutting down\"") != NULL);
    CHECK(second && strcasestr(second, "connection: close") != NULL);
    buf_dispose(&got);

    int64_t t0 = time_mono_usec();
    http_server_join(srv);
    int64_t waited_ms = (time_mono_usec() - t0) / 1000;
    /* idle connections (like keep's) do not hold the drain until its deadline */
    CHECK(waited_ms < DRAIN_MS);
    CHECK_INT(atomic_load(&disposes), handler_threads);

    /* nothing listens any more */
    get("/healthz", &r);
    CHECK_INT(r.code, CURLE_COULDNT_CONNECT);
    resp_dispose(&r);
}

static http_server_config_t base_config(void)
{
    http_server_config_t cfg = {
        .service = "test",
        .host = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .max_body = MAX_BODY,
        .drain_ms = DRAIN_MS,
        .thread_init = thread_init,
        .thread_dispose = thread_dispose,
        .ready = ready,
    };
    return cfg;
}

static int failing_init(int index, void **ctx, void *arg)
{
    return index == 1 ? TODO_EUNAVAILABLE : 0;
}

/* Configuration and life-cycle errors. */
static void test_life_cycle(void)
{
    http_server_config_t cfg = base_config();
    cfg.threads = 0;
    CHECK(http_server_new(&cfg) == NULL);
    cfg = base_config();
    cfg.port = 70000;
    CHECK(http_server_new(&cfg) == NULL);
    CHECK(http_server_new(NULL) == NULL);
    http_server_free(NULL);

    /* a loop whose set-up fails stops the start */
    cfg = base_config();
    cfg.thread_init = failing_init;
    cfg.thread_dispose = NULL;
    http_server_t *s = http_server_new(&cfg);
    CHECK(s != NULL);
    CHECK_INT(http_server_start(s), TODO_EUNAVAILABLE);
    http_server_free(s);

    /* freed without being started */
    s = http_server_new(&cfg);
    CHECK(s != NULL);
    CHECK_INT(http_server_route(s, "GET", "/x/{id}", silent_handler, NULL), 0);
    CHECK_INT(http_server_route(s, "GET", "/x/{other}", silent_handler, NULL), TODO_ECONFLICT);
    CHECK_INT(http_server_route(s, "GET", "/healthz", silent_handler, NULL), TODO_ECONFLICT);
    CHECK_INT(http_server_route(s, "GET", "no-slash", silent_handler, NULL), TODO_EBAD_REQUEST);
    CHECK_INT(http_server_route(s, "GET", "/y", NULL, NULL), TODO_EBAD_REQUEST);
    http_server_free(s);
}

static int no_content_handler(http_req_t *req)
{
    return http_respond(req, 204, NULL, NULL, 0);
}

/* no_builtin_routes: /healthz, /readyz and /metrics are the application's to define or leave
 * out (unknown paths are still answered with problem+json 404). */
static void test_no_builtin_routes(void)
{
    http_server_config_t cfg = base_config();
    resp_t r;
    int saved = port;

    cfg.no_builtin_routes = true;
    cfg.thread_init = NULL; /* the other tests count the main server's loop set-ups */
    cfg.thread_dispose = NULL;
    cfg.ready = NULL;
    http_server_t *s = http_server_new(&cfg);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_INT(http_server_route(s, "GET", "/healthz", no_content_handler, NULL), 0);
    CHECK_INT(http_server_start(s), 0);
    port = http_server_port(s);
    request("GET", "/healthz", NULL, 0, NULL, false, &r);
    CHECK_INT(r.status, 204);
    resp_dispose(&r);
    request("GET", "/metrics", NULL, 0, NULL, false, &r);
    check_problem(&r, 404, "NOT_FOUND", "urn:todo:problem:not-found", NULL);
    resp_dispose(&r);
    request("GET", "/readyz", NULL, 0, NULL, false, &r);
    CHECK_INT(r.status, 404);
    resp_dispose(&r);
    http_server_free(s);
    port = saved;
}

/* With workers, a handler that blocks holds up neither its loop nor the other workers, and a
 * client that goes away while its request is at a worker leaves nothing behind. */
static void test_workers(void)
{
    static const char slow[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    resp_t r;

    int fd = connect_local();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(write(fd, slow, sizeof(slow) - 1), (long long)(sizeof(slow) - 1));
    CHECK(wait_slow_entered());
    /* fresh connections land on both loops: every one is answered while /slow blocks */
    for (int i = 0; i < 20; i++) {
        request("GET", i % 2 ? "/healthz" : "/api/u/tasks/1/tags/2", NULL, 0, NULL, false, &r);
        CHECK_INT(r.code, CURLE_OK);
        CHECK_INT(r.status, 200);
        resp_dispose(&r);
    }
    request("GET", "/readyz", NULL, 0, NULL, false, &r);
    CHECK_INT(r.status, 200);
    resp_dispose(&r);
    /* the client hangs up; the worker's response then has no one to go to */
    close(fd);
    release_slow();
    for (int i = 0; i < 4; i++) {
        request("GET", "/api/u/tasks/1/tags/2", NULL, 0, NULL, false, &r);
        CHECK_INT(r.status, 200);
        resp_dispose(&r);
    }
    pthread_mutex_lock(&slow_lock);
    slow_entered = slow_released = false;
    pthread_mutex_unlock(&slow_lock);
}

/* The suite against one server whose handlers run on the loops (workers 0) or on workers. */
static void run_suite(int workers)
{
    http_server_config_t cfg = base_config();
    cfg.workers = workers;
    handler_threads = workers ? workers : cfg.threads;
    atomic_store(&inits, 0);
    atomic_store(&disposes, 0);
    slow_entered = slow_released = false;
    srv = http_server_new(&cfg);
    CHECK(srv != NULL);
    if (!srv)
        return;
    CHECK_INT(http_server_route(srv, "GET", TAG_ROUTE, echo_handler, "tag-arg"), 0);
    CHECK_INT(http_server_route(srv, "DELETE", TAG_ROUTE, delete_handler, NULL), 0);
    CHECK_INT(http_server_route(srv, "POST", "/echo", body_handler, NULL), 0);
    CHECK_INT(http_server_route(srv, "GET", "/fail/{code}", fail_handler, NULL), 0);
    CHECK_INT(http_server_route(srv, "GET", "/invalid", invalid_handler, NULL), 0);
    CHECK_INT(http_server_route(srv, "GET", "/silent", silent_handler, NULL), 0);
    CHECK_INT(http_server_route(srv, "GET", "/slow", slow_handler, NULL), 0);
    CHECK_INT(http_server_start(srv), 0);
    CHECK_INT(atomic_load(&inits), handler_threads);
    port = http_server_port(srv);
    CHECK(port > 0);
    /* routes are fixed once started */
    CHECK(http_server_route(srv, "GET", "/late", silent_handler, NULL) != 0);

    test_routing();
    test_errors();
    test_body_cap();
    test_request_id_and_trace();
    test_health_ready();
    test_metrics();
    if (workers > 0)
        test_workers();
    test_drain();

    http_server_free(srv);
    srv = NULL;
}

int main(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&slow_cond, &ca);
    pthread_condattr_destroy(&ca);
    log_init("test", LOG_LEVEL_DEBUG);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    keep = curl_easy_init();

    test_life_cycle();
    test_no_builtin_routes();
    run_suite(0);
    run_suite(3);

    curl_easy_cleanup(keep);
    curl_global_cleanup();
    pthread_cond_destroy(&slow_cond);
    return check_exit();
}
