/* The HTTP channel to the app: one libcurl easy handle per thread (kept in a pthread key so that
 * connections to the app are reused), a timeout on every call, dapr-api-token from
 * APP_API_TOKEN (DAPR-CONTRACT §8.5), and the TCP probe of the app port (§8.2). */
#include "app_channel.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"

#define DEFAULT_TIMEOUT_MS 60000
#define CONNECT_TIMEOUT_MS 5000
#define PROBE_TIMEOUT_MS   500
#define RESPONSE_MAX       (16u << 20) /* largest app response body kept */
#define HEADER_LINE_MAX    8192
#define URL_MAX            8192

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t handle_key;
static bool global_ok;

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void global_init(void)
{
    global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK &&
                pthread_key_create(&handle_key, handle_free) == 0;
}

/* This thread's handle (created on first use), reset for a new request. */
static CURL *thread_handle(void)
{
    CURL *h;
    pthread_once(&once, global_init);
    if (!global_ok)
        return NULL;
    h = pthread_getspecific(handle_key);
    if (!h) {
        h = curl_easy_init();
        if (!h || pthread_setspecific(handle_key, h) != 0) {
            curl_easy_cleanup(h);
            return NULL;
        }
    } else {
        curl_easy_reset(h);
    }
    return h;
}

void app_response_dispose(app_response_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    return buf_append(b, data, size * n) == 0 ? size * n : 0; /* 0 ends the transfer */
}

bool app_channel_port_open(const sidecar_t *s)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    bool open = false;

    if (s->opt.app_port <= 0)
        return false;
    snprintf(port, sizeof(port), "%d", s->opt.app_port);
    if (getaddrinfo(s->opt.app_channel_address, port, &hints, &ai) != 0)
        return false;
    for (struct addrinfo *a = ai; a && !open; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            open = true;
        } else if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t len = sizeof(err);
            if (poll(&p, 1, PROBE_TIMEOUT_MS) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
                open = true;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return open;
}

/* libcurl's progress callback: a non-zero return abandons the transfer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load((const atomic_bool *)arg) ? 1 : 0;
}

int app_channel_call(const sidecar_t *s, const char *method, const char *path,
                     const broker_header_t *headers, size_t nheaders, const void *body, size_t len,
                     int64_t timeout_ms, app_response_t *out)
{
    return app_channel_call_cancellable(s, method, path, headers, nheaders, body, len, timeout_ms,
                                        NULL, out);
}

int app_channel_call_cancellable(const sidecar_t *s, const char *method, const char *path,
                                 const broker_header_t *headers, size_t nheaders, const void *body,
                                 size_t len, int64_t timeout_ms, const atomic_bool *cancel,
                                 app_response_t *out)
{
    int rc = TODO_EINTERNAL;
    CURL *h = NULL;
    struct curl_slist *hl = NULL;
    buf_t b;
    char url[URL_MAX];
    bool has_content_type = false;
    CURLcode cc;
    long status = 0;
    const char *host = s->opt.app_channel_address;

    memset(out, 0, sizeof(*out));
    buf_init(&b, RESPONSE_MAX);
    if (s->opt.app_port <= 0 || !path) {
        rc = TODO_EBAD_REQUEST;
        goto out;
    }
    /* An IPv6 literal needs brackets in a URL. */
    if ((size_t)snprintf(url, sizeof(url),
                         strchr(host, ':') ? "http://[%s]:%d%s%s" : "http://%s:%d%s%s", host,
                         s->opt.app_port, path[0] == '/' ? "" : "/", path) >= sizeof(url)) {
        rc = TODO_EBAD_REQUEST;
        goto out;
    }
    if (!(h = thread_handle()))
        goto out;
    for (size_t i = 0; i < nheaders; i++) {
        char line[HEADER_LINE_MAX];
        if (!headers[i].name || !headers[i].value)
            continue;
        if (strcasecmp(headers[i].name, "content-type") == 0)
            has_content_type = true;
        /* An empty value needs "name;" in libcurl ("name:" would remove the header). */
        if (headers[i].value[0])
            snprintf(line, sizeof(line), "%s: %s", headers[i].name, headers[i].value);
        else
            snprintf(line, sizeof(line), "%s;", headers[i].name);
        hl = curl_slist_append(hl, line);
    }
    if (s->opt.app_api_token && *s->opt.app_api_token) {
        char line[HEADER_LINE_MAX];
        snprintf(line, sizeof(line), "dapr-api-token: %s", s->opt.app_api_token);
        hl = curl_slist_append(hl, line);
    }
    /* As Go's client: no Accept, no Expect; no Content-Type unless the caller gives one
     * (libcurl would otherwise add application/x-www-form-urlencoded to a POST). */
    hl = curl_slist_append(hl, "Accept:");
    hl = curl_slist_append(hl, "Expect:");
    if (!has_content_type)
        hl = curl_slist_append(hl, "Content-Type:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* the app is local: no *_proxy variables */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     (long)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    if (cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancel);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        out->transport_error = true;
        log_debug("app_channel", "%s %s: %s", method, path, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        out->status = (int)status;
    }
    out->len = b.len;
    out->body = buf_steal(&b);
    if (!out->body)
        out->body = xstrdup("");
    rc = 0;
out:
    curl_slist_free_all(hl);
    buf_dispose(&b);
    return rc;
}

void app_channel_thread_done(void)
{
    CURL *h;
    if (!global_ok)
        return;
    h = pthread_getspecific(handle_key);
    if (h) {
        (void)pthread_setspecific(handle_key, NULL);
        curl_easy_cleanup(h);
    }
}
