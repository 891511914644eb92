/* The Jobs API of the sidecar (DAPR-CONTRACT §6.1): POST, GET and DELETE on
 * /v1.0-alpha1/jobs/{name} and /v1.0/jobs/{name}, with the request read as protojson reads
 * JobHTTPRequest, the Scheduler's validation, and daprd's statuses and error bodies. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "jobs_store.h"
#include "scheduler.h"
#include "sidecar.h"
#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define MSG_MAX 1024

typedef struct {
    sidecar_t *s;
    jobs_store_t *store; /* NULL without --scheduler-database-url */
    pthread_mutex_t mu;  /* guards opened */
    bool opened;
} jobs_api_t;

/* ---- responses ---- */

static void out_str(buf_t *b, const char *s)
{
    if (buf_puts(b, s) != 0)
        abort(); /* unlimited buffer */
}

static void out_quoted(buf_t *b, const char *s)
{
    jobs_json_quote(b, s, true);
}

/* A rich kit error as JSONErrorValue marshals it for the scheduler errors of
 * dapr:pkg/api/errors/scheduler.go: errorCode = the ErrorInfo reason (no legacy tag), one
 * ErrorInfo detail with metadata {appID, namespace} (a Go map: keys sorted). */
static int jobs_error(jobs_api_t *api, http_req_t *req, int status, const char *reason,
                      const char *message)
{
    buf_t b;
    int rc;
    buf_init(&b, 0);
    out_str(&b, "{\"errorCode\":");
    out_quoted(&b, reason);
    out_str(&b, ",\"message\":");
    out_quoted(&b, message);
    out_str(&b, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                "\"domain\":\"dapr.io\",\"metadata\":{\"appID\":");
    out_quoted(&b, api->s->opt.app_id ? api->s->opt.app_id : "");
    out_str(&b, ",\"namespace\":");
    out_quoted(&b, scheduler_namespace());
    out_str(&b, "},\"reason\":");
    out_quoted(&b, reason);
    out_str(&b, "}]}");
    rc = http_respond(req, status, "application/json", b.data, b.len);
    buf_dispose(&b);
    return rc;
}

static int malformed(http_req_t *req, const char *why)
{
    char msg[2 * MSG_MAX];
    snprintf(msg, sizeof(msg), "failed deserializing HTTP body: %s", why);
    return sidecar_error(req, 400, "ERR_MALFORMED_REQUEST", NULL, NULL, NULL, msg);
}

/* "failed to schedule job due to: rpc error: code = … desc = …" (status 500 unless given). */
static int schedule_failed(jobs_api_t *api, http_req_t *req, int status, const char *grpc_code,
                           const char *desc)
{
    char msg[2 * MSG_MAX];
    snprintf(msg, sizeof(msg), "failed to schedule job due to: rpc error: code = %s desc = %s",
             grpc_code, desc);
    return jobs_error(api, req, status, "DAPR_SCHEDULER_SCHEDULE_JOB", msg);
}

/* Without a scheduler daprd's calls wait for one until their 30 s timeout; the double answers at
 * once with the same error shape (see docs/dapr-sidecar.md). */
static int no_scheduler(jobs_api_t *api, http_req_t *req, const char *reason, const char *what)
{
    char msg[2 * MSG_MAX];
    snprintf(msg, sizeof(msg),
             "failed to %s job due to: rpc error: code = Unavailable desc = no scheduler is "
             "configured (start the sidecar with --scheduler-database-url)",
             what);
    return jobs_error(api, req, 500, reason, msg);
}

static int store_ready(jobs_api_t *api)
{
    int rc = 0;
    pthread_mutex_lock(&api->mu);
    if (!api->opened) {
        rc = jobs_store_open(api->store);
        api->opened = rc == 0;
    }
    pthread_mutex_unlock(&api->mu);
    return rc;
}

/* ---- validation ---- */

/* DAPR-CONTRACT §6.1, v1.18.2+: any character but / \ # ? and control characters; not "." or
 * "..". */
