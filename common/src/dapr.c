/* The Dapr sidecar client over one libcurl easy handle (kept-alive connection); see dapr.h. The
 * section numbers cited are those of DAPR-CONTRACT.md. */
#include "todo/dapr.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define DAPR_DEFAULT_TIMEOUT_MS 5000
#define DAPR_DEFAULT_RETRIES    3
#define DAPR_RESPONSE_MAX       (4u << 20) /* daprd's own default body limit (§0.2) */
#define DAPR_RETRY_BASE_MS      50
#define DAPR_URL_MAX            2048

struct dapr {
    CURL *curl;
    char *base; /* "http://host:port" */
    char *token_header;
    long timeout_ms;
    int retries;
    bool quiet; /* polling: failures are expected, not logged */
    long status;
    char error_code[DAPR_ERROR_CODE_MAX];
    char etag[DAPR_ETAG_MAX];
    buf_t body;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

dapr_t *dapr_new(const dapr_config_t *cfg)
{
    dapr_t *d = xcalloc(1, sizeof(*d));
    d->curl = curl_easy_init();
    if (!d->curl) {
        log_error("dapr", "cannot create a libcurl handle");
        free(d);
        return NULL;
    }
    d->base =
        xasprintf("http://%s:%d", cfg->host && *cfg->host ? cfg->host : "127.0.0.1", cfg->port);
    if (cfg->api_token && *cfg->api_token)
        d->token_header = xasprintf("dapr-api-token: %s", cfg->api_token);
    d->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DAPR_DEFAULT_TIMEOUT_MS;
    d->retries = cfg->retries > 0 ? cfg->retries : cfg->retries == 0 ? DAPR_DEFAULT_RETRIES : 0;
    buf_init(&d->body, DAPR_RESPONSE_MAX);
    return d;
}

void dapr_free(dapr_t *d)
{
    if (!d)
        return;
    curl_easy_cleanup(d->curl);
    free(d->base);
    free(d->token_header);
    buf_dispose(&d->body);
    free(d);
}

long dapr_status(const dapr_t *d)
{
    return d->status;
}

const char *dapr_error_code(const dapr_t *d)
{
    return d->error_code;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    dapr_t *d = arg;
    return buf_append(&d->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    dapr_t *d = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        size_t i = 5, end = len;
        while (i < end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (end > i && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
            end--;
        snprintf(d->etag, sizeof(d->etag), "%.*s", (int)(end - i), p + i);
    }
    return len;
}

/* Errors where the request cannot have reached the sidecar's handler, or where a kept-alive
 * connection had been closed under us: safe and useful to try again. */
static bool transport_retryable(CURLcode c)
{
    return c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST || c == CURLE_SEND_ERROR ||
           c == CURLE_GOT_NOTHING || c == CURLE_RECV_ERROR;
}

static int status_rc(long status)
{
    if (status >= 200 && status < 300)
        return 0;
    if (status == 404)
        return TODO_ENOT_FOUND;
    if (status == 409)
        return TODO_ECONFLICT;
    if (status == 401 || status == 403)
        return TODO_EFORBIDDEN;
    if (status >= 400 && status < 500)
        return TODO_EBAD_REQUEST;
    return TODO_EUNAVAILABLE;
}

/* Reads errorCode of a JSON error body (§0.1). */
static void read_error_code(dapr_t *d)
{
    json_t *o = NULL;
    const char *code = NULL;
    d->error_code[0] = '\0';
    if (d->body.len == 0 || json_parse(d->body.data, d->body.len, true, &o) != 0)
        return;
    if (json_get_string(o, "errorCode", &code, NULL) == JSON_FIELD_VALUE)
        snprintf(d->error_code, sizeof(d->error_code), "%s", code);
    json_decref(o);
}

/* One API call: method on path (already escaped) with an optional body. headers is a
 * NULL-terminated list of extra header lines (may be NULL). The response body lands in d->body. */
static int call(dapr_t *d, const char *method, const char *path, const char *content_type,
                const char *body, size_t len, const char *const *headers)
{
    char url[DAPR_URL_MAX], ct[128];
    struct curl_slist *hl = NULL;
    CURLcode code = CURLE_OK;
    int rc = TODO_EUNAVAILABLE;

    if ((size_t)snprintf(url, sizeof(url), "%s%s", d->base, path) >= sizeof(url)) {
        log_error("dapr", "request path too long (%zu bytes)", strlen(path));
        return TODO_EBAD_REQUEST;
    }
    if (d->token_header)
        hl = curl_slist_append(hl, d->token_header);
    if (content_type) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        hl = curl_slist_append(hl, ct);
    }
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    for (; headers && *headers; headers++)
        hl = curl_slist_append(hl, *headers);

    for (int attempt = 0; attempt <= d->retries; attempt++) {
        if (attempt > 0)
            sleep_ms(DAPR_RETRY_BASE_MS << (attempt - 1));
        buf_reset(&d->body);
        d->etag[0] = d->error_code[0] = '\0';
        d->status = 0;
        CURL *c = d->curl;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, d->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, d->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
        if (strcmp(method, "GET") == 0) {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        } else if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        code = curl_easy_perform(c);
        if (code == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->status);
            rc = status_rc(d->status);
            if (rc != 0)
                read_error_code(d);
            break;
        }
        if (!transport_retryable(code))
            break;
    }
    if (d->quiet) {
        rc = code != CURLE_OK ? TODO_EUNAVAILABLE : rc;
    } else if (code != CURLE_OK) {
        log_warn("dapr", "%s %s: %s", method, path, curl_easy_strerror(code));
        rc = code == CURLE_WRITE_ERROR ? TODO_EPAYLOAD_TOO_LARGE : TODO_EUNAVAILABLE;
    } else if (rc != 0 && d->status != 404) {
        log_warn("dapr", "%s %s: HTTP %ld %s", method, path, d->status,
                 d->error_code[0] ? d->error_code : "");
    }
    curl_slist_free_all(hl);
    return rc;
}

/* Appends s percent-escaped (every byte outside the URI unreserved set). */
static int put_escaped(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (; *s && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            rc = buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 3);
        }
    }
    return rc;
}

