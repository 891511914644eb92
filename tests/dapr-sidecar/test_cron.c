/* Unit tests of cron.c: kit's 6-field grammar and descriptors, rejections, next occurrences
 * across month ends, leap years and Europe/Berlin DST, and the dueTime/ttl formats. */
#include <stdlib.h>

#include "check.h"
#include "cron.h"
#include "todo/timeutil.h"

static int64_t at(const char *rfc3339)
{
    int64_t v = 0;
    if (time_parse_rfc3339(rfc3339, &v) != 0)
        fprintf(stderr, "bad time in test: %s\n", rfc3339);
    return v;
}

/* The next occurrence of spec after the given time, as RFC 3339 UTC ("none", "invalid"). */
static const char *next_of(const char *spec, const char *after)
{
    static char buf[TIME_RFC3339_LEN];
    cron_schedule_t *s = NULL;
    char err[CRON_ERR_MAX];
    int64_t n;
    if (cron_parse(spec, &s, err) != 0)
        return "invalid";
    n = cron_next(s, at(after));
    cron_free(s);
    if (n == 0)
        return "none";
    time_format_rfc3339(n, buf);
    return buf;
}

static int parses(const char *spec)
{
    cron_schedule_t *s = NULL;
    char err[CRON_ERR_MAX];
    int rc = cron_parse(spec, &s, err);
    cron_free(s);
    return rc == 0;
}

static void test_descriptors(void)
{
    CHECK_STR(next_of("@yearly", "2024-06-01T00:00:00Z"), "2025-01-01T00:00:00Z");
    CHECK_STR(next_of("@annually", "2024-06-01T00:00:00Z"), "2025-01-01T00:00:00Z");
    CHECK_STR(next_of("@monthly", "2024-01-15T10:00:00Z"), "2024-02-01T00:00:00Z");
    CHECK_STR(next_of("@weekly", "2024-05-01T00:00:00Z"), "2024-05-05T00:00:00Z");
    CHECK_STR(next_of("@daily", "2024-12-31T23:59:59Z"), "2025-01-01T00:00:00Z");
    CHECK_STR(next_of("@midnight", "2024-02-28T00:00:00Z"), "2024-02-29T00:00:00Z");
    CHECK_STR(next_of("@hourly", "2024-01-01T10:20:30Z"), "2024-01-01T11:00:00Z");
    CHECK_STR(next_of("@every 1m30s", "2024-01-01T10:00:00Z"), "2024-01-01T10:01:30Z");
    CHECK_STR(next_of("@every 1s", "2024-01-01T10:00:00.250Z"), "2024-01-01T10:00:01Z");
    /* below one second → one second; fractions of a second dropped */
    CHECK_STR(next_of("@every 500ms", "2024-01-01T10:00:00Z"), "2024-01-01T10:00:01Z");
    CHECK_STR(next_of("@every 2.7s", "2024-01-01T10:00:00Z"), "2024-01-01T10:00:02Z");
    CHECK_STR(next_of("@every 1h", "2024-01-01T10:00:00Z"), "2024-01-01T11:00:00Z");
}

static void test_fields(void)
{
    CHECK_STR(next_of("*/15 * * * * *", "2024-01-01T00:00:07Z"), "2024-01-01T00:00:15Z");
    CHECK_STR(next_of("* * * * * *", "2024-01-01T00:00:07Z"), "2024-01-01T00:00:08Z");
    CHECK_STR(next_of("0 0,30 * * * *", "2024-01-01T00:10:00Z"), "2024-01-01T00:30:00Z");
    CHECK_STR(next_of("0 0 8-18/2 * * *", "2024-01-01T09:00:00Z"), "2024-01-01T10:00:00Z");
    CHECK_STR(next_of("0 0 5/6 * * *", "2024-01-01T12:00:00Z"), "2024-01-01T17:00:00Z");
    CHECK_STR(next_of("0 0 12 * FEB-mar mon-fri", "2024-01-01T00:00:00Z"), "2024-02-01T12:00:00Z");
    CHECK_STR(next_of("0 0 12 * * sat", "2024-01-01T00:00:00Z"), "2024-01-06T12:00:00Z");
    CHECK_STR(next_of("0 0 12 * * 0", "2024-01-01T00:00:00Z"), "2024-01-07T12:00:00Z");
    /* both dom and dow restricted → either matches; a star (or ?) in one → both must */
    CHECK_STR(next_of("0 0 0 13 * fri", "2024-01-01T00:00:00Z"), "2024-01-05T00:00:00Z");
    CHECK_STR(next_of("0 0 0 13 * *", "2024-01-01T00:00:00Z"), "2024-01-13T00:00:00Z");
    CHECK_STR(next_of("0 0 0 ? * fri", "2024-01-01T00:00:00Z"), "2024-01-05T00:00:00Z");
    CHECK_STR(next_of("0 0 0 13 ? *", "2024-01-01T00:00:00Z"), "2024-01-13T00:00:00Z");
    CHECK_STR(next_of("  0  0 0 1 * *  ", "2024-01-31T12:00:00Z"), "2024-02-01T00:00:00Z");
}

