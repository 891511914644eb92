/* RFC 3339 times: strict parsing to microseconds since the epoch (UTC), formatting in UTC with Z,
 * and the clocks the services use. */
#ifndef TODO_TIMEUTIL_H
#define TODO_TIMEUTIL_H
#include <stddef.h>
#include <stdint.h>
#include "todo/error.h"

#define TIME_RFC3339_LEN 32

/* "2026-03-29T01:30:00Z", "…T01:30:00.123+02:00" → microseconds since the epoch.
 * A date alone, a missing offset, or an out-of-range field → TODO_EVALIDATION_ERROR. */
int time_parse_rfc3339(const char *s, int64_t *out_usec) TODO_WUR;
/* Formats in UTC as "YYYY-MM-DDTHH:MM:SSZ", with ".ffffff" only when usec has a fraction.
 * Returns the length written. */
size_t time_format_rfc3339(int64_t usec, char out[TIME_RFC3339_LEN]);
/* Wall clock and monotonic clock, microseconds. */
int64_t time_now_usec(void);
int64_t time_mono_usec(void);
/* True (1) when name is "UTC" or an IANA time zone present in the system zoneinfo as a TZif file;
 * names must be relative paths of [A-Za-z0-9_+-] components (no dots, no leading '/'). */
int time_zone_valid(const char *name);

#endif
