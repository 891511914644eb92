/* Job schedules of the Jobs API (DAPR-CONTRACT §6.1): the 6-field cron grammar with seconds and
 * the @descriptors of dapr/kit's cron parser, with an optional CRON_TZ=/TZ= zone, the next
 * occurrence after a time, and the dueTime/ttl formats (RFC 3339, Go duration, ISO 8601). */
#ifndef SIDECAR_CRON_H
#define SIDECAR_CRON_H
#include <stddef.h>
#include <stdint.h>

#include "todo/error.h"

#define CRON_ERR_MAX 160

typedef struct cron_schedule cron_schedule_t;

/* Parses spec into *out (new; cron_free). TODO_EVALIDATION_ERROR with a reason in err (may be
 * NULL) for anything kit's parser rejects: 5 or 7 fields, bare durations, unknown zones,
 * TZ=/CRON_TZ= with @every, out-of-range values. Without a zone prefix the zone is the one named
 * by the TZ environment variable when it is a valid zone name, else UTC (daprd uses the
 * Scheduler host's zone). */
int cron_parse(const char *spec, cron_schedule_t **out, char err[CRON_ERR_MAX]) TODO_WUR;
void cron_free(cron_schedule_t *s);

/* The first occurrence strictly after after_usec (µs since the epoch), whole seconds; 0 when
 * there is none within five years (robfig/kit semantics). Thread-safe. */
int64_t cron_next(const cron_schedule_t *s, int64_t after_usec);

/* Go time.ParseDuration ("1h2m3.5s", "-10ms", "0"); TODO_EVALIDATION_ERROR otherwise. */
int cron_parse_go_duration(const char *s, int64_t *out_usec) TODO_WUR;
/* Non-repeating ISO 8601 duration "PnYnMnWnDTnHnMnS" (fractional seconds allowed). Years and
 * months are returned separately (they are calendar units); *out_usec has the rest. */
int cron_parse_iso_duration(const char *s, int *out_years, int *out_months,
                            int64_t *out_usec) TODO_WUR;
/* dueTime / ttl: an RFC 3339 time, or a Go or ISO 8601 duration added to base_usec. */
int cron_parse_time(const char *s, int64_t base_usec, int64_t *out_usec) TODO_WUR;

#endif
