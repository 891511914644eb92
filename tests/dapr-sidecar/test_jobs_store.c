/* Unit tests of the pure parts of jobs_store.c: data normalised as protojson prints a
 * google.protobuf.Value, occurrence arithmetic (dueTime, schedule, repeats, ttl), and the
 * failure policy as stored. */
#include <stdlib.h>

#include "check.h"
#include "jobs_store.h"
#include "todo/timeutil.h"

static int64_t at(const char *s)
{
    int64_t v = 0;
    if (time_parse_rfc3339(s, &v) != 0)
        fprintf(stderr, "bad time in test: %s\n", s);
    return v;
}

static void check_value(const char *in, const char *want)
{
    json_error_t jerr;
    json_t *v = json_loads(in, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    char *got;
    if (!v) {
        CHECK(!"input parses");
        return;
    }
    got = jobs_value_json(v);
    CHECK_STR(got, want);
    free(got);
    json_decref(v);
}

static void test_values(void)
{
    check_value("{\"a\": 1}", "{\"a\":1}");
    check_value("{ \"b\" : [1, 2.5, true, null], \"a\" : \"s\" }",
                "{\"a\":\"s\",\"b\":[1,2.5,true,null]}");
    check_value("\"s\"", "\"s\"");
    check_value("123", "123");
    check_value("1.0", "1");
    check_value("-0.5", "-0.5");
    check_value("1e21", "1e+21");
    check_value("1e20", "100000000000000000000");
    check_value("0.000001", "0.000001");
    check_value("0.0000001", "1e-7");
    check_value("12345678901234567890", "12345678901234567000");
    check_value("9007199254740993", "9007199254740992");
    check_value("0.1", "0.1");
    check_value("{}", "{}");
    check_value("[]", "[]");
    check_value("{\"z\":{\"y\":1,\"x\":2}}", "{\"z\":{\"x\":2,\"y\":1}}");
    check_value("\"\\u00e9\\n\"", "\"\xc3\xa9\\n\"");
    check_value("\"a<b>&\\u0001\\u001F\\\\\\\"\"", "\"a<b>&\\u0001\\u001f\\\\\\\"\"");
}

static void test_quote(void)
{
    buf_t b;
    char *got;
    buf_init(&b, 0);
    jobs_json_quote(&b, "<a&b>\xe2\x80\xa8\x01\xff\"", true);
    got = buf_steal(&b);
    CHECK_STR(got, "\"\\u003ca\\u0026b\\u003e\\u2028\\u0001\\ufffd\\\"\"");
    free(got);
    buf_dispose(&b);
}

static void test_ticks(void)
{
    jobs_job_t j;
    memset(&j, 0, sizeof(j));
    j.repeats = -1;
    j.created_usec = at("2024-01-01T10:00:00.400Z");

    /* schedule only: first after creation */
    j.schedule = "@every 2s";
    CHECK_INT(jobs_first_tick(&j), at("2024-01-01T10:00:02Z"));
    CHECK_INT(jobs_next_tick(&j, at("2024-01-01T10:00:02Z"), 1), at("2024-01-01T10:00:04Z"));
    /* repeats: over after the last */
    j.repeats = 2;
    CHECK_INT(jobs_next_tick(&j, at("2024-01-01T10:00:02Z"), 1), at("2024-01-01T10:00:04Z"));
    CHECK_INT(jobs_next_tick(&j, at("2024-01-01T10:00:04Z"), 2), 0);
    j.repeats = -1;
    /* ttl: nothing after the end */
    j.expires_usec = at("2024-01-01T10:00:05Z");
    CHECK_INT(jobs_next_tick(&j, at("2024-01-01T10:00:02Z"), 1), at("2024-01-01T10:00:04Z"));
    CHECK_INT(jobs_next_tick(&j, at("2024-01-01T10:00:04Z"), 2), 0);
    j.expires_usec = 0;
    /* dueTime first, then the schedule after it */
    j.due_usec = at("2024-01-01T12:00:00.500Z");
    j.schedule = "0 0 * * * *";
    CHECK_INT(jobs_first_tick(&j), at("2024-01-01T12:00:00.500Z"));
    CHECK_INT(jobs_next_tick(&j, j.due_usec, 1), at("2024-01-01T13:00:00Z"));
    /* one-shot */
    j.schedule = NULL;
    CHECK_INT(jobs_first_tick(&j), at("2024-01-01T12:00:00.500Z"));
    CHECK_INT(jobs_next_tick(&j, j.due_usec, 1), 0);
}

static void test_policies(void)
{
    jobs_failure_policy_t fp;
    jobs_failure_policy_read(NULL, &fp);
    CHECK(!fp.drop);
    CHECK_INT(fp.interval_usec, 1000000);
    CHECK_INT(fp.max_retries, 3);
    jobs_failure_policy_read("{\"drop\":{}}", &fp);
    CHECK(fp.drop);
    jobs_failure_policy_read("{\"constant\":{\"interval\":\"1.500s\",\"maxRetries\":5}}", &fp);
    CHECK(!fp.drop);
    CHECK_INT(fp.interval_usec, 1500000);
    CHECK_INT(fp.max_retries, 5);
    jobs_failure_policy_read("{\"constant\":{\"interval\":\"2s\"}}", &fp);
    CHECK_INT(fp.interval_usec, 2000000);
    CHECK_INT(fp.max_retries, -1);
}

int main(void)
{
    unsetenv("TZ");
    test_values();
    test_quote();
    test_ticks();
    test_policies();
    return check_exit();
}
