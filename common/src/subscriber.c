/* Programmatic subscriptions and the delivery wrapper; see subscriber.h. Section numbers are
 * those of DAPR-CONTRACT.md. */
#include "todo/subscriber.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define EVENT_ID_MAX  256
#define TABLE_SQL_MAX 256

/* What each delivery route knows. */
typedef struct {
    const subscriber_config_t *cfg;
    const subscription_t *sub;
    char insert_sql[TABLE_SQL_MAX];
} route_t;

struct subscriber {
    const subscriber_config_t *cfg;
    const subscription_t *subs;
    size_t n;
    route_t *routes;
};

char *subscriber_route(const char *topic)
{
    return xasprintf("/events/%s", topic);
}

bool subscriber_token_ok(http_req_t *req, const char *token)
{
    if (!token || !*token)
        return true;
    const char *got = http_req_header(req, "dapr-api-token");
    size_t n = strlen(token);
    if (!got || strlen(got) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(got[i] ^ token[i]);
    return diff == 0;
}

static int refuse_token(http_req_t *req)
{
    log_warn("subscriber", "%s %s: missing or wrong dapr-api-token", req->method, req->path);
    return http_send_error(req, TODO_EUNAUTHORIZED, "invalid app token", NULL);
}

/* §2.1: exactly 200 with a JSON array; every entry names its dead-letter topic. */
static int on_subscribe(http_req_t *req)
{
    const subscriber_t *t = req->route_arg;
    if (!subscriber_token_ok(req, t->cfg->app_token))
        return refuse_token(req);
    json_t *arr = json_array();
    for (size_t i = 0; i < t->n; i++) {
        char *route = subscriber_route(t->subs[i].topic);
        char *dlq = xasprintf("%s-dlq", t->subs[i].topic);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "pubsubname", t->cfg->pubsub,
                                             "topic", t->subs[i].topic, "route", route,
                                             "deadLetterTopic", dlq));
        free(route);
        free(dlq);
    }
    int rc = http_respond_json(req, 200, arr);
    json_decref(arr);
    return rc;
}

static const char *member_string(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int cloudevent_parse(const char *body, size_t len, json_t **event, cloudevent_t *ev,
                     const char **why)
{
    json_t *o = NULL;
    *event = NULL;
    memset(ev, 0, sizeof(*ev));
    if (json_parse(body, len, true, &o) != 0) {
        *why = "the body is not a JSON object";
        return TODO_EVALIDATION_ERROR;
    }
    const char *spec = member_string(o, "specversion");
    ev->id = member_string(o, "id");
    ev->source = member_string(o, "source");
    ev->type = member_string(o, "type");
    ev->subject = member_string(o, "subject");
    ev->time = member_string(o, "time");
    ev->traceparent = member_string(o, "traceparent");
    ev->data = json_object_get(o, "data");
    ev->event = o;
    if (!spec || strcmp(spec, "1.0") != 0)
        *why = "specversion is not 1.0";
    else if (!ev->id || !*ev->id || strlen(ev->id) > EVENT_ID_MAX)
        *why = "id is missing, empty or too long";
    else if (!ev->source || !*ev->source)
        *why = "source is missing";
    else if (!ev->type || !*ev->type)
        *why = "type is missing";
    else if (!json_is_object(ev->data))
        *why = "data is not a JSON object";
    else
        *why = NULL;
    if (*why) {
        json_decref(o);
        memset(ev, 0, sizeof(*ev));
        return TODO_EVALIDATION_ERROR;
    }
    if (!ev->traceparent)
        ev->traceparent = "";
    *event = o;
    return 0;
}

char *cloudevent_build(const char *id, const char *source, const char *type, const char *subject,
                       const char *traceparent, const json_t *data)
{
    char now[TIME_RFC3339_LEN];
    time_format_rfc3339(time_now_usec(), now);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "specversion", "1.0", "id", id,
                          "source", source, "type", type, "subject", subject ? subject : "", "time",
                          now, "datacontenttype", "application/json");
    if (!subject)
        json_object_del(o, "subject");
    if (traceparent && *traceparent)
        json_object_set_new(o, "traceparent", json_string(traceparent));
    json_object_set(o, "data", (json_t *)data);
    char *text = json_dump(o);
    json_decref(o);
    return text;
}

/* §3.2: 200 with {"status": ...}; status values are upper case. */
static int answer(http_req_t *req, delivery_t d)
{
    static const char *const body[] = {
        [DELIVERY_SUCCESS] = "{\"status\":\"SUCCESS\"}",
        [DELIVERY_RETRY] = "{\"status\":\"RETRY\"}",
        [DELIVERY_DROP] = "{\"status\":\"DROP\"}",
    };
    return http_respond(req, 200, "application/json", body[d], strlen(body[d]));
}

typedef struct {
    const route_t *route;
    const cloudevent_t *ev;
    void *thread_ctx;
    delivery_t result;
    bool duplicate;
} tx_arg_t;

/* Inside the transaction: record the event, then let the handler act. A handler that does not
 * succeed rolls everything back, the record of the event included. */
