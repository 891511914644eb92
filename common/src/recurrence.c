/* The recurrence engine: libical expands the RRULE in floating local time (Debian's libical
 * iterates through ICU, whose built-in zone data is from 2022, whenever DTSTART has a TZID), and
 * each local wall time is converted to UTC with libical's icaltimezone read from the system
 * zoneinfo (TZif files under /usr/share/zoneinfo); see recurrence.h. */
#include "todo/recurrence.h"

#include <ctype.h>
#include <errno.h>
#include <libical/ical.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "todo/timeutil.h"

#define MAX_INSTANCES 100000
#define MAX_YEAR      9999
#define DAY_SECONDS   INT64_C(86400)
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of RFC 3339 times. */
#define MIN_TIME INT64_C(-62135596800)
#define MAX_TIME INT64_C(253402300799)

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
/* libical 3.0's icaltimezone_get_builtin_timezone() searches a shared array and appends zones
 * missing from zone.tab (e.g. "US/Eastern") to it without a lock, and loads a zone's VTIMEZONE
 * behind an unlocked check; every look-up here goes through this mutex. Offsets are then computed
 * under libical's own lock on the zone's expanded changes. */
static pthread_mutex_t zone_mutex = PTHREAD_MUTEX_INITIALIZER;

static void init_tables(void)
{
    /* Errors are results here, never aborts; zones come from the system's TZif files. */
    icalerror_set_errors_are_fatal(0);
    icaltimezone_set_builtin_tzdata(0);
    /* Both are filled lazily, and unguarded, on first use: do it on one thread. */
    (void)icaltzutil_get_zone_directory();
    (void)icaltimezone_get_utc_timezone();
}

void recurrence_init(void)
{
    pthread_once(&init_once, init_tables);
}

/* The libical zone for tzid with its VTIMEZONE loaded (borrowed, lives as long as the process),
 * or NULL when tzid names no usable zone. */
static icaltimezone *zone_get(const char *tzid)
{
    icaltimezone *utc = icaltimezone_get_utc_timezone(), *zone = NULL;
    /* Also keeps libical, which joins the name to its zoneinfo path, to safe relative names. */
    if (!time_zone_valid(tzid))
        return NULL;
    if (strcmp(tzid, "UTC") == 0)
        return utc;
    pthread_mutex_lock(&zone_mutex);
    zone = icaltimezone_get_builtin_timezone(tzid);
    if (zone && zone != utc && !icaltimezone_get_component(zone))
        zone = NULL; /* listed in zone.tab, but its file could not be read */
    pthread_mutex_unlock(&zone_mutex);
    return zone;
}

/* Floating wall time of w, seconds since the epoch read as if UTC. */
static struct icaltimetype wall_time(int64_t w)
{
    return icaltime_from_timet_with_zone((time_t)w, 0, NULL);
}

/* Seconds since the epoch of the floating wall time tt, read as if UTC. */
static int64_t wall_seconds(struct icaltimetype tt)
{
    tt.zone = NULL;
    return (int64_t)icaltime_as_timet_with_zone(tt, NULL);
}

/* UTC offset (seconds east) in effect in zone at the instant t. */
static int offset_at(icaltimezone *zone, int64_t t)
{
    struct icaltimetype tt = wall_time(t);
    return icaltimezone_get_utc_offset_of_utc_time(zone, &tt, NULL);
}

/* The instant of the wall time w (seconds read as if UTC) in zone: of the offsets in effect a day
 * before, at and a day after w, those that map back onto w; the earliest such instant when w
 * occurs twice, and when it never occurs (a gap), w read with the offset before the gap. libical's
 * own icaltimezone_get_utc_offset() takes the later instant in an overlap and the offset after a
 * gap, so it is not used. */
static int64_t local_to_utc(icaltimezone *zone, int64_t w)
{
    int offs[3] = {offset_at(zone, w - DAY_SECONDS), offset_at(zone, w),
                   offset_at(zone, w + DAY_SECONDS)};
    int64_t best = 0;
    bool found = false;
    for (int i = 0; i < 3; i++) {
        int64_t u = w - offs[i];
        if ((!found || u < best) && offset_at(zone, u) == offs[i]) {
            best = u;
            found = true;
        }
    }
    return found ? best : w - offs[0];
}

/* False when a NAME=value part of rule (name case-insensitive) is not a plain decimal number
 * equal to want: libical reads these with atoi(), so "COUNT=3x" reads as 3, and INTERVAL into a
 * short, so "INTERVAL=70000" reads as 4464. */
static bool number_part_is(const char *rule, const char *name, long want)
{
    size_t len = strlen(name);
    for (const char *p = rule; p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
        if (strncasecmp(p, name, len) != 0 || p[len] != '=')
            continue;
        const char *v = p + len + 1;
        char *end = NULL;
        if (!isdigit((unsigned char)*v))
            return false;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno != 0 || n != want || (*end != ';' && *end != '\0'))
            return false;
    }
    return true;
}

/* False for BY* parts RFC 5545 §3.3.10 forbids with the rule's FREQ. libical refuses some of them
 * only when the iterator is made, like a rule with no instance at all, and loops to its year limit
 * on numbered BYDAY in a DAILY or WEEKLY rule. */
