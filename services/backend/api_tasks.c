/* REST handlers of /api/{user_id}/tasks…; see api_tasks.h. Each change runs in one transaction
 * that also writes the task's CloudEvent to the outbox. */
#include "api_tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "task_input.h"
#include "task_store.h"
#include "todo/alloc.h"
#include "todo/timeutil.h"

#define QUERY_TEXT_MAX     500
#define SNOOZE_MINUTES_MAX 10080

/* Moves e's errors into out and returns TODO_EVALIDATION_ERROR. */
static int fail_fields(api_result_t *out, json_errors_t *e)
{
    out->errors = json_incref(e->list);
    out->detail = "some fields are invalid";
    return TODO_EVALIDATION_ERROR;
}

static void set_task_result(api_result_t *out, int status, char *json, int version)
{
    out->status = status;
    out->body = json;
    out->version = version;
}

/* ---- create ---- */

typedef struct {
    task_fields_t f;
} create_t;

static int create_op(api_ctx_t *ctx, void *arg, api_result_t *out)
{
    create_t *c = arg;
    json_errors_t e;
    int64_t id = 0;
    int rc;

    json_errors_init(&e);
    rc = task_store_check_refs(ctx->db, ctx->claims.sub, &c->f, &e);
    if (rc == TODO_EVALIDATION_ERROR)
        rc = fail_fields(out, &e);
    if (rc != 0)
        goto out;
    /* The task and its created event in one statement (one round trip). */
    char *json = NULL;
    rc = task_store_create(ctx->db, ctx->claims.sub, &c->f, NULL, "todo.task.created",
                           ctx->req->traceparent, &id, &json);
    if (rc != 0)
        goto out;
    set_task_result(out, 201, json, 1);
    snprintf(out->location, sizeof(out->location), "/api/%s/tasks/%lld", ctx->claims.sub,
             (long long)id);
out:
    json_errors_dispose(&e);
    return rc;
}

static int tasks_create(http_req_t *req)
{
    api_ctx_t ctx;
    task_input_t in;
    create_t c;
    json_errors_t e;
    int rc;

    if (api_begin(req, &ctx, true) != 0)
        return 0;
    json_errors_init(&e);
    task_input_parse(ctx.body, true, &in, &e);
    task_fields_init(&c.f);
    task_input_apply(&in, &c.f);
    task_fields_check(&c.f, &e);
    if (json_errors_any(&e))
        rc = api_validation_error(req, &e);
    else
        rc = api_run(&ctx, create_op, &c);
    task_fields_dispose(&c.f);
    task_input_dispose(&in);
    json_errors_dispose(&e);
    api_end(&ctx);
    return rc;
}

/* ---- changes of one task ---- */

typedef enum {
    CHANGE_REPLACE,
    CHANGE_PATCH,
    CHANGE_COMPLETE,
    CHANGE_REOPEN,
    CHANGE_TOGGLE,
    CHANGE_SNOOZE,
    CHANGE_TAG_ADD,
    CHANGE_TAG_REMOVE,
    CHANGE_DELETE
} change_kind_t;

typedef struct {
    change_kind_t kind;
    int64_t id;
    int64_t tag_id;     /* tag changes */
    int snooze_minutes; /* snooze */
    task_input_t in;    /* replace, patch */
    api_precondition_t pre;
} change_t;

