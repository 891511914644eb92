/* The jobs of the Jobs API (DAPR-CONTRACT §6) in PostgreSQL, shared by every sidecar of one
 * app id: schedule, get and delete by name, and the lease-based claiming that hands each due
 * trigger to exactly one replica (at-least-once when a replica dies holding a lease). */
#ifndef SIDECAR_JOBS_STORE_H
#define SIDECAR_JOBS_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "todo/buf.h"
#include "todo/error.h"
#include "todo/json.h"
#include "todo/uuid.h"

/* A job as scheduled. Strings are owned (jobs_job_dispose); NULL = field absent. */
typedef struct {
    char *name;
    char *schedule;       /* as submitted */
    char *due_time;       /* as submitted */
    int64_t repeats;      /* -1 when absent */
    char *ttl;            /* as submitted */
    char *data;           /* the data value as normalised JSON (jobs_value_json); NULL = none */
    char *failure_policy; /* normalised protojson: {"constant":{…}} or {"drop":{}} */
    int64_t created_usec;
    int64_t due_usec;     /* absolute dueTime; 0 = none */
    int64_t expires_usec; /* absolute end of the ttl; 0 = none */
} jobs_job_t;

void jobs_job_dispose(jobs_job_t *j);

/* A claimed trigger: one occurrence of a job, leased to this sidecar. */
typedef struct {
    jobs_job_t job;
    int64_t tick_usec;   /* the occurrence being fired (never after now when claimed) */
    int attempt;         /* failed deliveries of this occurrence so far */
    int64_t fired_count; /* occurrences completed before this one */
    char lease_token[TODO_UUID_LEN];
} jobs_trigger_t;

void jobs_trigger_dispose(jobs_trigger_t *t);

typedef struct jobs_store jobs_store_t;

/* new: url, app_id, ns and owner (this sidecar's instance id, recorded with its leases) are
 * copied; no connection yet. Safe to share between threads (one connection behind a mutex). */
jobs_store_t *jobs_store_new(const char *url, const char *app_id, const char *ns,
                             const char *owner);
void jobs_store_free(jobs_store_t *st);
/* Connects and creates the table (schema dapr_scheduler) when missing. */
int jobs_store_open(jobs_store_t *st) TODO_WUR;

/* Stores j (borrowed) with its first occurrence. TODO_ECONFLICT when the name exists and
 * !overwrite (DAPR-CONTRACT §6.1: 409). Overwriting starts the job afresh. */
int jobs_store_put(jobs_store_t *st, const jobs_job_t *j, bool overwrite) TODO_WUR;
/* *out (caller disposes) or TODO_ENOT_FOUND. */
int jobs_store_get(jobs_store_t *st, const char *name, jobs_job_t *out) TODO_WUR;
/* Deletes the job when it exists (no error when it does not). */
int jobs_store_delete(jobs_store_t *st, const char *name) TODO_WUR;

/* Leases up to max due triggers (next attempt ≤ now_usec, no live lease) to this sidecar for
 * lease_usec, oldest first, skipping rows other replicas are claiming. out[0..*n) are new
 * (jobs_trigger_dispose each). */
int jobs_store_claim(jobs_store_t *st, int64_t now_usec, int64_t lease_usec, jobs_trigger_t *out,
                     size_t max, size_t *n) TODO_WUR;
/* Ends a delivery attempt of t: success (2xx/404) or a failure the failure policy retries
 * (constant: next attempt at now + interval while attempts ≤ maxRetries; drop: none). When the
 * occurrence is done the job moves to its next occurrence strictly after t->tick_usec, or is
 * deleted when it has none (one-shot, repeats reached, ttl passed). Does nothing when the lease
 * was lost (job overwritten or deleted meanwhile). */
int jobs_store_finish(jobs_store_t *st, const jobs_trigger_t *t, bool success,
                      int64_t now_usec) TODO_WUR;

/* Extends the lease of every trigger claimed under token to until_usec (the holder is alive). */
int jobs_store_renew(jobs_store_t *st, const char *token, int64_t until_usec) TODO_WUR;
/* Gives back an undelivered claim (its trigger stays due for any replica). */
int jobs_store_release(jobs_store_t *st, const jobs_trigger_t *t) TODO_WUR;

/* The first occurrence of j (dueTime, else the schedule's first after created_usec); 0 when
 * none. */
int64_t jobs_first_tick(const jobs_job_t *j);
/* The occurrence after tick once completed occurrences reach done; 0 when the job is over. */
int64_t jobs_next_tick(const jobs_job_t *j, int64_t tick_usec, int64_t done);

/* A JSON value normalised as protojson prints a google.protobuf.Value: compact, object keys
 * sorted, numbers as float64 in Go's shortest form (1.0 → 1, 1e21 → 1e+21). new; free(). */
char *jobs_value_json(const json_t *v);

/* Appends s as a JSON string as Go writes it: encoding/json when html (<, >, & and U+2028/9
 * escaped, as in kit's error bodies), else protojson; invalid UTF-8 becomes U+FFFD. */
void jobs_json_quote(buf_t *b, const char *s, bool html);

/* Failure policy of a stored job: constant with interval and max retries (-1 = unlimited), or
 * drop. */
typedef struct {
    bool drop;
    int64_t interval_usec;
    int64_t max_retries;
} jobs_failure_policy_t;
void jobs_failure_policy_read(const char *json, jobs_failure_policy_t *out);

#endif
