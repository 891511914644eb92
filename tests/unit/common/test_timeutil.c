/* Unit test of common/src/timeutil.c: RFC 3339 parsing (forms, offsets, fractions, ranges, leap
 * years, junk), UTC formatting and round trips, the clocks, and time zone name checks. */
#include <stdbool.h>

#include "check.h"
#include "todo/timeutil.h"

#define SEC INT64_C(1000000)

/* Parses s; returns the microseconds, or INT64_MIN when refused. */
static int64_t parse(const char *s)
{
    int64_t v = 0;
    int rc = time_parse_rfc3339(s, &v);
    if (rc != 0) {
        CHECK_INT(rc, TODO_EVALIDATION_ERROR);
        return INT64_MIN;
    }
    return v;
}

static const char *fmt(int64_t usec, char out[TIME_RFC3339_LEN])
{
    size_t n = time_format_rfc3339(usec, out);
    CHECK_INT(n, strlen(out));
    return out;
}

int main(void)
{
    char buf[TIME_RFC3339_LEN];

    CHECK_INT(parse("1970-01-01T00:00:00Z"), 0);
    CHECK_INT(parse("2026-03-29T01:30:00Z"), 1774747800 * SEC);
    CHECK_INT(parse("2026-03-29t01:30:00z"), 1774747800 * SEC);
    CHECK_INT(parse("2026-03-29 01:30:00Z"), 1774747800 * SEC);
    CHECK_INT(parse("2026-03-29T03:30:00+02:00"), 1774747800 * SEC);
    CHECK_INT(parse("2026-03-28T20:00:00-05:30"), 1774747800 * SEC);
    CHECK_INT(parse("2026-03-29T01:30:00-00:00"), 1774747800 * SEC);
    CHECK_INT(parse("2026-03-29T01:30:00.123+02:00"), (1774747800 - 7200) * SEC + 123000);
    CHECK_INT(parse("2026-03-29T01:30:00.1Z"), 1774747800 * SEC + 100000);
    CHECK_INT(parse("2026-03-29T01:30:00.000001Z"), 1774747800 * SEC + 1);
    CHECK_INT(parse("2026-03-29T01:30:00.123456789Z"), 1774747800 * SEC + 123456);
    CHECK_INT(parse("1969-12-31T23:59:59.5Z"), -SEC / 2);
    CHECK_INT(parse("2024-02-29T12:00:00Z"), 1709208000 * SEC);
    CHECK_INT(parse("2000-02-29T00:00:00Z"), 951782400 * SEC);
    CHECK_INT(parse("9999-12-31T23:59:59Z"), INT64_C(253402300799) * SEC);
    CHECK_INT(parse("0001-01-01T00:00:00Z"), INT64_C(-62135596800) * SEC);
    CHECK_INT(parse("2026-01-01T00:00:00+23:59"), (1767225600 - 86340) * SEC);

    /* Refused: missing parts, wrong separators, out-of-range fields, trailing text. */
    const char *bad[] = {
        "",
        "2026-03-29",
        "2026-03-29T01:30",
        "2026-03-29T01:30:00",
        "2026-03-29T01:30:00 ",
        " 2026-03-29T01:30:00Z",
        "2026-03-29T01:30:00ZZ",
        "2026-03-29T01:30:00+02",
        "2026-03-29T01:30:00+0200",
        "2026-03-29T01:30:00+2:00",
        "2026-03-29T01:30:00+24:00",
        "2026-03-29T01:30:00+02:60",
        "2026-03-29X01:30:00Z",
        "2026-03-29T01:30:00.Z",
        "2026-03-29T01:30:00.1234567890Z",
        "2026-03-29T01:30:00,5Z",
        "2026-3-29T01:30:00Z",
        "26-03-29T01:30:00Z",
        "+2026-03-29T01:30:00Z",
        "2026/03/29T01:30:00Z",
        "2026-00-10T00:00:00Z",
        "2026-13-10T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-12-31T23:59:60Z",
        "2026-01-01T-1:00:00Z",
        "2026-01-01T01:30:00UTC",
        "2026-01-01T01:30:00+02:00junk",
        "２０２６-01-01T01:30:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 12345;
        int rc = time_parse_rfc3339(bad[i], &v);
        if (rc == 0)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK_INT(rc, TODO_EVALIDATION_ERROR);
        CHECK_INT(v, 12345);
    }
    int64_t v = 0;
    CHECK_INT(time_parse_rfc3339(NULL, &v), TODO_EVALIDATION_ERROR);

    CHECK_STR(fmt(0, buf), "1970-01-01T00:00:00Z");
    CHECK_STR(fmt(1774747800 * SEC, buf), "2026-03-29T01:30:00Z");
    CHECK_STR(fmt(1774747800 * SEC + 123000, buf), "2026-03-29T01:30:00.123000Z");
    CHECK_STR(fmt(1774747800 * SEC + 1, buf), "2026-03-29T01:30:00.000001Z");
    CHECK_STR(fmt(-1, buf), "1969-12-31T23:59:59.999999Z");
    CHECK_STR(fmt(-SEC, buf), "1969-12-31T23:59:59Z");
    CHECK_STR(fmt(INT64_C(253402300799) * SEC, buf), "9999-12-31T23:59:59Z");
    CHECK(time_format_rfc3339(INT64_MAX, buf) < TIME_RFC3339_LEN);
    CHECK(time_format_rfc3339(INT64_MIN, buf) < TIME_RFC3339_LEN);

    const char *round[] = {"2026-03-29T01:30:00Z", "2024-02-29T23:59:59.999999Z",
                           "1999-12-31T00:00:00.5Z"};
    for (size_t i = 0; i < sizeof(round) / sizeof(round[0]); i++)
        CHECK_INT(parse(fmt(parse(round[i]), buf)), parse(round[i]));
    CHECK_STR(fmt(parse("2026-03-29T03:30:00.25+02:00"), buf), "2026-03-29T01:30:00.250000Z");

    /* Clocks: the wall clock is after 2024, the monotonic one never goes back. */
    CHECK(time_now_usec() > parse("2024-01-01T00:00:00Z"));
    int64_t m1 = time_mono_usec(), m2 = time_mono_usec();
    CHECK(m1 > 0 && m2 >= m1);

    CHECK(time_zone_valid("UTC"));
    CHECK(time_zone_valid("Europe/Berlin"));
    CHECK(time_zone_valid("America/New_York"));
    CHECK(time_zone_valid("America/Argentina/Buenos_Aires"));
    CHECK(time_zone_valid("America/Port-au-Prince"));
    CHECK(time_zone_valid("Etc/GMT+5"));
    CHECK(time_zone_valid("Asia/Tokyo"));
    CHECK(!time_zone_valid(NULL));
    CHECK(!time_zone_valid(""));
    CHECK(!time_zone_valid("Nowhere/Atlantis"));
    CHECK(!time_zone_valid("europe/berlin"));
    CHECK(!time_zone_valid("Europe")); /* a directory */
    CHECK(!time_zone_valid("Europe/"));
    CHECK(!time_zone_valid("Europe//Berlin"));
    CHECK(!time_zone_valid("/usr/share/zoneinfo/UTC"));
    CHECK(!time_zone_valid("../zoneinfo/UTC"));
    CHECK(!time_zone_valid("Europe/../UTC"));
    CHECK(!time_zone_valid("./UTC"));
    CHECK(!time_zone_valid("../../../etc/passwd"));
    CHECK(!time_zone_valid("zone.tab"));    /* not a zone, and dotted */
    CHECK(!time_zone_valid("leapseconds")); /* a regular file, not TZif */
    CHECK(!time_zone_valid("posix/Europe/Berlin"));
    CHECK(!time_zone_valid("localtime"));
    CHECK(!time_zone_valid("Europe/Berlin "));
    CHECK(!time_zone_valid("Europe/Berlin\n"));
    CHECK(!time_zone_valid("Europe\\Berlin"));
    return check_exit();
}