/* Applies the change to f (the current fields); *changed false when there is nothing to do. */
static int apply_change(api_ctx_t *ctx, change_t *c, task_fields_t *f, bool *set_tags,
                        bool *changed, api_result_t *out)
{
    json_errors_t e;
    int rc = 0;

    json_errors_init(&e);
    *set_tags = false;
    *changed = true;
    switch (c->kind) {
    case CHANGE_REPLACE: {
        task_fields_t fresh;
        task_fields_init(&fresh);
        fresh.completed = f->completed; /* completed changes only when given */
        task_fields_dispose(f);
        *f = fresh;
        c->in.has |= TASK_F_TAGS; /* a replace without tag_ids clears them */
    }
        /* fall through */
    case CHANGE_PATCH:
        *set_tags = (c->in.has & TASK_F_TAGS) != 0;
        task_input_apply(&c->in, f);
        task_fields_check(f, &e);
        if (json_errors_any(&e)) {
            rc = fail_fields(out, &e);
            break;
        }
        rc = task_store_check_refs(ctx->db, ctx->claims.sub, f, &e);
        if (rc == TODO_EVALIDATION_ERROR)
            rc = fail_fields(out, &e);
        break;
    case CHANGE_COMPLETE:
    case CHANGE_REOPEN:
        *changed = f->completed != (c->kind == CHANGE_COMPLETE);
        f->completed = c->kind == CHANGE_COMPLETE;
        break;
    case CHANGE_TOGGLE:
        f->completed = !f->completed;
        break;
    case CHANGE_SNOOZE:
        f->has_remind_at = true;
        f->remind_at = time_now_usec() + (int64_t)c->snooze_minutes * 60 * 1000000;
        f->has_remind_before = false;
        break;
    case CHANGE_TAG_ADD:
    case CHANGE_TAG_REMOVE: {
        int at = -1;
        for (int i = 0; i < f->ntags; i++)
            if (f->tag_ids[i] == c->tag_id)
                at = i;
        *set_tags = true;
        if (c->kind == CHANGE_TAG_REMOVE && at >= 0) {
            f->tag_ids[at] = f->tag_ids[--f->ntags];
            break;
        }
        /* The tag must be the user's own, whether or not the task has it. */
        task_fields_t probe;
        task_fields_init(&probe);
        probe.tag_ids[0] = c->tag_id;
        probe.ntags = 1;
        rc = task_store_check_refs(ctx->db, ctx->claims.sub, &probe, &e);
        task_fields_dispose(&probe);
        if (rc == TODO_EVALIDATION_ERROR) {
            out->detail = "no such tag";
            rc = TODO_ENOT_FOUND;
            break;
        }
        if (rc != 0 || at >= 0 || c->kind == CHANGE_TAG_REMOVE) {
            *changed = false;
            break;
        }
        if (f->ntags == TASK_MAX_TAGS) {
            json_errors_add(&e, "tag_ids", "must have at most 10 tags");
            rc = fail_fields(out, &e);
            break;
        }
        f->tag_ids[f->ntags++] = c->tag_id;
        break;
    }
    case CHANGE_DELETE:
        break;
    }
    json_errors_dispose(&e);
    return rc;
}

static int change_op(api_ctx_t *ctx, void *arg, api_result_t *out)
{
    change_t *c = arg;
    task_fields_t f;
    int version = 0, rc;
    bool set_tags = false, changed = false, was_completed;
    char *json = NULL;

    task_fields_init(&f);
    rc = task_store_load(ctx->db, ctx->claims.sub, c->id, &f, &version);
    if (rc == TODO_ENOT_FOUND)
        out->detail = "no such task";
    if (rc != 0)
        goto out;
    if (!api_precondition_ok(&c->pre, version)) {
        out->detail = "If-Match does not match the task's current version";
        rc = TODO_EPRECONDITION_FAILED;
        goto out;
    }
    if (c->kind == CHANGE_DELETE) {
        rc = task_store_delete(ctx->db, c->id, ctx->req->traceparent);
        out->status = 204;
        goto out;
    }
    was_completed = f.completed;
    rc = apply_change(ctx, c, &f, &set_tags, &changed, out);
    if (rc != 0)
        goto out;
    if (!changed) {
        rc = task_store_get(ctx->db, ctx->claims.sub, c->id, &json, &version);
        if (rc == 0)
            set_task_result(out, 200, json, version);
        goto out;
    }
    rc = task_store_update(ctx->db, c->id, &f, set_tags);
    if (rc != 0)
        goto out;
    const char *type = f.completed == was_completed ? "todo.task.updated"
                       : f.completed                ? "todo.task.completed"
                                                    : "todo.task.reopened";
    rc = task_store_emit(ctx->db, c->id, type, ctx->req->traceparent, NULL, &json);
    if (rc == 0)
        set_task_result(out, 200, json, version + 1);
out:
    task_fields_dispose(&f);
    return rc;
}

