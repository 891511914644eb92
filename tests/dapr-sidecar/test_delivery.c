/* Unit tests of delivery.c's pure parts: every row of the app reply table of DAPR-CONTRACT §3.2
 * and the header names of message metadata (§3.1). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "delivery.h"

static delivery_verdict_t judge(int status, const char *body, int *code)
{
    app_response_t r = {.status = status,
                        .body = body ? strdup(body) : NULL,
                        .len = body ? strlen(body) : 0,
                        .transport_error = false};
    delivery_verdict_t v = delivery_judge(&r, code);
    free(r.body);
    return v;
}

static void test_judge(void)
{
    int code = -1;
    /* 2xx, empty body */
    CHECK_INT(judge(200, "", &code), DELIVERY_SUCCESS);
    CHECK_INT(code, 0);
    CHECK_INT(judge(204, NULL, &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "  \n", &code), DELIVERY_SUCCESS);
    /* 2xx, not JSON / not an object */
    CHECK_INT(judge(200, "OK", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "[\"RETRY\"]", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "\"RETRY\"", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(201, "{\"status\":5}", &code), DELIVERY_SUCCESS);
    /* 2xx, {} or no status or "" */
    CHECK_INT(judge(200, "{}", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "null", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "{\"other\":1}", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "{\"status\":\"\"}", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(200, "{\"status\":null}", &code), DELIVERY_SUCCESS);
    /* SUCCESS */
    CHECK_INT(judge(200, "{\"status\":\"SUCCESS\"}", &code), DELIVERY_SUCCESS);
    CHECK_INT(judge(299, "{\"status\":\"SUCCESS\"}", &code), DELIVERY_SUCCESS);
    /* RETRY, case-insensitive key, first value only */
    CHECK_INT(judge(200, "{\"status\":\"RETRY\"}", &code), DELIVERY_RETRY);
    CHECK_INT(code, 0);
    CHECK_INT(judge(200, "{\"Status\":\"RETRY\"}", &code), DELIVERY_RETRY);
    CHECK_INT(judge(200, "{\"status\":\"RETRY\"} trailing", &code), DELIVERY_RETRY);
    /* DROP */
    CHECK_INT(judge(200, "{\"status\":\"DROP\"}", &code), DELIVERY_DROP);
    CHECK_INT(code, 0);
    /* any other status string, case-sensitive: "success" is unknown → retry */
    CHECK_INT(judge(200, "{\"status\":\"success\"}", &code), DELIVERY_RETRY);
    CHECK_INT(judge(200, "{\"status\":\"drop\"}", &code), DELIVERY_RETRY);
    CHECK_INT(judge(200, "{\"status\":\"whatever\"}", &code), DELIVERY_RETRY);
    CHECK_INT(code, 0);
    /* 404 → drop */
    CHECK_INT(judge(404, "{\"status\":\"RETRY\"}", &code), DELIVERY_DROP);
    CHECK_INT(code, 0);
    /* any other status → retry, carrying the code */
    const int others[] = {400, 409, 500, 503, 301, 100, 418};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        CHECK_INT(judge(others[i], "{\"status\":\"SUCCESS\"}", &code), DELIVERY_RETRY);
        CHECK_INT(code, others[i]);
    }
    /* connection error / timeout */
    app_response_t r = {.transport_error = true};
    CHECK_INT(delivery_judge(&r, &code), DELIVERY_RETRY);
    CHECK_INT(code, 0);
}

static void test_header_name(void)
{
    char out[64];
    struct {
        const char *in, *want;
    } cases[] = {
        {"partitionKey", "Partitionkey"},
        {"__key", "__key"},
        {"__topic", "__topic"},
        {"x-my-KEY", "X-My-Key"},
        {"cloudevent.id", "Cloudevent.id"},
        {"ttlInSeconds", "Ttlinseconds"},
        {"has space", "has space"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        delivery_header_name(cases[i].in, out, sizeof(out));
        CHECK_STR(out, cases[i].want);
    }
    delivery_header_name("abcdef", out, 4);
    CHECK_STR(out, "Abc");
}

int main(void)
{
    test_judge();
    test_header_name();
    return check_exit();
}
