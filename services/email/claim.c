/* Delivery records and the claim protocol over the Dapr state API; see claim.h. Section numbers
 * are those of DAPR-CONTRACT.md. */
#include "claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/json.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define RECORD_VERSION 1

static const char *const status_names[] = {
    [CLAIM_SENDING] = "sending",
    [CLAIM_RETRY] = "retry",
    [CLAIM_SENT] = "sent",
    [CLAIM_FAILED] = "failed",
};

static void set_time(json_t *o, const char *key, int64_t usec)
{
    char t[TIME_RFC3339_LEN];
    time_format_rfc3339(usec, t);
    json_object_set_new(o, key, json_string(t));
}

char *claim_record_json(const claim_record_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(RECORD_VERSION));
    json_object_set_new(o, "status", json_string(status_names[r->status]));
    json_object_set_new(o, "owner", json_string(r->owner));
    json_object_set_new(o, "instance", json_string(r->instance));
    json_object_set_new(o, "boot", json_string(r->boot));
    set_time(o, "claimed_at", r->claimed_at);
    set_time(o, "lease_until", r->lease_until);
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "task_id", json_integer(r->task_id));
    if (r->finished_at)
        set_time(o, "finished_at", r->finished_at);
    if (r->detail[0]) {
        json_t *d = json_string(r->detail);
        /* detail comes from an SMTP reply: printable ASCII by construction, but be sure. */
        json_object_set_new(o, "detail", d ? d : json_string("?"));
    }
    char *text = json_dump(o);
    json_decref(o);
    return text;
}

