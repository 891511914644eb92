/* REST handlers of /api/{user_id}/categories… and /api/{user_id}/tags…; see api_labels.h. */
#include "api_labels.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "label_store.h"
#include "todo/alloc.h"

typedef struct {
    const label_kind_t *kind;
    int64_t id;
    char *name; /* trimmed, or NULL when absent */
    bool set_color;
    const char *color; /* borrowed from the body; NULL clears */
} label_change_t;

static bool color_valid(const char *c)
{
    if (strlen(c) != 7 || c[0] != '#')
        return false;
    for (int i = 1; i < 7; i++)
        if (!isxdigit((unsigned char)c[i]))
            return false;
    return true;
}

/* Reads {name, color} into c; require_name for create. */
static void read_label(const json_t *body, bool require_name, label_change_t *c, json_errors_t *e)
{
    static const char *const keys[] = {"name", "color", NULL};
    const char *s = NULL;
    json_reject_unknown(body, keys, e);
    json_field_t k = json_get_string(body, "name", &s, e);
    if (k == JSON_FIELD_VALUE) {
        while (isspace((unsigned char)*s))
            s++;
        size_t n = strlen(s);
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        c->name = xstrndup(s, n);
        size_t len = json_utf8_length(c->name);
        if (len < 1 || len > (size_t)c->kind->name_max) {
            char msg[64];
            snprintf(msg, sizeof(msg), "must be 1 to %d characters", c->kind->name_max);
            json_errors_add(e, "name", msg);
        }
    } else if (k == JSON_FIELD_NULL || (k == JSON_FIELD_ABSENT && require_name)) {
        json_errors_add(e, "name", "is required");
    }
    k = json_get_string(body, "color", &s, e);
    if (k == JSON_FIELD_VALUE || k == JSON_FIELD_NULL) {
        c->set_color = true;
        c->color = k == JSON_FIELD_VALUE ? s : NULL;
        if (c->color && !color_valid(c->color))
            json_errors_add(e, "color", "must be #RRGGBB");
    }
}

static int conflict_or(int rc, const label_kind_t *k, api_result_t *out)
{
    if (rc == TODO_ECONFLICT)
        out->detail =
            k == &label_tag ? "a tag with this name exists" : "a category with this name exists";
    else if (rc == TODO_ENOT_FOUND)
        out->detail = k == &label_tag ? "no such tag" : "no such category";
    return rc;
}

static int create_op(api_ctx_t *ctx, void *arg, api_result_t *out)
{
    label_change_t *c = arg;
    int64_t id = 0;
    int rc = label_store_insert(ctx->db, c->kind, ctx->claims.sub, c->name, c->color, &id);
    if (rc == TODO_EVALIDATION_ERROR)
        return api_field_error(out, "name",
                               c->kind == &label_tag ? "at most 100 tags per user"
                                                     : "at most 50 categories per user");
    if (rc != 0)
        return conflict_or(rc, c->kind, out);
    rc = label_store_get(ctx->db, c->kind, ctx->claims.sub, id, &out->body);
    if (rc != 0)
        return rc;
    out->status = 201;
    snprintf(out->location, sizeof(out->location), "/api/%s/%s/%lld", ctx->claims.sub,
             c->kind->path, (long long)id);
    return 0;
}

static int update_op(api_ctx_t *ctx, void *arg, api_result_t *out)
{
    label_change_t *c = arg;
    int rc = label_store_update(ctx->db, c->kind, ctx->claims.sub, c->id, c->name, c->set_color,
                                c->color, ctx->req->traceparent);
    if (rc == 0)
        rc = label_store_get(ctx->db, c->kind, ctx->claims.sub, c->id, &out->body);
    out->status = 200;
    return conflict_or(rc, c->kind, out);
}

static int delete_op(api_ctx_t *ctx, void *arg, api_result_t *out)
{
    label_change_t *c = arg;
    out->status = 204;
    return conflict_or(
        label_store_delete(ctx->db, c->kind, ctx->claims.sub, c->id, ctx->req->traceparent),
        c->kind, out);
}

/* One handler for all five routes of both kinds: the route's arg is the kind. */
static int labels_handle(http_req_t *req)
{
    const label_kind_t *kind = req->route_arg;
    bool one = req->nparams > 1;
    bool with_body = strcmp(req->method, "POST") == 0 || strcmp(req->method, "PATCH") == 0;
    label_change_t c = {.kind = kind};
    api_ctx_t ctx;
    json_errors_t e;
    char *json = NULL;
    int rc = 0;

    json_errors_init(&e);
    if (api_begin(req, &ctx, with_body) != 0)
        goto out;
    if (one && !api_parse_id(req->params[1], &c.id)) {
        rc = http_send_error(req, TODO_ENOT_FOUND, NULL, NULL);
        goto out;
    }
    if (strcmp(req->method, "GET") == 0) {
        rc = one ? label_store_get(ctx.db, kind, ctx.claims.sub, c.id, &json)
                 : label_store_list(ctx.db, kind, ctx.claims.sub, &json);
        rc = rc ? http_send_error(req, rc, NULL, NULL)
                : http_respond(req, 200, "application/json", json, strlen(json));
        goto out;
    }
    if (with_body) {
        read_label(ctx.body, !one, &c, &e);
        if (json_errors_any(&e)) {
            rc = api_validation_error(req, &e);
            goto out;
        }
    }
    rc = api_run(&ctx,
                 strcmp(req->method, "POST") == 0    ? create_op
                 : strcmp(req->method, "PATCH") == 0 ? update_op
                                                     : delete_op,
                 &c);
out:
    free(json);
    free(c.name);
    json_errors_dispose(&e);
    api_end(&ctx);
    return rc;
}

int api_labels_register(http_server_t *srv)
{
    const label_kind_t *kinds[] = {&label_category, &label_tag};
    for (int i = 0; i < 2; i++) {
        char many[64], one[64];
        snprintf(many, sizeof(many), "/api/{user_id}/%s", kinds[i]->path);
        snprintf(one, sizeof(one), "/api/{user_id}/%s/{id}", kinds[i]->path);
        void *arg = (void *)kinds[i];
        int rc;
        if ((rc = http_server_route(srv, "GET", many, labels_handle, arg)) != 0 ||
            (rc = http_server_route(srv, "POST", many, labels_handle, arg)) != 0 ||
            (rc = http_server_route(srv, "GET", one, labels_handle, arg)) != 0 ||
            (rc = http_server_route(srv, "PATCH", one, labels_handle, arg)) != 0 ||
            (rc = http_server_route(srv, "DELETE", one, labels_handle, arg)) != 0)
            return rc;
    }
    return 0;
}
