/* Unit tests of common/src/router.c: pattern checks, matching order, parameters and their
 * percent-decoding and bounds, 405 with the Allow list. */
#include <string.h>

#include "check.h"
#include "todo/router.h"

static int tasks, task, tag, root, health;

static router_result_t match(const router_t *r, const char *method, const char *path, char *storage,
                             size_t size, router_match_t *m)
{
    return router_match(r, method, path, strlen(path), storage, size, m);
}

static void test_add(void)
{
    router_t r;
    router_init(&r);
    CHECK_INT(router_add(&r, "GET", "/api/{user_id}/tasks", &tasks), 0);
    CHECK_INT(router_add(&r, "GET", "/", &root), 0);
    CHECK_INT(router_add(&r, "GET", "/a:b@c/x-y_z.~!$&'()*+,;=", NULL), 0);
    /* malformed methods */
    CHECK_INT(router_add(&r, "get", "/x", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "", "/x", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "VERYLONGMETHODNAME", "/x", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, NULL, "/x", NULL), TODO_EBAD_REQUEST);
    /* malformed patterns */
    CHECK_INT(router_add(&r, "GET", "", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "x", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", NULL, NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/{}", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/{a-b}", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/x{id}", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/{id", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/a%20b", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/a b", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/a\"b", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/{a}/{b}/{c}/{d}/{e}", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", NULL),
              TODO_EBAD_REQUEST);
    char big[ROUTER_PATTERN_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(router_add(&r, "GET", big, NULL), TODO_EBAD_REQUEST);
    big[sizeof(big) - 2] = '\0';
    CHECK_INT(router_add(&r, "GET", big, NULL), 0);
    /* the same method and shape twice, parameter names aside */
    CHECK_INT(router_add(&r, "GET", "/api/{other}/tasks", NULL), TODO_ECONFLICT);
    CHECK_INT(router_add(&r, "POST", "/api/{other}/tasks", NULL), 0);
    CHECK_INT(router_add(&r, "GET", "/api/me/tasks", NULL), 0);
    CHECK_INT(r.n, 6);
    CHECK_INT(r.routes[0]->index, 0);
    CHECK_STR(r.routes[0]->pattern, "/api/{user_id}/tasks");
    CHECK_INT(r.routes[0]->nparams, 1);
    CHECK_INT(r.routes[5]->index, 5);
    router_dispose(&r);
    CHECK_INT(r.n, 0);
    router_dispose(&r); /* twice is harmless */
}

static void test_match(void)
{
    router_t r;
    router_match_t m;
    char storage[64];

    router_init(&r);
    CHECK_INT(router_add(&r, "GET", "/api/{user_id}/tasks", &tasks), 0);
    CHECK_INT(router_add(&r, "POST", "/api/{user_id}/tasks", &tasks), 0);
    CHECK_INT(router_add(&r, "GET", "/api/{user_id}/tasks/{id}", &task), 0);
    CHECK_INT(router_add(&r, "DELETE", "/api/{user_id}/tasks/{id}", &task), 0);
    CHECK_INT(router_add(&r, "PUT", "/api/{user_id}/tasks/{id}/tags/{tag_id}", &tag), 0);
    CHECK_INT(router_add(&r, "DELETE", "/api/{user_id}/tasks/{id}/tags/{tag_id}", &tag), 0);
    CHECK_INT(router_add(&r, "GET", "/healthz", &health), 0);
    CHECK_INT(router_add(&r, "GET", "/", &root), 0);

    CHECK_INT(match(&r, "GET", "/api/u1/tasks", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route && m.route->data == &tasks);
    CHECK_STR(m.route->method, "GET");
    CHECK_INT(m.nparams, 1);
    CHECK_STR(m.params[0], "u1");
    CHECK_STR(m.allow, "");

    CHECK_INT(match(&r, "POST", "/api/u1/tasks", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK_STR(m.route->method, "POST");

    CHECK_INT(match(&r, "PUT", "/api/u%201/tasks/42/tags/a%2Fb", storage, sizeof(storage), &m),
              ROUTER_FOUND);
    CHECK(m.route && m.route->data == &tag);
    CHECK_INT(m.nparams, 3);
    CHECK_STR(m.params[0], "u 1");
    CHECK_STR(m.params[1], "42");
    CHECK_STR(m.params[2], "a/b");
    /* the parameters are in the caller's storage */
    CHECK(m.params[0] >= storage && m.params[2] < storage + sizeof(storage));

    CHECK_INT(match(&r, "GET", "/", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route && m.route->data == &root);
    CHECK_INT(m.nparams, 0);

    /* literals match their percent-encoded spelling too */
    CHECK_INT(match(&r, "GET", "/%68ealthz", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route && m.route->data == &health);
    CHECK_INT(match(&r, "GET", "/api/u1/%74asks", storage, sizeof(storage), &m), ROUTER_FOUND);

    /* not found */
    CHECK_INT(match(&r, "GET", "/nope", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK(m.route == NULL);
    CHECK_STR(m.allow, "");
    CHECK_INT(match(&r, "GET", "/api/u1/tasks/", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/api//tasks", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/healthz/", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/HEALTHZ", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "healthz", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", storage,
                    sizeof(storage), &m),
              ROUTER_NOT_FOUND);
    /* malformed or NUL percent-escapes in a parameter */
    CHECK_INT(match(&r, "GET", "/api/u%2/tasks", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/api/u%zz/tasks", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/api/u%/tasks", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "GET", "/api/u%00/tasks", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    /* ... and in a literal */
    CHECK_INT(match(&r, "GET", "/%6", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);

    /* 405: the Allow list has every method of the path, in the order added, once each */
    CHECK_INT(match(&r, "PATCH", "/api/u1/tasks/7", storage, sizeof(storage), &m),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK(m.route && m.route->data == &task);
    CHECK_STR(m.route->pattern, "/api/{user_id}/tasks/{id}");
    CHECK_STR(m.allow, "GET, HEAD, DELETE");
    CHECK_INT(m.nparams, 0);
    CHECK_INT(match(&r, "get", "/api/u1/tasks", storage, sizeof(storage), &m),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "GET, HEAD, POST");
    CHECK_INT(match(&r, "POST", "/healthz", storage, sizeof(storage), &m),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "GET, HEAD");
    CHECK_INT(match(&r, "GET", "/api/u1/tasks/7/tags/x", storage, sizeof(storage), &m),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "PUT, DELETE");

    /* HEAD goes to the GET route of the path */
    CHECK_INT(match(&r, "HEAD", "/api/u1/tasks/7", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route && m.route->data == &task);
    CHECK_STR(m.route->method, "GET");
    CHECK_STR(m.params[1], "7");
    CHECK_INT(match(&r, "HEAD", "/api/u1/tasks/7/tags/x", storage, sizeof(storage), &m),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "PUT, DELETE");
    /* a malformed parameter is not found, whatever the method */
    CHECK_INT(match(&r, "PATCH", "/api/u%zz/tasks/7", storage, sizeof(storage), &m),
              ROUTER_NOT_FOUND);

    router_dispose(&r);
}

static void test_bounds(void)
{
    router_t r;
    router_match_t m;
    char storage[8];

    router_init(&r);
    CHECK_INT(router_add(&r, "GET", "/a/{x}/{y}", &task), 0);
    /* "1234" + NUL + "12" + NUL = 8 bytes: fits exactly */
    CHECK_INT(match(&r, "GET", "/a/1234/12", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK_STR(m.params[0], "1234");
    CHECK_STR(m.params[1], "12");
    /* one byte more does not */
    CHECK_INT(match(&r, "GET", "/a/1234/123", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    /* the decoded length counts, not the raw one */
    CHECK_INT(match(&r, "GET", "/a/%31%32%33%34/%31%32", storage, sizeof(storage), &m),
              ROUTER_FOUND);
    CHECK_STR(m.params[0], "1234");
    CHECK_INT(match(&r, "GET", "/a/1234/12", storage, 0, &m), ROUTER_NOT_FOUND);
    /* too long for this route's method: the path does not match at all, so no 405 either */
    CHECK_INT(match(&r, "POST", "/a/12345678/1", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    router_dispose(&r);
}

/* The first route added wins when several match. */
static void test_order(void)
{
    router_t r;
    router_match_t m;
    char storage[32];
    int me, any;

    router_init(&r);
    CHECK_INT(router_add(&r, "GET", "/users/me", &me), 0);
    CHECK_INT(router_add(&r, "GET", "/users/{id}", &any), 0);
    CHECK_INT(match(&r, "GET", "/users/me", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route->data == &me);
    CHECK_INT(m.nparams, 0);
    CHECK_INT(match(&r, "GET", "/users/you", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route->data == &any);
    CHECK_STR(m.params[0], "you");
    router_dispose(&r);

    router_init(&r);
    CHECK_INT(router_add(&r, "GET", "/users/{id}", &any), 0);
    CHECK_INT(router_add(&r, "GET", "/users/me", &me), 0);
    CHECK_INT(match(&r, "GET", "/users/me", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route->data == &any);
    /* a HEAD route of its own wins over the GET one, wherever it is */
    CHECK_INT(match(&r, "HEAD", "/users/me", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route->data == &any);
    CHECK_INT(router_add(&r, "HEAD", "/users/me", &me), 0);
    CHECK_INT(match(&r, "HEAD", "/users/me", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route->data == &me);
    CHECK_STR(m.route->method, "HEAD");
    router_dispose(&r);
}

/* A trailing "{name*}" takes the rest of the path, '/' included. */
static void test_rest(void)
{
    router_t r;
    router_match_t m;
    char storage[64];
    int bulk, one;

    router_init(&r);
    CHECK_INT(router_add(&r, "POST", "/v1/publish/bulk/{pubsub}/{topic*}", &bulk), 0);
    CHECK_INT(router_add(&r, "POST", "/v1/publish/{pubsub}/{topic*}", &one), 0);
    CHECK_INT(router_add(&r, "POST", "/v1/publish/{p}/{t*}", NULL), TODO_ECONFLICT);
    CHECK_INT(router_add(&r, "POST", "/v1/publish/{p}/{t}", NULL), 0); /* another shape */
    CHECK_INT(router_add(&r, "GET", "/x/{r*}/y", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/x/{*}", NULL), TODO_EBAD_REQUEST);
    CHECK_INT(router_add(&r, "GET", "/x/{a-*}", NULL), TODO_EBAD_REQUEST);

    CHECK_INT(match(&r, "POST", "/v1/publish/ps/orders", storage, sizeof(storage), &m),
              ROUTER_FOUND);
    CHECK(m.route->data == &one);
    CHECK_INT(m.nparams, 2);
    CHECK_STR(m.params[0], "ps");
    CHECK_STR(m.params[1], "orders");
    CHECK_INT(match(&r, "POST", "/v1/publish/ps/a/b%20c/", storage, sizeof(storage), &m),
              ROUTER_FOUND);
    CHECK(m.route->data == &one);
    CHECK_STR(m.params[1], "a/b c/");
    CHECK_INT(match(&r, "POST", "/v1/publish/ps/", storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK_STR(m.params[1], "");
    CHECK_INT(match(&r, "POST", "/v1/publish/ps", storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "POST", "/v1/publish/bulk/ps/t/u", storage, sizeof(storage), &m),
              ROUTER_FOUND);
    CHECK(m.route->data == &bulk);
    CHECK_STR(m.params[0], "ps");
    CHECK_STR(m.params[1], "t/u");
    CHECK_INT(match(&r, "GET", "/v1/publish/ps/t", storage, sizeof(storage), &m),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "POST");
    /* malformed escapes and NUL bytes do not match; nor does a rest too big for storage */
    CHECK_INT(match(&r, "POST", "/v1/publish/ps/a/%zz", storage, sizeof(storage), &m),
              ROUTER_NOT_FOUND);
    CHECK_INT(match(&r, "POST", "/v1/publish/ps/a/%00", storage, sizeof(storage), &m),
              ROUTER_NOT_FOUND);
    char path[200] = "/v1/publish/ps/";
    memset(path + strlen(path), 'x', 80);
    CHECK_INT(match(&r, "POST", path, storage, sizeof(storage), &m), ROUTER_NOT_FOUND);
    /* more segments than ROUTER_MAX_SEGMENTS fit the rest */
    strcpy(path, "/v1/publish/ps");
    for (int i = 0; i < 20; i++)
        strcat(path, "/s");
    CHECK_INT(match(&r, "POST", path, storage, sizeof(storage), &m), ROUTER_FOUND);
    CHECK(m.route->data == &one);
    CHECK_INT(strlen(m.params[1]), 39);
    router_dispose(&r);
}

int main(void)
{
    test_add();
    test_match();
    test_bounds();
    test_order();
    test_rest();
    return check_exit();
}