static int in_tx(db_t *db, void *arg)
{
    tx_arg_t *a = arg;
    PGresult *res = NULL;
    const char *p[] = {a->route->sub->consumer, a->ev->id};
    int rc = db_query_prepared(db, a->route->insert_sql, 2, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) == 0) { /* seen before: no second effect */
        a->duplicate = true;
        a->result = DELIVERY_SUCCESS;
        goto out;
    }
    a->result = a->route->sub->fn(a->ev, db, a->thread_ctx, a->route->sub->arg);
    rc = a->result == DELIVERY_SUCCESS ? 0 : TODO_ECONFLICT; /* roll back */
out:
    PQclear(res);
    return rc;
}

static void set_trace(const char *traceparent)
{
    char id[33];
    /* "00-<32 hex>-<16 hex>-<2 hex>": the trace id is the second field. */
    if (traceparent && strlen(traceparent) >= 55 && traceparent[2] == '-') {
        memcpy(id, traceparent + 3, 32);
        id[32] = '\0';
        log_set_trace(id);
    }
}

static int on_event(http_req_t *req)
{
    const route_t *r = req->route_arg;
    json_t *event = NULL;
    cloudevent_t ev;
    const char *why = NULL;
    delivery_t result;
    char saved_trace[129];

    if (!subscriber_token_ok(req, r->cfg->app_token))
        return refuse_token(req);
    if (cloudevent_parse(req->body, req->body_len, &event, &ev, &why) != 0) {
        /* It will never parse: to the dead-letter topic with it (§3.2 DROP). */
        log_warn("subscriber", "topic %s: dropping a malformed event: %s", r->sub->topic, why);
        return answer(req, DELIVERY_DROP);
    }
    ev.topic = r->sub->topic;
    if (!*ev.traceparent)
        ev.traceparent = req->traceparent;
    snprintf(saved_trace, sizeof(saved_trace), "%s", log_get_trace());
    set_trace(ev.traceparent);

    if (r->cfg->processed_table) {
        db_t *db = r->cfg->db_of(req->thread_ctx);
        tx_arg_t a = {.route = r, .ev = &ev, .thread_ctx = req->thread_ctx};
        int rc = db_tx(db, in_tx, &a);
        if (rc == 0 || rc == TODO_ECONFLICT)
            result = a.result; /* ECONFLICT: the handler's own verdict rolled it back */
        else
            result = DELIVERY_RETRY; /* the database is in trouble: try again later */
        if (rc != 0 && rc != TODO_ECONFLICT)
            log_warn("subscriber", "topic %s: event %s: %s; asking for redelivery", ev.topic, ev.id,
                     todo_err_code(rc));
        if (rc == 0 && !a.duplicate && result == DELIVERY_SUCCESS && r->cfg->after_commit)
            r->cfg->after_commit(req->thread_ctx, db);
        if (a.duplicate)
            log_info("subscriber", "topic %s: event %s (%s) was handled before", ev.topic, ev.id,
                     ev.type);
    } else {
        result = r->sub->fn(&ev, NULL, req->thread_ctx, r->sub->arg);
    }
    if (result == DELIVERY_DROP)
        log_warn("subscriber", "topic %s: event %s (%s) dropped to the dead-letter topic", ev.topic,
                 ev.id, ev.type);
    else if (result == DELIVERY_RETRY)
        log_info("subscriber", "topic %s: event %s (%s) to be redelivered", ev.topic, ev.id,
                 ev.type);
    else
        log_debug("subscriber", "topic %s: event %s (%s) handled", ev.topic, ev.id, ev.type);
    log_set_trace(saved_trace[0] ? saved_trace : NULL);
    json_decref(event);
    return answer(req, result);
}

subscriber_t *subscriber_new(const subscriber_config_t *cfg, const subscription_t *subs, size_t n)
{
    subscriber_t *t = xcalloc(1, sizeof(*t));
    t->cfg = cfg;
    t->subs = subs;
    t->n = n;
    t->routes = xcalloc(n ? n : 1, sizeof(*t->routes));
    for (size_t i = 0; i < n; i++) {
        route_t *r = &t->routes[i];
        r->cfg = cfg;
        r->sub = &subs[i];
        if (cfg->processed_table)
            snprintf(r->insert_sql, sizeof(r->insert_sql),
                     "INSERT INTO %s (consumer, event_id) VALUES ($1, $2) "
                     "ON CONFLICT DO NOTHING RETURNING 1",
                     cfg->processed_table);
    }
    return t;
}

void subscriber_free(subscriber_t *t)
{
    if (!t)
        return;
    free(t->routes);
    free(t);
}

int subscriber_register(subscriber_t *t, http_server_t *srv)
{
    int rc = http_server_route(srv, "GET", "/dapr/subscribe", on_subscribe, t);
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        char *route = subscriber_route(t->subs[i].topic);
        rc = http_server_route(srv, "POST", route, on_event, &t->routes[i]);
        free(route);
    }
    return rc;
}
