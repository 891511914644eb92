/* Tests of services/recurring/recurrence.c: the frequencies, INTERVAL, BYDAY, BYMONTHDAY=31, COUNT,
 * UNTIL, DST gaps and overlaps, a zone changed since 2022, a moved due time, bad input, rules that
 * never yield, the bounds, and calls from several threads at once. Every expected instant was
 * computed independently with Python's zoneinfo (/usr/bin/python3, system tzdata), e.g.
 * int(datetime(2026,3,29,2,30,tzinfo=ZoneInfo("Europe/Berlin")).timestamp()), and the DST ones
 * also with `TZ=Europe/Berlin date -d '2026-03-29 03:30' +%s`. */
#include "todo/recurrence.h"

#include <pthread.h>

#include "check.h"
#include "todo/timeutil.h"

#define DAY INT64_C(86400)

/* Expects success with the given due time (UTC seconds) and occurrence number. */
#define CHECK_NEXT(rule, tz, first, occ, prev, want_due, want_n)                 \
    do {                                                                         \
        recurrence_next_t next_ = {-1, -1};                                      \
        CHECK_INT(recurrence_next(rule, tz, first, occ, prev, &next_), TODO_OK); \
        CHECK_INT(next_.due, want_due);                                          \
        CHECK_INT(next_.occurrence, want_n);                                     \
    } while (0)

/* Expects the error rc, and *out untouched. */
#define CHECK_FAIL(rule, tz, first, occ, prev, want_rc)                          \
    do {                                                                         \
        recurrence_next_t next_ = {-1, -1};                                      \
        CHECK_INT(recurrence_next(rule, tz, first, occ, prev, &next_), want_rc); \
        CHECK_INT(next_.due, -1);                                                \
        CHECK_INT(next_.occurrence, -1);                                         \
    } while (0)

/* Europe/Berlin, 2026, 09:00 local (CET, 08:00Z) unless noted. */
#define BER_JAN05 INT64_C(1767600000) /* Mon 2026-01-05 */
#define BER_JAN06 INT64_C(1767686400) /* Tue */
#define BER_JAN07 INT64_C(1767772800) /* Wed */
#define BER_JAN08 INT64_C(1767859200) /* Thu */
#define BER_JAN10 INT64_C(1768032000) /* Sat */
#define BER_JAN11 INT64_C(1768118400)
#define BER_JAN12 INT64_C(1768204800) /* Mon */
#define BER_JAN13 INT64_C(1768291200)
#define BER_JAN15 INT64_C(1768464000)
#define BER_JAN16 INT64_C(1768550400)
#define BER_JAN20 INT64_C(1768896000) /* Tue */

/* One thread's share of the concurrent test. */
typedef struct {
    pthread_barrier_t *start;
    int mismatches;
} worker_t;

typedef struct {
    const char *rule, *tz;
    int64_t first, want;
} thread_case_t;

/* Zones missing from zone.tab ("US/Eastern", "Etc/GMT-3") are the ones libical appends to its
 * shared table on first use; the threads look them up first, together. */
static const thread_case_t thread_cases[] = {
    /* 2026-03-07 09:00 EST (14:00Z) → 03-08 09:00 EDT (13:00Z). */
    {"FREQ=DAILY", "US/Eastern", INT64_C(1772892000), INT64_C(1772974800)},
    /* 2026-01-10 09:00 +03 → 06:00Z, a day later. */
    {"FREQ=DAILY", "Etc/GMT-3", INT64_C(1768024800), INT64_C(1768024800) + DAY},
    {"FREQ=WEEKLY;BYDAY=MO,WE", "Europe/Berlin", BER_JAN05, BER_JAN07},
    /* 2023-04-01 09:00 CST (15:00Z) → 04-02 09:00, still 15:00Z. */
    {"FREQ=DAILY", "America/Mexico_City", INT64_C(1680361200), INT64_C(1680447600)},
};