/* Runs a change of kind on the task in params[1]; body_kind says what the body holds. */
static int run_change(http_req_t *req, change_kind_t kind)
{
    api_ctx_t ctx;
    change_t c;
    json_errors_t e;
    int rc = 0;
    bool with_body = kind == CHANGE_REPLACE || kind == CHANGE_PATCH || kind == CHANGE_SNOOZE;

    memset(&c, 0, sizeof(c));
    task_fields_init(&c.in.fields);
    json_errors_init(&e);
    c.kind = kind;
    if (api_begin(req, &ctx, with_body) != 0)
        goto out;
    if (!api_parse_id(req->params[1], &c.id)) {
        rc = http_send_error(req, TODO_ENOT_FOUND, "no such task", NULL);
        goto out;
    }
    if ((kind == CHANGE_TAG_ADD || kind == CHANGE_TAG_REMOVE) &&
        !api_parse_id(req->params[2], &c.tag_id)) {
        rc = http_send_error(req, TODO_ENOT_FOUND, "no such tag", NULL);
        goto out;
    }
    api_precondition_read(req, &c.pre);
    if (kind == CHANGE_REPLACE || kind == CHANGE_PATCH) {
        task_fields_dispose(&c.in.fields);
        task_input_parse(ctx.body, kind == CHANGE_REPLACE, &c.in, &e);
    } else if (kind == CHANGE_SNOOZE) {
        static const char *const keys[] = {"minutes", NULL};
        int64_t minutes = 0;
        json_reject_unknown(ctx.body, keys, &e);
        json_field_t k = json_get_int(ctx.body, "minutes", &minutes, &e);
        if (k != JSON_FIELD_VALUE && k != JSON_FIELD_WRONG_TYPE)
            json_errors_add(&e, "minutes", "is required");
        else if (k == JSON_FIELD_VALUE && (minutes < 1 || minutes > SNOOZE_MINUTES_MAX))
            json_errors_add(&e, "minutes", "must be between 1 and 10080");
        c.snooze_minutes = (int)minutes;
    }
    if (json_errors_any(&e))
        rc = api_validation_error(req, &e);
    else
        rc = api_run(&ctx, change_op, &c);
out:
    task_input_dispose(&c.in);
    json_errors_dispose(&e);
    api_end(&ctx);
    return rc;
}

static int tasks_replace(http_req_t *req)
{
    return run_change(req, CHANGE_REPLACE);
}
static int tasks_patch(http_req_t *req)
{
    return run_change(req, CHANGE_PATCH);
}
static int tasks_delete(http_req_t *req)
{
    return run_change(req, CHANGE_DELETE);
}
static int tasks_complete(http_req_t *req)
{
    return run_change(req, CHANGE_COMPLETE);
}
static int tasks_reopen(http_req_t *req)
{
    return run_change(req, CHANGE_REOPEN);
}
static int tasks_toggle(http_req_t *req)
{
    return run_change(req, CHANGE_TOGGLE);
}
static int tasks_snooze(http_req_t *req)
{
    return run_change(req, CHANGE_SNOOZE);
}
static int tasks_tag_add(http_req_t *req)
{
    return run_change(req, CHANGE_TAG_ADD);
}
static int tasks_tag_remove(http_req_t *req)
{
    return run_change(req, CHANGE_TAG_REMOVE);
}

/* ---- reads ---- */

static int tasks_get(http_req_t *req)
{
    api_ctx_t ctx;
    int64_t id;
    int version = 0, rc;
    char *json = NULL;

    if (api_begin(req, &ctx, false) != 0)
        return 0;
    if (!api_parse_id(req->params[1], &id)) {
        rc = http_send_error(req, TODO_ENOT_FOUND, "no such task", NULL);
        goto out;
    }
    rc = task_store_get(ctx.db, ctx.claims.sub, id, &json, &version);
    if (rc != 0) {
        rc = http_send_error(req, rc, rc == TODO_ENOT_FOUND ? "no such task" : NULL, NULL);
        goto out;
    }
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%d\"", version);
    http_add_header(req, "ETag", etag);
    rc = http_respond(req, 200, "application/json", json, strlen(json));
out:
    free(json);
    api_end(&ctx);
    return rc;
}

static bool query_id(http_req_t *req, const char *name, int64_t *out, json_errors_t *e)
{
    const char *v = http_req_query_param(req, name);
    if (!v)
        return true;
    if (!api_parse_id(v, out)) {
        json_errors_add(e, name, "must be a positive integer");
        return false;
    }
    return true;
}

static const char *query_time(http_req_t *req, const char *name, char buf[TIME_RFC3339_LEN],
                              json_errors_t *e)
{
    const char *v = http_req_query_param(req, name);
    int64_t us;
    if (!v)
        return NULL;
    if (time_parse_rfc3339(v, &us) != 0) {
        json_errors_add(e, name, "must be an RFC 3339 date-time with an offset");
        return NULL;
    }
    time_format_rfc3339(us, buf);
    return buf;
}