static bool parts_allowed(const struct icalrecurrencetype *r)
{
    bool yearly = r->freq == ICAL_YEARLY_RECURRENCE;
    bool has_weekno = r->by_week_no[0] != ICAL_RECURRENCE_ARRAY_MAX;
    bool numbered_ok = r->freq == ICAL_MONTHLY_RECURRENCE || (yearly && !has_weekno);
    if ((has_weekno || r->by_year_day[0] != ICAL_RECURRENCE_ARRAY_MAX) && !yearly)
        return false;
    if (r->by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX && r->freq == ICAL_WEEKLY_RECURRENCE)
        return false;
    for (int i = 0; i < ICAL_BY_DAY_SIZE && r->by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
        if (icalrecurrencetype_day_position(r->by_day[i]) != 0 && !numbered_ok)
            return false;
    return true;
}

/* Parses rule into *r (whose rscale the caller frees) and checks that it can be expanded. */
static int parse_rule(const char *rule, struct icalrecurrencetype *r)
{
    icalerror_clear_errno();
    *r = icalrecurrencetype_from_string(rule);
    if (icalerrno != ICAL_NO_ERROR) {
        icalerror_clear_errno();
        return TODO_EVALIDATION_ERROR;
    }
    if (r->freq != ICAL_DAILY_RECURRENCE && r->freq != ICAL_WEEKLY_RECURRENCE &&
        r->freq != ICAL_MONTHLY_RECURRENCE && r->freq != ICAL_YEARLY_RECURRENCE)
        return TODO_EVALIDATION_ERROR;
    if (!number_part_is(rule, "COUNT", r->count) || !number_part_is(rule, "INTERVAL", r->interval))
        return TODO_EVALIDATION_ERROR;
    return parts_allowed(r) ? 0 : TODO_EVALIDATION_ERROR;
}

bool recurrence_rule_valid(const char *rule)
{
    struct icalrecurrencetype r;
    pthread_once(&init_once, init_tables);
    bool ok = rule && parse_rule(rule, &r) == 0;
    if (rule)
        free(r.rscale);
    return ok;
}

int recurrence_next(const char *rule, const char *tzid, int64_t first_due, int occurrence,
                    int64_t prev_due, recurrence_next_t *out)
{
    int rc = TODO_EVALIDATION_ERROR;
    struct icalrecurrencetype r;
    icalrecur_iterator *it = NULL;
    icaltimezone *zone = NULL;
    bool until_utc = false;
    int64_t until = 0, until_wall = 0;

    recurrence_init();
    icalrecurrencetype_clear(&r);
    if (!rule || !tzid || !out || occurrence < 1 || first_due < MIN_TIME || first_due > MAX_TIME)
        goto out;
    zone = zone_get(tzid);
    if (!zone || parse_rule(rule, &r) != 0)
        goto out;

    int64_t start_wall = first_due + offset_at(zone, first_due);
    struct icaltimetype dtstart = wall_time(start_wall); /* floating: no TZID, so no ICU zone */

    /* COUNT and UNTIL are applied below: COUNT counts first_due even when the rule does not
     * match it, and libical would compare a UTC UNTIL with floating times as if they were UTC. */
    int count = r.count;
    r.count = 0;
    if (!icaltime_is_null_time(r.until)) {
        if (r.until.is_date) {
            r.until.is_date = 0;
            r.until.hour = 23;
            r.until.minute = 59;
            r.until.second = 59;
        } else if (icaltime_is_utc(r.until)) {
            until_utc = true;
            until = wall_seconds(r.until);
            until_wall = until + offset_at(zone, until);
            /* A local bound a day late only lets libical stop; the UTC check decides. */
            r.until = wall_time(until_wall + DAY_SECONDS);
        }
    }

    it = icalrecur_iterator_new(r, dtstart);
    if (!it) {
        /* With the parts checked, MALFORMEDDATA means no instance before libical's year limit;
         * anything else (an RSCALE calendar ICU lacks) is a rule that cannot be used. */
        rc = icalerrno == ICAL_MALFORMEDDATA_ERROR ? TODO_ENOT_FOUND : TODO_EVALIDATION_ERROR;
        icalerror_clear_errno();
        goto out;
    }
    rc = TODO_ENOT_FOUND;
    for (int n = 1; n < MAX_INSTANCES;) {
        struct icaltimetype tt = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(tt) || tt.year > MAX_YEAR)
            break;
        int64_t w = wall_seconds(tt);
        if (w <= start_wall)
            continue; /* first_due itself, number 1 */
        n++;
        if (count > 0 && n > count)
            break;
        /* Offsets lie within a day, so far-off instances need no conversion. */
        bool near_until = until_utc && w >= until_wall - DAY_SECONDS;
        bool candidate = n > occurrence && w + DAY_SECONDS > prev_due;
        if (!near_until && !candidate)
            continue;
        int64_t u = local_to_utc(zone, w);
        if (until_utc && u > until)
            break;
        if (candidate && u > prev_due) {
            out->due = u;
            out->occurrence = n;
            rc = 0;
            break;
        }
    }

out:
    if (it)
        icalrecur_iterator_free(it);
    free(r.rscale);
    return rc;
}
