/* Recurrence rules: the check of an RFC 5545 RRULE that the backend applies to what users send,
 * and the engine of the recurring service that gives a series' next occurrence, expanded in the
 * series' local wall time and converted to UTC with the system zoneinfo. Pure computation apart
 * from reading zoneinfo files. */
#ifndef TODO_RECURRENCE_H
#define TODO_RECURRENCE_H
#include <stdbool.h>
#include <stdint.h>
#include "todo/error.h"

typedef struct {
    int64_t due;    /* UTC, seconds since the epoch */
    int occurrence; /* 1 = the series' first */
} recurrence_next_t;

/* One-time set-up of libical's time zone tables (system zoneinfo, never libical's built-in data;
 * zone.tab parsed). Call once from main before starting worker threads. recurrence_next() also
 * runs it on first use (pthread_once), so a missing call is no bug, only a slower first event. */
void recurrence_init(void);

/* The next occurrence of a series after the one numbered `occurrence` (1-based), which was due at
 * prev_due. The series starts at first_due (its first occurrence's due time; both UTC seconds) and
 * repeats by rule (RFC 5545 RRULE text without "RRULE:") in the IANA time zone tzid: rule
 * instances are expanded from first_due's local wall time in tzid (so 09:00 stays 09:00 across DST
 * changes), then converted to UTC with the system zoneinfo. The result is the first instance whose
 * number is > occurrence and whose time is > prev_due (prev_due may have been moved by the user);
 * its number is the instance's index in the series (COUNT counts from first_due).
 *
 * - first_due is always occurrence 1, even when it does not match the rule (RFC 5545: DTSTART
 *   counts as the first occurrence); later instances are the rule's, after first_due.
 * - A local time that does not exist (clocks go forward) is read with the offset in effect before
 *   the gap, i.e. moved forward by the gap's length: 02:30 on a day Berlin skips 02:00-03:00 is
 *   03:30 CEST (RFC 5545 §3.3.5). A local time that occurs twice (clocks go back) is the first
 *   one, the earlier UTC instant: 02:30 on the night Berlin repeats 02:00-03:00 is 02:30 CEST.
 * - UNTIL: a UTC value ("...Z") bounds the UTC instants; a floating value bounds the local wall
 *   time; a DATE value includes that whole local day.
 * - FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY (as the backend accepts); BY* parts that
 *   RFC 5545 forbids for the FREQ (e.g. BYWEEKNO outside YEARLY, BYDAY=1MO in a WEEKLY rule) and
 *   numbers libical would misread (COUNT=3x, INTERVAL=70000) are refused.
 * - tzid is "UTC" or a zone in the system zoneinfo (todo/timeutil.h time_zone_valid()).
 *
 * 0 and *out; TODO_ENOT_FOUND when the series has ended (COUNT or UNTIL reached) or never yields
 * another instance; TODO_EVALIDATION_ERROR for a rule or zone that cannot be used, an occurrence
 * < 1 or a first_due outside the years 0001-9999. Bounded work: gives up (as TODO_ENOT_FOUND)
 * past 100,000 instances or the year 9999 (libical itself expands no further than 2582).
 * Thread-safe: may run on several threads at once. */
/* True when rule (RRULE text without "RRULE:") is one recurrence_next can expand: it parses, FREQ
 * is DAILY, WEEKLY, MONTHLY or YEARLY, its numbers are plain, and it has no BY* part RFC 5545
 * forbids with its FREQ (see above). Thread-safe. */
bool recurrence_rule_valid(const char *rule);

int recurrence_next(const char *rule, const char *tzid, int64_t first_due, int occurrence,
                    int64_t prev_due, recurrence_next_t *out) TODO_WUR;

#endif