static void test_calendar(void)
{
    CHECK_STR(next_of("0 0 0 1 * *", "2024-01-31T12:00:00Z"), "2024-02-01T00:00:00Z");
    CHECK_STR(next_of("0 0 0 31 * *", "2024-04-01T00:00:00Z"), "2024-05-31T00:00:00Z");
    CHECK_STR(next_of("0 0 0 29 2 *", "2023-03-01T00:00:00Z"), "2024-02-29T00:00:00Z");
    CHECK_STR(next_of("0 0 0 29 2 *", "2024-02-29T00:00:00Z"), "2028-02-29T00:00:00Z");
    CHECK_STR(next_of("59 59 23 31 12 *", "2024-06-01T00:00:00Z"), "2024-12-31T23:59:59Z");
    CHECK_STR(next_of("0 0 0 30 2 *", "2024-01-01T00:00:00Z"), "none");
    /* strictly after */
    CHECK_STR(next_of("0 0 0 1 * *", "2024-02-01T00:00:00Z"), "2024-03-01T00:00:00Z");
}

static void test_zones(void)
{
    /* Europe/Berlin: CET (+1) in winter, CEST (+2) from 2024-03-31 01:00Z to 2024-10-27 01:00Z */
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 0 9 * * *", "2024-01-10T00:00:00Z"),
              "2024-01-10T08:00:00Z");
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 0 9 * * *", "2024-03-30T09:00:00Z"),
              "2024-03-31T07:00:00Z");
    CHECK_STR(next_of("TZ=Europe/Berlin 0 0 9 * * *", "2024-10-26T12:00:00Z"),
              "2024-10-27T08:00:00Z");
    /* 02:30 does not exist on 2024-03-31 in Berlin: skipped that day */
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-03-30T12:00:00Z"),
              "2024-04-01T00:30:00Z");
    /* 02:30 happens twice on 2024-10-27: CEST, then CET (kit/robfig fire on both) */
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-10-26T12:00:00Z"),
              "2024-10-27T00:30:00Z");
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-10-27T00:30:00Z"),
              "2024-10-27T01:30:00Z");
    /* midnight in Berlin at month end across the zone offset */
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 0 0 1 * *", "2024-03-15T00:00:00Z"),
              "2024-03-31T22:00:00Z"); /* 1 April 00:00 CEST */
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin 0 0 0 1 * *", "2024-10-15T00:00:00Z"),
              "2024-10-31T23:00:00Z"); /* 1 November 00:00 CET */
    CHECK_STR(next_of("CRON_TZ=Europe/Berlin @daily", "2024-07-01T12:00:00Z"),
              "2024-07-01T22:00:00Z");
    CHECK_STR(next_of("CRON_TZ=America/New_York 0 0 12 * * *", "2024-07-01T00:00:00Z"),
              "2024-07-01T16:00:00Z");
    CHECK_STR(next_of("TZ=UTC 0 0 12 * * *", "2024-07-01T00:00:00Z"), "2024-07-01T12:00:00Z");
}