static bool name_valid(const char *name, const char **why)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        *why = "job name cannot be '.' or '..'";
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '/' || *p == '\\' || *p == '#' || *p == '?' || *p < 0x20 || *p == 0x7f) {
            *why = "job name contains an invalid character";
            return false;
        }
    if (strlen(name) > 1024) {
        *why = "job name is too long";
        return false;
    }
    return true;
}

/* The URL name as daprd's schedule handler takes it: strings.TrimSpace. */
static char *trimmed(const char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    return xstrndup(s, n);
}

/* ---- the request as protojson reads internals.v1.JobHTTPRequest ---- */

typedef struct {
    const char *name, *schedule, *due_time, *ttl;
    bool has_schedule, has_due_time, has_ttl;
    int64_t repeats;      /* -1 = absent */
    const json_t *data;   /* borrowed; NULL = absent */
    char *failure_policy; /* normalised, new; NULL = absent */
    bool overwrite;
} job_req_t;

/* One field by its JSON name or proto name (both set → protojson's duplicate-field error). */
static int field(const json_t *o, const char *json_name, const char *proto_name, json_t **out,
                 char why[MSG_MAX])
{
    json_t *a = json_object_get(o, json_name);
    json_t *b = proto_name ? json_object_get(o, proto_name) : NULL;
    if (a && b) {
        snprintf(why, MSG_MAX, "proto: duplicate field \"%s\"", proto_name);
        return TODO_EBAD_REQUEST;
    }
    *out = a ? a : b;
    if (*out && json_is_null(*out))
        *out = NULL; /* null = unset for every field but data */
    return 0;
}

static int string_field(const json_t *o, const char *jn, const char *pn, const char **out,
                        bool *present, char why[MSG_MAX])
{
    json_t *v;
    if (field(o, jn, pn, &v, why) != 0)
        return TODO_EBAD_REQUEST;
    *present = v != NULL;
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, MSG_MAX, "proto: invalid value for string field %s", pn ? pn : jn);
        return TODO_EBAD_REQUEST;
    }
    *out = json_string_value(v);
    return 0;
}

/* uint32 as protojson accepts it: a JSON number or a string holding one, integral, in range. */
static int uint32_field(const json_t *v, const char *name, int64_t *out, char why[MSG_MAX])
{
    double d;
    char *end = NULL;
    if (json_is_integer(v)) {
        d = (double)json_integer_value(v);
    } else if (json_is_real(v)) {
        d = json_real_value(v);
    } else if (json_is_string(v) && *json_string_value(v)) {
        d = strtod(json_string_value(v), &end);
        if (*end)
            goto bad;
    } else {
        goto bad;
    }
    if (!(d >= 0 && d <= 4294967295.0) || floor(d) != d)
        goto bad;
    *out = (int64_t)d;
    return 0;
bad:
    snprintf(why, MSG_MAX, "proto: invalid value for uint32 field %s", name);
    return TODO_EBAD_REQUEST;
}

/* google.protobuf.Duration in protojson: "-?N(.fraction up to 9 digits)?s". */
static bool pb_duration(const char *s, int64_t *out_nanos)
{
    const char *p = s;
    bool neg = false;
    int64_t sec = 0, nanos = 0;
    int nd = 0;
    if (*p == '-')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p)) {
        sec = sec * 10 + (*p++ - '0');
        if (sec > INT64_C(315576000000))
            return false;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p) && nd < 9) {
            nanos = nanos * 10 + (*p++ - '0');
            nd++;
        }
        if (nd == 0)
            return false;
        for (int i = nd; i < 9; i++)
            nanos *= 10;
    }
    if (strcmp(p, "s") != 0)
        return false;
    *out_nanos = (neg ? -1 : 1) * (sec * 1000000000 + nanos);
    return true;
}

