/* The app side of Dapr pub/sub (DAPR-CONTRACT §2.1, §3): GET /dapr/subscribe answered from a static
 * table (each subscription with deadLetterTopic "<topic>-dlq"), and one delivery route per
 * subscription that checks APP_API_TOKEN, parses and validates the CloudEvent, runs the handler
 * in one transaction with the insert of (consumer, event id) into the service's processed_events
 * (a duplicate is acknowledged with no effect), and answers SUCCESS, RETRY or DROP (§3.2). */
#ifndef TODO_SUBSCRIBER_H
#define TODO_SUBSCRIBER_H
#include <stdbool.h>

#include "todo/db.h"
#include "todo/error.h"
#include "todo/http_server.h"
#include "todo/json.h"

/* A received CloudEvent; every string and data are borrowed until the handler returns. */
typedef struct {
    const char *id, *source, *type, *subject, *time;
    const char *traceparent; /* the event's, else the delivery's, else "" */
    const char *topic;       /* the subscription's */
    const json_t *data;      /* the data member (an object) */
    const json_t *event;     /* the whole event */
} cloudevent_t;

typedef enum {
    DELIVERY_SUCCESS, /* done (or nothing to do): acknowledged */
    DELIVERY_RETRY,   /* a passing failure (database, sidecar): delivered again later */
    DELIVERY_DROP     /* the event can never be handled: goes to the dead-letter topic */
} delivery_t;

/* Handles one event. db is the thread's connection inside the transaction that also records
 * the event as processed (NULL for a subscription without a processed table). thread_ctx is the
 * HTTP server's handler-thread context. */
typedef delivery_t (*subscriber_fn)(const cloudevent_t *ev, db_t *db, void *thread_ctx, void *arg);

typedef struct {
    const char *topic;
    const char *consumer; /* the name recorded in processed_events, e.g. "backend.recurrence" */
    subscriber_fn fn;
    void *arg;
} subscription_t;

typedef struct {
    const char *pubsub;          /* the pub/sub component (PUBSUB_NAME) */
    const char *app_token;       /* APP_API_TOKEN, NULL or "" = none */
    const char *processed_table; /* e.g. "backend.processed_events"; NULL = no database */
    /* The handler thread's database connection (needed with a processed table). */
    db_t *(*db_of)(void *thread_ctx);
    /* Called (may be NULL) after the transaction of an event whose handler succeeded has
     * committed, with the handler thread's ctx and db: e.g. to wake an outbox relay. */
    void (*after_commit)(void *thread_ctx, db_t *db);
} subscriber_config_t;

typedef struct subscriber subscriber_t;

/* new: the subscriptions of a service. cfg and subs (with their strings) are borrowed and must
 * outlive it; free it after the HTTP server. */
subscriber_t *subscriber_new(const subscriber_config_t *cfg, const subscription_t *subs, size_t n);
void subscriber_free(subscriber_t *s);
/* Adds GET /dapr/subscribe and POST /events/<topic> for each subscription to srv. */
int subscriber_register(subscriber_t *s, http_server_t *srv) TODO_WUR;

/* The route a topic is delivered to: "/events/<topic>" (new). */
char *subscriber_route(const char *topic);

/* True when req carries dapr-api-token equal to token (compared in constant time); true when
 * token is NULL or "". For the app-channel routes (/dapr/subscribe, /events/..., /job/...). */
bool subscriber_token_ok(http_req_t *req, const char *token);

/* Parses and validates a structured CloudEvent 1.0 (specversion "1.0", non-empty id, source and
 * type, an object data) from body; *event (new) holds it and ev points into it. Returns 0, or
 * TODO_EVALIDATION_ERROR with *why a static reason. */
int cloudevent_parse(const char *body, size_t len, json_t **event, cloudevent_t *ev,
                     const char **why) TODO_WUR;

/* A CloudEvent's JSON text (new): id, source, type, subject, time (now, RFC 3339 UTC),
 * datacontenttype application/json, traceparent (omitted when NULL or "") and data (borrowed). */
char *cloudevent_build(const char *id, const char *source, const char *type, const char *subject,
                       const char *traceparent, const json_t *data);

#endif