/* prefix + escaped(a) [+ "/" + escaped(b)] into b (limit DAPR_URL_MAX). */
static int make_path(buf_t *b, const char *prefix, const char *a, const char *second)
{
    buf_init(b, DAPR_URL_MAX);
    int rc = buf_puts(b, prefix);
    if (rc == 0)
        rc = put_escaped(b, a);
    if (rc == 0 && second) {
        rc = buf_puts(b, "/");
        if (rc == 0)
            rc = put_escaped(b, second);
    }
    return rc;
}

int dapr_publish(dapr_t *d, const char *pubsub, const char *topic, const char *event, size_t len,
                 const char *key, const char *traceparent)
{
    buf_t path;
    char tp[128];
    const char *headers[2] = {NULL, NULL};
    int rc = make_path(&path, "/v1.0/publish/", pubsub, topic);
    if (rc == 0 && key) {
        rc = buf_puts(&path, "?metadata.partitionKey=");
        if (rc == 0)
            rc = put_escaped(&path, key);
    }
    if (traceparent && *traceparent && strlen(traceparent) < 100) {
        snprintf(tp, sizeof(tp), "traceparent: %s", traceparent);
        headers[0] = tp;
    }
    /* §1.3: as application/cloudevents+json the sidecar keeps our id, source and type. */
    if (rc == 0)
        rc = call(d, "POST", path.data, "application/cloudevents+json", event, len, headers);
    buf_dispose(&path);
    return rc;
}

/* Marks failed the entries that a 500 of a bulk publish names in failedEntries (§1.4); false
 * when the body does not name them. */
static bool read_failed_entries(dapr_t *d, size_t n, bool *ok)
{
    json_t *o = NULL, *failed;
    bool named = false;
    if (d->body.len == 0 || json_parse(d->body.data, d->body.len, true, &o) != 0)
        return false;
    failed = json_object_get(o, "failedEntries");
    if (json_is_array(failed)) {
        size_t i;
        json_t *e;
        for (size_t k = 0; k < n; k++)
            ok[k] = true;
        json_array_foreach(failed, i, e)
        {
            const char *id = NULL;
            char *end;
            if (json_get_string(e, "entryId", &id, NULL) != JSON_FIELD_VALUE)
                continue;
            unsigned long idx = strtoul(id, &end, 10);
            if (*end == '\0' && idx < n) {
                ok[idx] = false;
                named = true;
            }
        }
    }
    json_decref(o);
    return named;
}