static void *worker(void *arg)
{
    worker_t *w = arg;
    size_t n = sizeof(thread_cases) / sizeof(thread_cases[0]);
    pthread_barrier_wait(w->start);
    for (int i = 0; i < 200; i++) {
        const thread_case_t *c = &thread_cases[(size_t)i % n];
        recurrence_next_t next = {0, 0};
        if (recurrence_next(c->rule, c->tz, c->first, 1, c->first, &next) != 0 ||
            next.due != c->want || next.occurrence != 2)
            w->mismatches++;
    }
    return NULL;
}

/* Four threads at once, before anything else has touched libical: recurrence_init() through
 * pthread_once, and the first look-ups of the same zones. */
static void test_threads(void)
{
    enum { THREADS = 4 };
    pthread_t tid[THREADS];
    worker_t w[THREADS];
    pthread_barrier_t start;
    CHECK_INT(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){&start, 0};
        CHECK_INT(pthread_create(&tid[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK_INT(pthread_join(tid[i], NULL), 0);
        CHECK_INT(w[i].mismatches, 0);
    }
    pthread_barrier_destroy(&start);
}

static void test_frequencies(void)
{
    const char *b = "Europe/Berlin";
    CHECK_NEXT("FREQ=DAILY", b, BER_JAN10, 1, BER_JAN10, BER_JAN11, 2);
    CHECK_NEXT("FREQ=DAILY", b, BER_JAN10, 5, BER_JAN10 + 4 * DAY, BER_JAN10 + 5 * DAY, 6);
    CHECK_NEXT("FREQ=WEEKLY", b, BER_JAN05, 1, BER_JAN05, BER_JAN12, 2);
    /* 2026-01-15 → 02-15, 09:00 CET. */
    CHECK_NEXT("FREQ=MONTHLY", b, BER_JAN15, 1, BER_JAN15, INT64_C(1771142400), 2);
    /* 2026-07-01 09:00 CEST (07:00Z) → 2027-07-01 07:00Z. */
    CHECK_NEXT("FREQ=YEARLY", b, INT64_C(1782889200), 1, INT64_C(1782889200), INT64_C(1814425200),
               2);
    /* Far ahead, past the TZif transition table (from its POSIX TZ footer): 2100-07-01 07:00Z. */
    CHECK_NEXT("FREQ=YEARLY", b, INT64_C(1782889200), 74, INT64_C(1782889200), INT64_C(4118108400),
               75);
    /* 2024-02-29 → 2028-02-29: a yearly date that does not exist in a year is skipped. */
    CHECK_NEXT("FREQ=YEARLY", b, INT64_C(1709193600), 1, INT64_C(1709193600), INT64_C(1835424000),
               2);
    CHECK_NEXT("freq=daily", b, BER_JAN10, 1, BER_JAN10, BER_JAN11, 2);
    /* UTC itself: 2026-01-10 09:00Z. */
    CHECK_NEXT("FREQ=DAILY", "UTC", INT64_C(1768035600), 1, INT64_C(1768035600),
               INT64_C(1768035600) + DAY, 2);
}

static void test_interval_and_byday(void)
{
    const char *b = "Europe/Berlin";
    CHECK_NEXT("FREQ=DAILY;INTERVAL=3", b, BER_JAN10, 1, BER_JAN10, BER_JAN13, 2);
    CHECK_NEXT("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH", b, BER_JAN06, 1, BER_JAN06, BER_JAN08, 2);
    CHECK_NEXT("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH", b, BER_JAN06, 2, BER_JAN08, BER_JAN20, 3);
    CHECK_NEXT("FREQ=WEEKLY;BYDAY=MO,WE", b, BER_JAN05, 1, BER_JAN05, BER_JAN07, 2);
    CHECK_NEXT("FREQ=WEEKLY;BYDAY=MO,WE", b, BER_JAN05, 2, BER_JAN07, BER_JAN12, 3);
    /* A first due time the rule does not match is still number 1 (Tue, then Mon, Mon …). */
    CHECK_NEXT("FREQ=WEEKLY;BYDAY=MO;COUNT=2", b, BER_JAN06, 1, BER_JAN06, BER_JAN12, 2);
    CHECK_FAIL("FREQ=WEEKLY;BYDAY=MO;COUNT=2", b, BER_JAN06, 2, BER_JAN12, TODO_ENOT_FOUND);
    /* BYMONTHDAY=31 skips months without a 31st: 2026-01-31 → 03-31 → 05-31 (both CEST, 07:00Z). */
    CHECK_NEXT("FREQ=MONTHLY;BYMONTHDAY=31", b, INT64_C(1769846400), 1, INT64_C(1769846400),
               INT64_C(1774940400), 2);
    CHECK_NEXT("FREQ=MONTHLY;BYMONTHDAY=31", b, INT64_C(1769846400), 2, INT64_C(1774940400),
               INT64_C(1780210800), 3);
}

static void test_count_and_until(void)
{
    const char *b = "Europe/Berlin";
    CHECK_NEXT("FREQ=DAILY;COUNT=3", b, BER_JAN10, 1, BER_JAN10, BER_JAN11, 2);
    CHECK_NEXT("FREQ=DAILY;COUNT=3", b, BER_JAN10, 2, BER_JAN11, BER_JAN12, 3);
    CHECK_FAIL("FREQ=DAILY;COUNT=3", b, BER_JAN10, 3, BER_JAN12, TODO_ENOT_FOUND);
    CHECK_FAIL("FREQ=DAILY;COUNT=1", b, BER_JAN10, 1, BER_JAN10, TODO_ENOT_FOUND);
    /* Due time moved past the last instance. */
    CHECK_FAIL("FREQ=DAILY;COUNT=3", b, BER_JAN10, 1, BER_JAN20, TODO_ENOT_FOUND);

    /* UTC UNTIL bounds UTC instants: 2026-01-12 09:00 CET is 08:00Z, exactly UNTIL. */
    CHECK_NEXT("FREQ=DAILY;UNTIL=20260112T080000Z", b, BER_JAN10, 2, BER_JAN11, BER_JAN12, 3);
    CHECK_FAIL("FREQ=DAILY;UNTIL=20260112T080000Z", b, BER_JAN10, 3, BER_JAN12, TODO_ENOT_FOUND);
    CHECK_FAIL("FREQ=DAILY;UNTIL=20260112T075959Z", b, BER_JAN10, 2, BER_JAN11, TODO_ENOT_FOUND);
    /* A DATE includes the whole local day; a floating DATE-TIME bounds local wall time. */
    CHECK_NEXT("FREQ=DAILY;UNTIL=20260112", b, BER_JAN10, 2, BER_JAN11, BER_JAN12, 3);
    CHECK_FAIL("FREQ=DAILY;UNTIL=20260112", b, BER_JAN10, 3, BER_JAN12, TODO_ENOT_FOUND);
    CHECK_NEXT("FREQ=DAILY;UNTIL=20260112T090000", b, BER_JAN10, 2, BER_JAN11, BER_JAN12, 3);
    CHECK_FAIL("FREQ=DAILY;UNTIL=20260112T085959", b, BER_JAN10, 2, BER_JAN11, TODO_ENOT_FOUND);
}

static void test_dst(void)
{
    const char *b = "Europe/Berlin";
    /* Gap: weekly at 02:30 from Sun 2026-03-22 (CET, 01:30Z). 03-29 02:30 does not exist and is
     * read as 03:30 CEST (01:30Z); 04-05 02:30 CEST is 00:30Z. */
    CHECK_NEXT("FREQ=WEEKLY", b, INT64_C(1774143000), 1, INT64_C(1774143000), INT64_C(1774747800),
               2);
    CHECK_NEXT("FREQ=WEEKLY", b, INT64_C(1774143000), 2, INT64_C(1774747800), INT64_C(1775349000),
               3);
    /* Overlap: daily at 02:30 from 2026-10-24 (CEST, 00:30Z). 10-25 02:30 occurs twice: the first,
     * CEST, 00:30Z (not 01:30Z); 10-26 02:30 CET is 01:30Z. */
    CHECK_NEXT("FREQ=DAILY", b, INT64_C(1792801800), 1, INT64_C(1792801800), INT64_C(1792888200),
               2);
    CHECK_NEXT("FREQ=DAILY", b, INT64_C(1792801800), 2, INT64_C(1792888200), INT64_C(1792978200),
               3);
    /* A first due time at the second 02:30 (CET, 01:30Z) keeps 02:30 local. */
    CHECK_NEXT("FREQ=DAILY", b, INT64_C(1792891800), 1, INT64_C(1792891800), INT64_C(1792978200),
               2);

    /* The end-to-end series: Wed 2026-03-25 09:00 CET (08:00Z), Mon 03-30 09:00 CEST (07:00Z),
     * Wed 04-01 09:00 CEST (07:00Z), then none. */
    const char *mowe = "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=3";
    CHECK_NEXT(mowe, b, INT64_C(1774425600), 1, INT64_C(1774425600), INT64_C(1774854000), 2);
    CHECK_NEXT(mowe, b, INT64_C(1774425600), 2, INT64_C(1774854000), INT64_C(1775026800), 3);
    CHECK_FAIL(mowe, b, INT64_C(1774425600), 3, INT64_C(1775026800), TODO_ENOT_FOUND);
    /* And back in autumn: Wed 2026-10-21 09:00 CEST (07:00Z) → Mon 10-26 09:00 CET (08:00Z). */
    CHECK_NEXT(mowe, b, INT64_C(1792566000), 1, INT64_C(1792566000), INT64_C(1793001600), 2);

    /* America/Mexico_City dropped DST in October 2022; ICU's 2022 data still has it from the first
     * Sunday of April 2023. 2023-04-01 09:00 CST (15:00Z) → 04-02 09:00 is 15:00Z (not 14:00Z). */
    const char *mx = "America/Mexico_City";
    CHECK_NEXT("FREQ=DAILY", mx, INT64_C(1680361200), 1, INT64_C(1680361200), INT64_C(1680447600),
               2);
    CHECK_NEXT("FREQ=DAILY", mx, INT64_C(1680361200), 2, INT64_C(1680447600), INT64_C(1680534000),
               3);
    /* 02:30 on 2023-04-02 would be in the gap by ICU's 2022 data (expanding there would move it to
     * 03:30); there was no gap: 2023-04-01 02:30 CST (08:30Z) → 04-02 02:30 CST (08:30Z). */
    CHECK_NEXT("FREQ=DAILY", mx, INT64_C(1680337800), 1, INT64_C(1680337800), INT64_C(1680424200),
               2);
    /* In 2022 it still had DST: 2022-04-02 09:00 CST (15:00Z) → 04-03 09:00 CDT (14:00Z). */
    CHECK_NEXT("FREQ=DAILY", mx, INT64_C(1648825200), 2, INT64_C(1648911600), INT64_C(1648994400),
               3);
}

static void test_moved_due(void)
{
    const char *b = "Europe/Berlin";
    /* Occurrence 2 (due 01-11) moved to 01-15 12:00 CET: the next is 01-16 09:00, number 7. */
    CHECK_NEXT("FREQ=DAILY", b, BER_JAN10, 2, BER_JAN15 + 3 * 3600, BER_JAN16, 7);
    /* Moved to exactly an instance's time: the next is after it. */
    CHECK_NEXT("FREQ=DAILY", b, BER_JAN10, 2, BER_JAN15, BER_JAN16, 7);
    /* Occurrence 3 (due 01-12) moved earlier, to 01-05: the next is number 4, 01-13. */
    CHECK_NEXT("FREQ=DAILY", b, BER_JAN10, 3, BER_JAN05, BER_JAN13, 4);
}

static void test_bad_input(void)
{
    const char *b = "Europe/Berlin";
    const char *rules[] = {
        "",
        "FREQ=SOMETIMES",
        "RRULE:FREQ=DAILY",
        "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=DAILY;BYHOUR=25",
        "FREQ=DAILY;BYDAY=XX",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;INTERVAL=70000",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=3x",
        "FREQ=DAILY;COUNT=3;UNTIL=20260112T080000Z",
        "FREQ=DAILY;UNTIL=2026",
        "FREQ=HOURLY",
        "FREQ=MINUTELY",
        "INTERVAL=2",
        "FREQ=MONTHLY;BYWEEKNO=3",
        "FREQ=MONTHLY;BYYEARDAY=100",
        "FREQ=WEEKLY;BYMONTHDAY=1",
        "FREQ=DAILY;BYDAY=1MO",
        "FREQ=WEEKLY;BYDAY=-1FR",
        "FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO",
        "RSCALE=NOSUCHCALENDAR;FREQ=DAILY",
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        recurrence_next_t next = {-1, -1};
        int rc = recurrence_next(rules[i], b, BER_JAN10, 1, BER_JAN10, &next);
        if (rc != TODO_EVALIDATION_ERROR)
            fprintf(stderr, "rule \"%s\" was not refused\n", rules[i]);
        CHECK_INT(rc, TODO_EVALIDATION_ERROR);
        CHECK_INT(next.occurrence, -1);
    }
    const char *zones[] = {"",
                           "Mars/Olympus_Mons",
                           "europe/berlin",
                           "Europe/Berlin/",
                           "../../etc/passwd",
                           "/usr/share/zoneinfo/UTC",
                           "Europe",
                           "Europe/Berlin "};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        recurrence_next_t next = {-1, -1};
        int rc = recurrence_next("FREQ=DAILY", zones[i], BER_JAN10, 1, BER_JAN10, &next);
        if (rc != TODO_EVALIDATION_ERROR)
            fprintf(stderr, "zone \"%s\" was not refused\n", zones[i]);
        CHECK_INT(rc, TODO_EVALIDATION_ERROR);
    }
    CHECK_FAIL(NULL, b, BER_JAN10, 1, BER_JAN10, TODO_EVALIDATION_ERROR);
    CHECK_FAIL("FREQ=DAILY", NULL, BER_JAN10, 1, BER_JAN10, TODO_EVALIDATION_ERROR);
    CHECK_INT(recurrence_next("FREQ=DAILY", b, BER_JAN10, 1, BER_JAN10, NULL),
              TODO_EVALIDATION_ERROR);
    CHECK_FAIL("FREQ=DAILY", b, BER_JAN10, 0, BER_JAN10, TODO_EVALIDATION_ERROR);
    CHECK_FAIL("FREQ=DAILY", b, BER_JAN10, -1, BER_JAN10, TODO_EVALIDATION_ERROR);
    /* 10000-01-01T00:00:00Z and the second before 0001-01-01. */
    CHECK_FAIL("FREQ=DAILY", "UTC", INT64_C(253402300800), 1, 0, TODO_EVALIDATION_ERROR);
    CHECK_FAIL("FREQ=DAILY", "UTC", INT64_C(-62135596801), 1, 0, TODO_EVALIDATION_ERROR);
}

static void test_bounds(void)
{
    const char *never[] = {
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4,6,9,11",
    };
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        int64_t t0 = time_mono_usec();
        CHECK_FAIL(never[i], "Europe/Berlin", BER_JAN10, 1, BER_JAN10, TODO_ENOT_FOUND);
        int64_t ms = (time_mono_usec() - t0) / 1000;
        printf("never-yielding %s: %" PRId64 " ms\n", never[i], ms);
        CHECK(ms < 5000);
    }
    /* Instance 100,000 of a daily series is still given (2026-01-10 09:00Z + 99,999 days =
     * 2299-10-25 09:00Z); the 100,001st is not. */
    CHECK_NEXT("FREQ=DAILY", "UTC", INT64_C(1768035600), 99999, INT64_C(1768035600),
               INT64_C(10407949200), 100000);
    CHECK_FAIL("FREQ=DAILY", "UTC", INT64_C(1768035600), 100000, INT64_C(1768035600),
               TODO_ENOT_FOUND);
    /* libical expands no further than 2582: a due time moved to 2600, a first due time in 9000. */
    CHECK_FAIL("FREQ=YEARLY", "UTC", INT64_C(1768035600), 1, INT64_C(19880899200), TODO_ENOT_FOUND);
    CHECK_FAIL("FREQ=YEARLY", "UTC", INT64_C(221845392000), 1, INT64_C(221845392000),
               TODO_ENOT_FOUND);
}

int main(void)
{
    test_threads();
    recurrence_init(); /* a second call is harmless */
    test_frequencies();
    test_interval_and_byday();
    test_count_and_until();
    test_dst();
    test_moved_due();
    test_bad_input();
    test_bounds();
    return check_exit();
}