/* Copies the string member key (at most cap-1 bytes) into out; false when absent or too long. */
static bool copy_string(const json_t *o, const char *key, char *out, size_t cap, bool required)
{
    const char *s = NULL;
    if (json_get_string(o, key, &s, NULL) != JSON_FIELD_VALUE) {
        out[0] = '\0';
        return !required;
    }
    if (strlen(s) >= cap)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static bool read_time(const json_t *o, const char *key, int64_t *out, bool required)
{
    const char *s = NULL;
    *out = 0;
    if (json_get_string(o, key, &s, NULL) != JSON_FIELD_VALUE)
        return !required;
    return time_parse_rfc3339(s, out) == 0;
}

int claim_record_parse(const char *json, size_t len, claim_record_t *r)
{
    json_t *o = NULL;
    char status[16];
    bool ok = false;
    memset(r, 0, sizeof(*r));
    if (json_parse(json, len, true, &o) != 0)
        return TODO_EVALIDATION_ERROR;
    if (!copy_string(o, "status", status, sizeof(status), true))
        goto out;
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (strcmp(status, status_names[i]) == 0) {
            r->status = (claim_status_t)i;
            ok = true;
        }
    ok = ok && copy_string(o, "owner", r->owner, sizeof(r->owner), true) &&
         copy_string(o, "instance", r->instance, sizeof(r->instance), true) &&
         copy_string(o, "boot", r->boot, sizeof(r->boot), true) &&
         read_time(o, "claimed_at", &r->claimed_at, true) &&
         read_time(o, "lease_until", &r->lease_until, true) &&
         read_time(o, "finished_at", &r->finished_at, false) &&
         json_get_int(o, "attempts", &r->attempts, NULL) == JSON_FIELD_VALUE &&
         json_get_int(o, "task_id", &r->task_id, NULL) == JSON_FIELD_VALUE &&
         copy_string(o, "detail", r->detail, sizeof(r->detail), false);
out:
    json_decref(o);
    return ok ? 0 : TODO_EVALIDATION_ERROR;
}

claim_judgement_t claim_judge(const claim_record_t *r, const claim_self_t *self, const char *owner,
                              int64_t now)
{
    switch (r->status) {
    case CLAIM_SENT:
        return CLAIM_JUDGE_SENT;
    case CLAIM_FAILED:
        return CLAIM_JUDGE_FAILED;
    case CLAIM_RETRY:
        return CLAIM_JUDGE_TAKE;
    case CLAIM_SENDING:
        break;
    }
    if (owner && strcmp(r->owner, owner) == 0)
        return CLAIM_JUDGE_MINE;
    /* The same instance under another run: that run has ended (crashed), it sends nothing. */
    if (strcmp(r->instance, self->instance) == 0 && strcmp(r->boot, self->boot) != 0)
        return CLAIM_JUDGE_TAKE;
    return now >= r->lease_until ? CLAIM_JUDGE_TAKE : CLAIM_JUDGE_BUSY;
}

/* Reads the record of key: 0 with *rec and etag, TODO_ENOT_FOUND, TODO_EVALIDATION_ERROR for
 * something unreadable, or the client's error. */
static int read_record(const claim_ctx_t *c, const char *key, claim_record_t *rec,
                       char etag[DAPR_ETAG_MAX])
{
    char *value = NULL;
    int rc = dapr_state_get(c->dapr, c->store, key, &value, etag);
    if (rc == 0) {
        size_t n = strlen(value);
        rc = n <= CLAIM_RECORD_MAX ? claim_record_parse(value, n, rec) : TODO_EVALIDATION_ERROR;
    }
    free(value);
    return rc;
}

/* Saves rec under key (with etag, or first-write without). */
static int write_record(const claim_ctx_t *c, const char *key, const claim_record_t *rec,
                        const char *etag)
{
    char *json = claim_record_json(rec);
    int rc = dapr_state_save(c->dapr, c->store, key, json, etag, true, c->ttl_seconds);
    free(json);
    return rc;
}

/* After a save of out->rec succeeded: the ETag it got, confirmed by the owner read back. */
static claim_result_t confirm(const claim_ctx_t *c, claim_t *out)
{
    claim_record_t found;
    int rc = read_record(c, out->key, &found, out->etag);
    if (rc == TODO_EVALIDATION_ERROR)
        return CLAIM_UNREADABLE;
    if (rc != 0)
        return CLAIM_UNAVAILABLE;
    if (found.status != CLAIM_SENDING || strcmp(found.owner, out->rec.owner) != 0) {
        out->rec = found;
        return CLAIM_BUSY; /* taken over between the save and the read: not ours any more */
    }
    return CLAIM_ACQUIRED;
}

claim_result_t claim_acquire(const claim_ctx_t *c, const char *event_id, int64_t task_id,
                             claim_t *out)
{
    int64_t now = time_now_usec();
    claim_record_t *rec = &out->rec, found;
    char found_etag[DAPR_ETAG_MAX];

    memset(out, 0, sizeof(*out));
    snprintf(out->key, sizeof(out->key), "%s%s", CLAIM_KEY_PREFIX, event_id);
    rec->status = CLAIM_SENDING;
    todo_uuid_v4(rec->owner);
    snprintf(rec->instance, sizeof(rec->instance), "%s", c->self.instance);
    snprintf(rec->boot, sizeof(rec->boot), "%s", c->self.boot);
    rec->claimed_at = now;
    rec->lease_until = now + c->lease_usec;
    rec->attempts = 1;
    rec->task_id = task_id;

    if (write_record(c, out->key, rec, NULL) == 0)
        return confirm(c, out);

    /* §5.3: an existing key makes first-write fail with a 500, not a 409 — so look. */
    int rc = read_record(c, out->key, &found, found_etag);
    if (rc == TODO_EVALIDATION_ERROR)
        return CLAIM_UNREADABLE;
    if (rc != 0)
        return CLAIM_UNAVAILABLE; /* absent too: the save failed for another reason */
    switch (claim_judge(&found, &c->self, rec->owner, time_now_usec())) {
    case CLAIM_JUDGE_SENT:
        *rec = found;
        return CLAIM_WAS_SENT;
    case CLAIM_JUDGE_FAILED:
        *rec = found;
        return CLAIM_WAS_FAILED;
    case CLAIM_JUDGE_BUSY:
        *rec = found;
        return CLAIM_BUSY;
    case CLAIM_JUDGE_MINE: /* our save went through, its answer did not */
        snprintf(out->etag, sizeof(out->etag), "%s", found_etag);
        return CLAIM_ACQUIRED;
    case CLAIM_JUDGE_TAKE:
        break;
    }
    log_info("claim", "%s: taking over the %s claim of %s (attempt %lld)", out->key,
             status_names[found.status], found.instance, (long long)found.attempts);
    now = time_now_usec();
    rec->claimed_at = now;
    rec->lease_until = now + c->lease_usec;
    rec->attempts = found.attempts + 1;
    rc = write_record(c, out->key, rec, found_etag);
    if (rc == TODO_ECONFLICT) {
        *rec = found;
        return CLAIM_BUSY; /* another attempt took it first */
    }
    return rc == 0 ? confirm(c, out) : CLAIM_UNAVAILABLE;
}

int claim_finish(const claim_ctx_t *c, claim_t *cl, claim_status_t status, const char *detail)
{
    cl->rec.status = status;
    cl->rec.finished_at = time_now_usec();
    if (status == CLAIM_RETRY)
        cl->rec.lease_until = cl->rec.finished_at;
    snprintf(cl->rec.detail, sizeof(cl->rec.detail), "%s", detail ? detail : "");
    int rc = write_record(c, cl->key, &cl->rec, cl->etag);
    cl->etag[0] = '\0'; /* spent: the record has a new one */
    return rc;
}

int claim_record_refusal(const claim_ctx_t *c, const char *event_id, const char *why)
{
    claim_record_t rec;
    char key[CLAIM_KEY_MAX];
    memset(&rec, 0, sizeof(rec));
    snprintf(key, sizeof(key), "%s%s", CLAIM_KEY_PREFIX, event_id);
    rec.status = CLAIM_FAILED;
    todo_uuid_v4(rec.owner);
    snprintf(rec.instance, sizeof(rec.instance), "%s", c->self.instance);
    snprintf(rec.boot, sizeof(rec.boot), "%s", c->self.boot);
    rec.claimed_at = rec.lease_until = rec.finished_at = time_now_usec();
    rec.attempts = 1;
    snprintf(rec.detail, sizeof(rec.detail), "malformed event: %s", why ? why : "");
    return write_record(c, key, &rec, NULL);
}