static int tasks_list(http_req_t *req)
{
    api_ctx_t ctx;
    task_query_t q = {.priority = -1, .limit = 50};
    json_errors_t e;
    char before[TIME_RFC3339_LEN], after[TIME_RFC3339_LEN];
    char *json = NULL, *cursor_value = NULL;
    const char *v;
    int rc;

    if (api_begin(req, &ctx, false) != 0)
        return 0;
    json_errors_init(&e);

    if ((v = http_req_query_param(req, "status"))) {
        if (strcmp(v, "all") == 0)
            q.status = 0;
        else if (strcmp(v, "pending") == 0)
            q.status = 1;
        else if (strcmp(v, "completed") == 0)
            q.status = 2;
        else
            json_errors_add(&e, "status", "must be all, pending or completed");
    }
    if ((v = http_req_query_param(req, "priority")) && (q.priority = task_priority_parse(v)) < 0)
        json_errors_add(&e, "priority", "must be one of low, medium, high, urgent");
    query_id(req, "category_id", &q.category_id, &e);
    query_id(req, "tag_id", &q.tag_id, &e);
    if ((v = http_req_query_param(req, "q")) && v[0]) {
        if (json_utf8_length(v) > QUERY_TEXT_MAX)
            json_errors_add(&e, "q", "must be at most 500 characters");
        q.q = v;
    }
    q.due_before = query_time(req, "due_before", before, &e);
    q.due_after = query_time(req, "due_after", after, &e);

    q.sort = q.q ? TASK_SORT_RANK : TASK_SORT_CREATED;
    if ((v = http_req_query_param(req, "sort"))) {
        if (strcmp(v, "created_at") == 0)
            q.sort = TASK_SORT_CREATED;
        else if (strcmp(v, "due_at") == 0)
            q.sort = TASK_SORT_DUE;
        else if (strcmp(v, "priority") == 0)
            q.sort = TASK_SORT_PRIORITY;
        else if (strcmp(v, "title") == 0)
            q.sort = TASK_SORT_TITLE;
        else
            json_errors_add(&e, "sort", "must be created_at, due_at, priority or title");
    }
    q.desc =
        q.sort == TASK_SORT_CREATED || q.sort == TASK_SORT_PRIORITY || q.sort == TASK_SORT_RANK;
    if ((v = http_req_query_param(req, "order"))) {
        if (strcmp(v, "asc") == 0)
            q.desc = false;
        else if (strcmp(v, "desc") == 0)
            q.desc = true;
        else
            json_errors_add(&e, "order", "must be asc or desc");
    }
    if ((v = http_req_query_param(req, "limit"))) {
        int64_t n = 0;
        if (!api_parse_id(v, &n) || n > 100)
            json_errors_add(&e, "limit", "must be between 1 and 100");
        else
            q.limit = (int)n;
    }
    if ((v = http_req_query_param(req, "cursor")) && !json_errors_any(&e) &&
        !task_cursor_decode(v, &q, &cursor_value))
        json_errors_add(&e, "cursor", "is not a cursor of this query");

    if (json_errors_any(&e)) {
        rc = api_validation_error(req, &e);
        goto out;
    }
    rc = task_store_list(ctx.db, ctx.claims.sub, &q, &json);
    if (rc != 0) {
        rc = http_send_error(req, rc, NULL, NULL);
        goto out;
    }
    rc = http_respond(req, 200, "application/json", json, strlen(json));
out:
    free(json);
    free(cursor_value);
    json_errors_dispose(&e);
    api_end(&ctx);
    return rc;
}

int api_tasks_register(http_server_t *srv)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
    } routes[] = {
        {"GET", "/api/{user_id}/tasks", tasks_list},
        {"POST", "/api/{user_id}/tasks", tasks_create},
        {"GET", "/api/{user_id}/tasks/{id}", tasks_get},
        {"PUT", "/api/{user_id}/tasks/{id}", tasks_replace},
        {"PATCH", "/api/{user_id}/tasks/{id}", tasks_patch},
        {"DELETE", "/api/{user_id}/tasks/{id}", tasks_delete},
        {"POST", "/api/{user_id}/tasks/{id}/complete", tasks_complete},
        {"PATCH", "/api/{user_id}/tasks/{id}/complete", tasks_toggle},
        {"POST", "/api/{user_id}/tasks/{id}/reopen", tasks_reopen},
        {"POST", "/api/{user_id}/tasks/{id}/snooze", tasks_snooze},
        {"PUT", "/api/{user_id}/tasks/{id}/tags/{tag_id}", tasks_tag_add},
        {"DELETE", "/api/{user_id}/tasks/{id}/tags/{tag_id}", tasks_tag_remove},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = http_server_route(srv, routes[i].method, routes[i].pattern, routes[i].fn, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}