/* A Duration as protojson prints it: 0, 3, 6 or 9 fractional digits. */
static void pb_duration_str(int64_t nanos, char out[48])
{
    int64_t a = nanos < 0 ? -nanos : nanos, sec = a / 1000000000, frac = a % 1000000000;
    const char *sign = nanos < 0 ? "-" : "";
    if (frac == 0)
        snprintf(out, 48, "%s%" PRId64 "s", sign, sec);
    else if (frac % 1000000 == 0)
        snprintf(out, 48, "%s%" PRId64 ".%03" PRId64 "s", sign, sec, frac / 1000000);
    else if (frac % 1000 == 0)
        snprintf(out, 48, "%s%" PRId64 ".%06" PRId64 "s", sign, sec, frac / 1000);
    else
        snprintf(out, 48, "%s%" PRId64 ".%09" PRId64 "s", sign, sec, frac);
}

/* common.v1.JobFailurePolicy: oneof constant {interval, maxRetries} | drop {}. */
static int failure_policy(const json_t *v, char **out, char why[MSG_MAX])
{
    json_t *constant, *drop, *iv, *mr;
    char buf[160], dur[48];
    *out = NULL;
    if (!json_is_object(v)) {
        snprintf(why, MSG_MAX, "proto: invalid value for message field failure_policy");
        return TODO_EBAD_REQUEST;
    }
    if (field(v, "constant", NULL, &constant, why) != 0 || field(v, "drop", NULL, &drop, why) != 0)
        return TODO_EBAD_REQUEST;
    if (constant && drop) {
        snprintf(why, MSG_MAX,
                 "proto: oneof dapr.proto.common.v1.JobFailurePolicy.policy is "
                 "already set");
        return TODO_EBAD_REQUEST;
    }
    if (drop) {
        if (!json_is_object(drop)) {
            snprintf(why, MSG_MAX, "proto: invalid value for message field drop");
            return TODO_EBAD_REQUEST;
        }
        *out = xstrdup("{\"drop\":{}}");
        return 0;
    }
    if (!constant)
        return 0; /* no policy: the default applies */
    if (!json_is_object(constant)) {
        snprintf(why, MSG_MAX, "proto: invalid value for message field constant");
        return TODO_EBAD_REQUEST;
    }
    if (field(constant, "interval", NULL, &iv, why) != 0 ||
        field(constant, "maxRetries", "max_retries", &mr, why) != 0)
        return TODO_EBAD_REQUEST;
    int64_t nanos = 0, retries = -1;
    bool has_iv = iv != NULL;
    if (iv && (!json_is_string(iv) || !pb_duration(json_string_value(iv), &nanos))) {
        snprintf(why, MSG_MAX, "proto: invalid google.protobuf.Duration value");
        return TODO_EBAD_REQUEST;
    }
    if (mr && uint32_field(mr, "max_retries", &retries, why) != 0)
        return TODO_EBAD_REQUEST;
    pb_duration_str(nanos, dur);
    if (has_iv && retries >= 0)
        snprintf(buf, sizeof(buf),
                 "{\"constant\":{\"interval\":\"%s\",\"maxRetries\":%" PRId64 "}}", dur, retries);
    else if (has_iv)
        snprintf(buf, sizeof(buf), "{\"constant\":{\"interval\":\"%s\"}}", dur);
    else if (retries >= 0)
        snprintf(buf, sizeof(buf), "{\"constant\":{\"maxRetries\":%" PRId64 "}}", retries);
    else
        snprintf(buf, sizeof(buf), "{\"constant\":{}}");
    *out = xstrdup(buf);
    return 0;
}