static void test_rejections(void)
{
    static const char *const bad[] = {"",
                                      "* * * * *",     /* 5 fields */
                                      "0 * * * * * *", /* 7 fields */
                                      "2h45m",         /* bare duration */
                                      "@every",
                                      "@every ",
                                      "@every 1x",
                                      "@every 10",
                                      "@foo",
                                      "@daily ",
                                      "TZ=Europe/Berlin @every 1s", /* v1.18.3 */
                                      "CRON_TZ=UTC @every 1m",
                                      "CRON_TZ=Nope/Zone 0 0 * * * *",
                                      "TZ=../etc/passwd 0 0 * * * *",
                                      "TZ=UTC",
                                      "60 * * * * *",
                                      "* 60 * * * *",
                                      "* * 24 * * *",
                                      "* * * 0 * *",
                                      "* * * 32 * *",
                                      "* * * * 0 *",
                                      "* * * * 13 *",
                                      "* * * * * 7",
                                      "5-1 * * * * *",
                                      "*/0 * * * * *",
                                      "1-2-3 * * * * *",
                                      "1/2/3 * * * * *",
                                      "a * * * * *",
                                      "-1 * * * * *",
                                      "0 0 0 * foo *",
                                      "0 0 0 * * sunday",
                                      "1,,2 * * * * *",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        int ok = parses(bad[i]);
        if (ok)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK(!ok);
    }
    CHECK(parses("TZ=UTC 0 0 * * * *"));
    CHECK(parses("CRON_TZ=Europe/Berlin * * * * * *"));
    CHECK(parses("0 0 0 * jan-dec sun-sat"));
    CHECK(parses("@every 1h2m3s"));
    CHECK(parses("? ? ? ? ? ?"));
}

static void test_durations(void)
{
    int64_t v = 0;
    int y = 0, m = 0;
    CHECK_INT(cron_parse_go_duration("1h2m3.5s", &v), 0);
    CHECK_INT(v, INT64_C(3723500000));
    CHECK_INT(cron_parse_go_duration("-10ms", &v), 0);
    CHECK_INT(v, -10000);
    CHECK_INT(cron_parse_go_duration("0", &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(cron_parse_go_duration("1.5h", &v), 0);
    CHECK_INT(v, INT64_C(5400000000));
    CHECK_INT(cron_parse_go_duration("300us", &v), 0);
    CHECK_INT(v, 300);
    CHECK_INT(cron_parse_go_duration("2\xc2\xb5s", &v), 0);
    CHECK_INT(v, 2);
    CHECK(cron_parse_go_duration("1", &v) != 0);
    CHECK(cron_parse_go_duration("", &v) != 0);
    CHECK(cron_parse_go_duration("1x", &v) != 0);
    CHECK(cron_parse_go_duration("1d", &v) != 0);
    CHECK(cron_parse_go_duration("s", &v) != 0);
    CHECK(cron_parse_go_duration("99999999999h", &v) != 0);

    CHECK_INT(cron_parse_iso_duration("P1DT2H", &y, &m, &v), 0);
    CHECK_INT(v, INT64_C(93600000000));
    CHECK_INT(cron_parse_iso_duration("PT1.5S", &y, &m, &v), 0);
    CHECK_INT(v, 1500000);
    CHECK_INT(cron_parse_iso_duration("P1W", &y, &m, &v), 0);
    CHECK_INT(v, INT64_C(604800000000));
    CHECK_INT(cron_parse_iso_duration("P1Y2M", &y, &m, &v), 0);
    CHECK_INT(y, 1);
    CHECK_INT(m, 2);
    CHECK_INT(cron_parse_iso_duration("PT5M", &y, &m, &v), 0);
    CHECK_INT(v, 300000000);
    CHECK(cron_parse_iso_duration("P", &y, &m, &v) != 0);
    CHECK(cron_parse_iso_duration("PT", &y, &m, &v) != 0);
    CHECK(cron_parse_iso_duration("P1H", &y, &m, &v) != 0);
    CHECK(cron_parse_iso_duration("R5/PT1S", &y, &m, &v) != 0);
    CHECK(cron_parse_iso_duration("PT1S2M", &y, &m, &v) != 0);

    int64_t base = at("2024-01-31T10:00:00Z");
    CHECK_INT(cron_parse_time("2026-09-01T10:00:00Z", base, &v), 0);
    CHECK_INT(v, at("2026-09-01T10:00:00Z"));
    CHECK_INT(cron_parse_time("10s", base, &v), 0);
    CHECK_INT(v, base + 10000000);
    CHECK_INT(cron_parse_time("P1DT2H", base, &v), 0);
    CHECK_INT(v, at("2024-02-01T12:00:00Z"));
    CHECK_INT(cron_parse_time("P1M", base, &v), 0); /* Go AddDate normalises Feb 31 */
    CHECK_INT(v, at("2024-03-02T10:00:00Z"));
    CHECK(cron_parse_time("tomorrow", base, &v) != 0);
    CHECK(cron_parse_time("2026-09-01", base, &v) != 0);
    CHECK(cron_parse_time("R2/PT1S", base, &v) != 0);
}

int main(void)
{
    unsetenv("TZ"); /* no prefix → UTC */
    test_descriptors();
    test_fields();
    test_calendar();
    test_zones();
    test_rejections();
    test_durations();
    return check_exit();
}