int dapr_publish_bulk(dapr_t *d, const char *pubsub, const char *topic,
                      const dapr_bulk_entry_t *entries, size_t n, bool *ok)
{
    buf_t path, body;
    int rc;

    for (size_t i = 0; i < n; i++)
        ok[i] = false;
    if (n == 0)
        return 0;
    buf_init(&body, DAPR_RESPONSE_MAX);
    /* The v1.0-alpha1 path: served by every daprd since 1.10 (v1.0 only since 1.17). */
    rc = make_path(&path, "/v1.0-alpha1/publish/bulk/", pubsub, topic);
    if (rc == 0)
        rc = buf_puts(&body, "[");
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* The event is JSON text already: it goes in as it is. */
        rc = buf_printf(&body,
                        "%s{\"entryId\":\"%zu\",\"contentType\":\"application/cloudevents+json\","
                        "\"event\":",
                        i ? "," : "", i);
        if (rc == 0)
            rc = buf_append(&body, entries[i].event, entries[i].len);
        if (rc == 0 && entries[i].key) {
            json_t *k = json_string(entries[i].key);
            char *ks = k ? json_dump(k) : NULL;
            rc = ks ? buf_printf(&body, ",\"metadata\":{\"partitionKey\":%s}", ks)
                    : TODO_EBAD_REQUEST;
            free(ks);
            json_decref(k);
        }
        if (rc == 0)
            rc = buf_puts(&body, "}");
    }
    if (rc == 0)
        rc = buf_puts(&body, "]");
    if (rc == 0) {
        rc = call(d, "POST", path.data, "application/json", body.data, body.len, NULL);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++)
                ok[i] = true;
        } else if (d->status == 500 && read_failed_entries(d, n, ok)) {
            rc = TODO_EUNAVAILABLE;
        }
    }
    buf_dispose(&path);
    buf_dispose(&body);
    return rc;
}

int dapr_state_get(dapr_t *d, const char *store, const char *key, char **value,
                   char etag[DAPR_ETAG_MAX])
{
    buf_t path;
    int rc = make_path(&path, "/v1.0/state/", store, key);
    *value = NULL;
    if (etag)
        etag[0] = '\0';
    if (rc == 0)
        rc = call(d, "GET", path.data, NULL, NULL, 0, NULL);
    if (rc == 0 && d->status == 204) {
        rc = TODO_ENOT_FOUND; /* §5.1: a missing key is 204 */
    } else if (rc == 0) {
        *value = xstrndup(d->body.data ? d->body.data : "", d->body.len);
        if (etag)
            snprintf(etag, DAPR_ETAG_MAX, "%s", d->etag);
    }
    buf_dispose(&path);
    return rc;
}

int dapr_state_save(dapr_t *d, const char *store, const char *key, const char *value,
                    const char *etag, bool first_write, int ttl_seconds)
{
    buf_t path, body;
    json_t *item = json_object(), *arr = json_array(), *v = NULL;
    char *text = NULL;
    int rc = json_parse(value, strlen(value), false, &v);

    buf_init(&body, 0);
    if (rc != 0) {
        log_error("dapr", "state value for %s is not JSON", key);
        rc = TODO_EBAD_REQUEST;
        goto out;
    }
    json_object_set_new(item, "key", json_string(key));
    json_object_set_new(item, "value", v);
    v = NULL;
    if (etag)
        json_object_set_new(item, "etag", json_string(etag));
    if (first_write)
        json_object_set_new(item, "options", json_pack("{s:s}", "concurrency", "first-write"));
    if (ttl_seconds > 0) {
        char ttl[16];
        snprintf(ttl, sizeof(ttl), "%d", ttl_seconds);
        json_object_set_new(item, "metadata", json_pack("{s:s}", "ttlInSeconds", ttl));
    }
    json_array_append(arr, item);
    text = json_dump(arr);
    rc = make_path(&path, "/v1.0/state/", store, NULL);
    if (rc == 0)
        rc = call(d, "POST", path.data, "application/json", text, strlen(text), NULL);
    buf_dispose(&path);
out:
    buf_dispose(&body);
    json_decref(item);
    json_decref(arr);
    json_decref(v);
    free(text);
    return rc;
}