static int read_request(const json_t *o, job_req_t *r, char why[MSG_MAX])
{
    json_t *v;
    bool present;
    memset(r, 0, sizeof(*r));
    r->repeats = -1;
    if (string_field(o, "name", NULL, &r->name, &present, why) != 0 ||
        string_field(o, "schedule", NULL, &r->schedule, &r->has_schedule, why) != 0 ||
        string_field(o, "dueTime", "due_time", &r->due_time, &r->has_due_time, why) != 0 ||
        string_field(o, "ttl", NULL, &r->ttl, &r->has_ttl, why) != 0)
        return TODO_EBAD_REQUEST;
    if (field(o, "repeats", NULL, &v, why) != 0)
        return TODO_EBAD_REQUEST;
    if (v && uint32_field(v, "repeats", &r->repeats, why) != 0)
        return TODO_EBAD_REQUEST;
    if (field(o, "overwrite", NULL, &v, why) != 0)
        return TODO_EBAD_REQUEST;
    if (v) {
        if (!json_is_boolean(v)) {
            snprintf(why, MSG_MAX, "proto: invalid value for bool field overwrite");
            return TODO_EBAD_REQUEST;
        }
        r->overwrite = json_is_true(v);
    }
    /* data: any JSON value, null included (google.protobuf.Value). */
    r->data = json_object_get(o, "data");
    if (field(o, "failurePolicy", "failure_policy", &v, why) != 0)
        return TODO_EBAD_REQUEST;
    if (v && failure_policy(v, &r->failure_policy, why) != 0)
        return TODO_EBAD_REQUEST;
    return 0;
}

/* The Scheduler's checks, in its order and with its messages (go-etcd-cron
 * internal/scheduler/builder.go Parse); fills the times of j. The clock starts at now truncated
 * to the second, in UTC. */
static bool build_job(const job_req_t *r, int64_t now, jobs_job_t *j, char why[MSG_MAX])
{
    cron_schedule_t *cs = NULL;
    char err[CRON_ERR_MAX];
    int64_t begin;
    now = now / 1000000 * 1000000;
    begin = now;
    j->created_usec = now;
    if (!r->has_schedule && r->repeats > 1) {
        snprintf(why, MSG_MAX, "job must have a schedule to repeat");
        return false;
    }
    if (r->repeats == 0) {
        snprintf(why, MSG_MAX, "defined repeats must be greater than 0");
        return false;
    }
    if (!r->has_schedule && r->has_ttl) {
        snprintf(why, MSG_MAX, "job must have a schedule to have a ttl");
        return false;
    }
    if (r->has_schedule) {
        if (cron_parse(r->schedule, &cs, err) != 0) {
            snprintf(why, MSG_MAX, "%s", err);
            return false;
        }
        cron_free(cs);
    }
    if (r->has_due_time) {
        if (cron_parse_time(r->due_time, now, &j->due_usec) != 0) {
            snprintf(why, MSG_MAX, "due time format not recognized");
            return false;
        }
        begin = j->due_usec;
    }
    if (r->has_ttl) {
        if (cron_parse_time(r->ttl, begin, &j->expires_usec) != 0) {
            snprintf(why, MSG_MAX, "ttl format not recognized");
            return false;
        }
        if (r->has_due_time && begin > j->expires_usec) {
            snprintf(why, MSG_MAX, "ttl must be greater than due time");
            return false;
        }
    }
    return true;
}

/* ---- handlers ---- */

