/* Unit tests of resiliency.c: the retry schedules of constant and exponential policies
 * (DAPR-CONTRACT §4), maxRetries -1/0/n, the 15-minute exponential limit and the
 * matching.httpStatusCodes filter — computed, never slept. */
#include <stdlib.h>

#include "check.h"
#include "resiliency.h"

static res_retry_t policy(res_retry_policy_t kind, int64_t duration_ms, int64_t max_interval_ms,
                          int64_t max_retries)
{
    res_retry_t p = {.name = "p",
                     .policy = kind,
                     .duration_ms = duration_ms,
                     .max_interval_ms = max_interval_ms,
                     .max_retries = max_retries};
    return p;
}

static void test_none(void)
{
    resiliency_backoff_t b;
    resiliency_backoff_init(&b, NULL);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), -1); /* no policy: one attempt */
}

static void test_constant(void)
{
    resiliency_backoff_t b;
    res_retry_t p = policy(RES_RETRY_CONSTANT, 100, 60000, 3);
    resiliency_backoff_init(&b, &p);
    for (int i = 0; i < 3; i++)
        CHECK_INT(resiliency_backoff_next(&b, 0.9, i * 100), 100);
    CHECK_INT(resiliency_backoff_next(&b, 0.9, 300), -1);

    p = policy(RES_RETRY_CONSTANT, 5000, 60000, 0); /* 0 = no retry */
    resiliency_backoff_init(&b, &p);
    CHECK_INT(resiliency_backoff_next(&b, 0.1, 0), -1);

    p = policy(RES_RETRY_CONSTANT, 5000, 60000, -1); /* unlimited, even past 15 minutes */
    resiliency_backoff_init(&b, &p);
    for (int i = 0; i < 1000; i++)
        CHECK_INT(resiliency_backoff_next(&b, 0.1, (int64_t)i * 5000), 5000);
}

static void test_exponential(void)
{
    resiliency_backoff_t b;
    res_retry_t p = policy(RES_RETRY_EXPONENTIAL, 99999, 2000, -1);
    resiliency_backoff_init(&b, &p);
    /* rnd 0.5: the interval itself (500, 750, 1125, 1687.5, then the 2000 cap) */
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), 500);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), 750);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), 1125);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), 1687);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), 2000);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), 2000);

    /* randomisation ±50 %: rnd 0 → half, rnd → 1 → one and a half */
    resiliency_backoff_init(&b, &p);
    CHECK_INT(resiliency_backoff_next(&b, 0.0, 0), 250);
    CHECK_INT(resiliency_backoff_next(&b, 0.999999, 0), 1124);

    /* maxRetries n */
    p = policy(RES_RETRY_EXPONENTIAL, 0, 60000, 2);
    resiliency_backoff_init(&b, &p);
    CHECK(resiliency_backoff_next(&b, 0.5, 0) >= 0);
    CHECK(resiliency_backoff_next(&b, 0.5, 0) >= 0);
    CHECK_INT(resiliency_backoff_next(&b, 0.5, 0), -1);

    /* unlimited retries still stop after 15 minutes in all */
    p = policy(RES_RETRY_EXPONENTIAL, 0, 60000, -1);
    resiliency_backoff_init(&b, &p);
    int64_t elapsed = 0, n = 0, d;
    while ((d = resiliency_backoff_next(&b, 0.5, elapsed)) >= 0 && n < 10000) {
        elapsed += d;
        n++;
    }
    CHECK(elapsed <= RESILIENCY_EXP_MAX_ELAPSED_MS);
    CHECK(elapsed > RESILIENCY_EXP_MAX_ELAPSED_MS - 60000);
    CHECK(n > 10 && n < 40);
}

static void test_matching(void)
{
    CHECK_INT(resiliency_http_code_matches(NULL, 500), 1);
    CHECK_INT(resiliency_http_code_matches("", 418), 1);
    CHECK_INT(resiliency_http_code_matches("500-599,429", 503), 1);
    CHECK_INT(resiliency_http_code_matches("500-599,429", 429), 1);
    CHECK_INT(resiliency_http_code_matches("500-599,429", 500), 1);
    CHECK_INT(resiliency_http_code_matches("500-599,429", 599), 1);
    CHECK_INT(resiliency_http_code_matches("500-599,429", 400), 0);
    CHECK_INT(resiliency_http_code_matches("500-599,429", 409), 0);
    CHECK_INT(resiliency_http_code_matches(" 502 , 503 - 504 ", 504), 1);
    CHECK_INT(resiliency_http_code_matches("503", 502), 0);
    CHECK_INT(resiliency_http_code_matches("99-200", 150), -1);
    CHECK_INT(resiliency_http_code_matches("500-600", 500), -1);
    CHECK_INT(resiliency_http_code_matches("599-500", 550), -1);
    CHECK_INT(resiliency_http_code_matches("5xx", 500), -1);
    CHECK_INT(resiliency_http_code_matches("500,", 500), -1);
}

int main(void)
{
    test_none();
    test_constant();
    test_exponential();
    test_matching();
    return check_exit();
}