int dapr_state_delete(dapr_t *d, const char *store, const char *key, const char *etag)
{
    buf_t path;
    char im[DAPR_ETAG_MAX + 16];
    const char *headers[2] = {NULL, NULL};
    int rc = make_path(&path, "/v1.0/state/", store, key);
    if (etag) { /* §5.1: the ETag goes in If-Match */
        snprintf(im, sizeof(im), "If-Match: %s", etag);
        headers[0] = im;
    }
    if (rc == 0)
        rc = call(d, "DELETE", path.data, NULL, NULL, 0, headers);
    buf_dispose(&path);
    return rc;
}

int dapr_state_transaction(dapr_t *d, const char *store, const json_t *operations)
{
    buf_t path;
    json_t *req = json_pack("{s:O}", "operations", (json_t *)operations);
    char *text = req ? json_dump(req) : NULL;
    int rc = text ? make_path(&path, "/v1.0/state/", store, NULL) : TODO_EBAD_REQUEST;
    if (text) {
        if (rc == 0)
            rc = buf_puts(&path, "/transaction");
        if (rc == 0)
            rc = call(d, "POST", path.data, "application/json", text, strlen(text), NULL);
        buf_dispose(&path);
    }
    free(text);
    json_decref(req);
    return rc;
}

int dapr_job_schedule(dapr_t *d, const char *name, const json_t *job)
{
    buf_t path;
    char *text = json_dump(job);
    int rc = make_path(&path, "/v1.0-alpha1/jobs/", name, NULL);
    if (rc == 0)
        rc = call(d, "POST", path.data, "application/json", text, strlen(text), NULL);
    buf_dispose(&path);
    free(text);
    return rc;
}

int dapr_job_get(dapr_t *d, const char *name, char **json)
{
    buf_t path;
    int rc = make_path(&path, "/v1.0-alpha1/jobs/", name, NULL);
    *json = NULL;
    if (rc == 0)
        rc = call(d, "GET", path.data, NULL, NULL, 0, NULL);
    if (rc == 0)
        *json = xstrndup(d->body.data ? d->body.data : "", d->body.len);
    buf_dispose(&path);
    return rc;
}

int dapr_job_delete(dapr_t *d, const char *name)
{
    buf_t path;
    int rc = make_path(&path, "/v1.0-alpha1/jobs/", name, NULL);
    if (rc == 0)
        rc = call(d, "DELETE", path.data, NULL, NULL, 0, NULL);
    buf_dispose(&path);
    return rc;
}

int dapr_outbound_healthy(dapr_t *d)
{
    int retries = d->retries, rc;
    d->retries = 0; /* the caller polls */
    d->quiet = true;
    rc = call(d, "GET", "/v1.0/healthz/outbound", NULL, NULL, 0, NULL);
    d->retries = retries;
    d->quiet = false;
    return rc == 0 && d->status == 204 ? 0 : TODO_EUNAVAILABLE;
}

int dapr_wait_outbound(dapr_t *d, int64_t timeout_ms, const atomic_bool *stop)
{
    int64_t deadline = time_mono_usec() / 1000 + timeout_ms, delay = 100;
    int64_t said = 0;
    for (;;) {
        if (stop && atomic_load(stop))
            return TODO_EUNAVAILABLE;
        if (dapr_outbound_healthy(d) == 0)
            return 0;
        int64_t now = time_mono_usec() / 1000;
        if (timeout_ms >= 0 && now >= deadline)
            return TODO_EUNAVAILABLE;
        if (now - said >= 10000) {
            log_info("dapr", "waiting for the sidecar at %s to be ready", d->base);
            said = now;
        }
        for (int64_t slept = 0; slept < delay && !(stop && atomic_load(stop)); slept += 50)
            sleep_ms(50);
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}