static int handle_schedule(http_req_t *req)
{
    jobs_api_t *api = req->route_arg;
    json_t *body = NULL;
    job_req_t r;
    jobs_job_t j;
    char why[MSG_MAX];
    const char *bad;
    char *name = NULL;
    int rc = 0, src;
    memset(&r, 0, sizeof(r));
    memset(&j, 0, sizeof(j));
    if (!sidecar_authorized(api->s, req))
        return 0;
    if (req->body_len > 0) {
        /* protojson reads numbers as float64 (google.protobuf.Value), so integers beyond
         * int64 are fine; duplicate keys are an error there too. */
        json_error_t jerr;
        body = json_loadb(req->body, req->body_len,
                          JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
        if (!body || !json_is_object(body)) {
            rc = malformed(req, body ? "the body is not a JSON object" : jerr.text);
            goto out;
        }
    }
    if (body && read_request(body, &r, why) != 0) {
        rc = malformed(req, why);
        goto out;
    }
    if (!body)
        r.repeats = -1;
    if (r.name && *r.name) {
        rc = jobs_error(api, req, 400, "DAPR_SCHEDULER_JOB_NAME",
                        "Set the job name in the url only");
        goto out;
    }
    name = trimmed(req->params[0]);
    if (!*name) {
        rc = jobs_error(api, req, 400, "DAPR_SCHEDULER_JOB_NAME_EMPTY", "Name is empty");
        goto out;
    }
    if (!r.has_schedule && !r.has_due_time) {
        rc = jobs_error(api, req, 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY", "Schedule is empty");
        goto out;
    }
    if (!api->store) {
        rc = no_scheduler(api, req, "DAPR_SCHEDULER_SCHEDULE_JOB", "schedule");
        goto out;
    }
    if (!name_valid(name, &bad)) {
        rc = schedule_failed(api, req, 500, "InvalidArgument", bad);
        goto out;
    }
    if (!build_job(&r, time_now_usec(), &j, why)) {
        rc = schedule_failed(api, req, 500, "Unknown", why);
        goto out;
    }
    j.name = xstrdup(name);
    j.schedule = r.has_schedule ? xstrdup(r.schedule) : NULL;
    j.due_time = r.has_due_time ? xstrdup(r.due_time) : NULL;
    j.ttl = r.has_ttl ? xstrdup(r.ttl) : NULL;
    j.repeats = r.repeats;
    j.data = r.data ? jobs_value_json(r.data) : NULL;
    /* §6.3: without a policy the Scheduler stores constant 1 s × 3. */
    j.failure_policy = r.failure_policy ? r.failure_policy
                                        : xstrdup("{\"constant\":{\"interval\":\"1s\","
                                                  "\"maxRetries\":3}}");
    r.failure_policy = NULL;
    if (store_ready(api) != 0) {
        rc = schedule_failed(api, req, 500, "Unavailable", "the scheduler database is unavailable");
        goto out;
    }
    src = jobs_store_put(api->store, &j, r.overwrite);
    if (src == TODO_ECONFLICT) {
        /* §6.1 (since 1.16): an existing name without overwrite:true → 409. */
        snprintf(why, sizeof(why), "job %s already exists", name);
        rc = schedule_failed(api, req, 409, "AlreadyExists", why);
    } else if (src != 0) {
        rc = schedule_failed(api, req, 500, "Internal", "storing the job failed");
    } else {
        rc = http_respond(req, 204, NULL, NULL, 0);
    }
out:
    free(r.failure_policy);
    jobs_job_dispose(&j);
    free(name);
    json_decref(body);
    return rc;
}

/* GET body: protojson of runtime.v1.Job, fields in proto order, unset optionals omitted. */
static char *job_json(const jobs_job_t *j)
{
    buf_t b;
    char num[24], *body;
    buf_init(&b, 0);
    out_str(&b, "{\"name\":");
    jobs_json_quote(&b, j->name, false);
    if (j->schedule) {
        out_str(&b, ",\"schedule\":");
        jobs_json_quote(&b, j->schedule, false);
    }
    if (j->repeats >= 0) {
        snprintf(num, sizeof(num), "%" PRId64, j->repeats);
        out_str(&b, ",\"repeats\":");
        out_str(&b, num);
    }
    if (j->due_time) {
        out_str(&b, ",\"dueTime\":");
        jobs_json_quote(&b, j->due_time, false);
    }
    if (j->ttl) {
        out_str(&b, ",\"ttl\":");
        jobs_json_quote(&b, j->ttl, false);
    }
    if (j->data) {
        /* An Any holding a google.protobuf.Value (§6.1). */
        out_str(&b,
                ",\"data\":{\"@type\":\"type.googleapis.com/google.protobuf.Value\",\"value\":");
        out_str(&b, j->data);
        out_str(&b, "}");
    }
    if (j->failure_policy) {
        out_str(&b, ",\"failurePolicy\":");
        out_str(&b, j->failure_policy);
    }
    out_str(&b, "}");
    body = buf_steal(&b);
    buf_dispose(&b);
    return body;
}

static int handle_get(http_req_t *req)
{
    jobs_api_t *api = req->route_arg;
    const char *name = req->params[0], *bad;
    jobs_job_t j;
    char msg[2 * MSG_MAX];
    int rc, src;
    memset(&j, 0, sizeof(j));
    if (!sidecar_authorized(api->s, req))
        return 0;
    if (!*name)
        return jobs_error(api, req, 400, "DAPR_SCHEDULER_JOB_NAME_EMPTY", "Name is empty");
    if (!api->store)
        return no_scheduler(api, req, "DAPR_SCHEDULER_GET_JOB", "get");
    if (!name_valid(name, &bad)) {
        snprintf(msg, sizeof(msg),
                 "failed to get job due to: rpc error: code = InvalidArgument desc = %s", bad);
        return jobs_error(api, req, 500, "DAPR_SCHEDULER_GET_JOB", msg);
    }
    src = store_ready(api);
    if (src == 0)
        src = jobs_store_get(api->store, name, &j);
    if (src == TODO_ENOT_FOUND) {
        /* §6.1: a missing job is a 500, not a 404. */
        snprintf(msg, sizeof(msg),
                 "failed to get job due to: rpc error: code = NotFound desc = job not found: %s",
                 name);
        return jobs_error(api, req, 500, "DAPR_SCHEDULER_GET_JOB", msg);
    }
    if (src != 0)
        return jobs_error(api, req, 500, "DAPR_SCHEDULER_GET_JOB",
                          "failed to get job due to: rpc error: code = Unavailable desc = the "
                          "scheduler database is unavailable");
    char *body = job_json(&j);
    rc = http_respond(req, 200, "application/json", body, strlen(body));
    free(body);
    jobs_job_dispose(&j);
    return rc;
}

static int handle_delete(http_req_t *req)
{
    jobs_api_t *api = req->route_arg;
    const char *name = req->params[0], *bad;
    char msg[2 * MSG_MAX];
    int src;
    if (!sidecar_authorized(api->s, req))
        return 0;
    if (!*name)
        return jobs_error(api, req, 400, "DAPR_SCHEDULER_JOB_NAME_EMPTY", "Name is empty");
    if (!api->store)
        return no_scheduler(api, req, "DAPR_SCHEDULER_DELETE_JOB", "delete");
    if (!name_valid(name, &bad)) {
        snprintf(msg, sizeof(msg),
                 "failed to delete job due to: rpc error: code = InvalidArgument desc = %s", bad);
        return jobs_error(api, req, 500, "DAPR_SCHEDULER_DELETE_JOB", msg);
    }
    src = store_ready(api);
    if (src == 0)
        src = jobs_store_delete(api->store, name);
    if (src != 0)
        return jobs_error(api, req, 500, "DAPR_SCHEDULER_DELETE_JOB",
                          "failed to delete job due to: rpc error: code = Unavailable desc = the "
                          "scheduler database is unavailable");
    /* §6.1: 204 whether or not the job existed. */
    return http_respond(req, 204, NULL, NULL, 0);
}

int jobs_api_register(sidecar_t *s)
{
    static const char *const prefixes[] = {"/v1.0-alpha1/jobs/{name}", "/v1.0/jobs/{name}"};
    /* Lives as long as the process (the routes point at it); one sidecar per process. */
    static jobs_api_t the_api;
    jobs_api_t *api = &the_api;
    int rc = 0;
    api->s = s;
    pthread_mutex_init(&api->mu, NULL);
    if (s->opt.scheduler_database_url && *s->opt.scheduler_database_url)
        api->store = jobs_store_new(s->opt.scheduler_database_url, s->opt.app_id,
                                    scheduler_namespace(), "api");
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        rc = http_server_route(s->server, "POST", prefixes[i], handle_schedule, api);
        if (rc == 0)
            rc = http_server_route(s->server, "GET", prefixes[i], handle_get, api);
        if (rc == 0)
            rc = http_server_route(s->server, "DELETE", prefixes[i], handle_delete, api);
    }
    return rc;
}
