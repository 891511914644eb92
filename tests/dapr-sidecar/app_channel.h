/* The HTTP channel from the sidecar to its app (DAPR-CONTRACT §3.1, §6.2, §8.2): TCP probe of the
 * app port, GET /dapr/config and /dapr/subscribe, POST of deliveries and job triggers, each with
 * dapr-api-token when APP_API_TOKEN is set and a per-call timeout. libcurl, one handle per
 * thread. */
#ifndef SIDECAR_APP_CHANNEL_H
#define SIDECAR_APP_CHANNEL_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "sidecar.h"

typedef struct {
    int status; /* HTTP status; 0 on a transport error */
    char *body; /* response body (new), NUL-terminated */
    size_t len;
    bool transport_error; /* connection refused, timeout, … */
} app_response_t;

void app_response_dispose(app_response_t *r);

/* True when a TCP connection to the app port succeeds now. */
bool app_channel_port_open(const sidecar_t *s);

/* Sends method path to the app with the given headers and body; timeout_ms ≤ 0 = 60 s. */
int app_channel_call(const sidecar_t *s, const char *method, const char *path,
                     const broker_header_t *headers, size_t nheaders, const void *body, size_t len,
                     int64_t timeout_ms, app_response_t *out) TODO_WUR;

/* As app_channel_call, abandoned (transport error) soon after *cancel turns true (NULL = never):
 * for calls that must not hold up a shutdown. */
int app_channel_call_cancellable(const sidecar_t *s, const char *method, const char *path,
                                 const broker_header_t *headers, size_t nheaders, const void *body,
                                 size_t len, int64_t timeout_ms, const atomic_bool *cancel,
                                 app_response_t *out) TODO_WUR;

/* Frees the calling thread's libcurl handle now (threads that end free theirs themselves; the
 * main thread calls this before it exits). */
void app_channel_thread_done(void);

#endif
