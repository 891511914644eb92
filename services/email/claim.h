/* The delivery record of one reminder event in the Dapr state store, under the key
 * "reminder-mail-<event id>", and the claim protocol around it (docs/email.md):
 *
 *   claim    first-write save of {status "sending", owner, instance, boot, lease_until}; when
 *            the key exists, read it: "sent" → done, "failed" → dropped before, "sending"
 *            within its lease → busy (another attempt is sending), "retry", a lease that has
 *            run out, or a claim of an earlier run of this same instance → taken over by a save
 *            with the record's ETag (a 409 means someone else took it: busy);
 *   finish   a save with the claim's ETag: "sent" after the server accepted the mail, "failed"
 *            after a permanent refusal, "retry" (the claim released) after a passing failure.
 *
 * The ETag of a record this attempt wrote is read back with a GET (the save answers none).
 * Leases are compared with this host's clock: replicas' clocks must agree to well within a
 * lease. */
#ifndef EMAIL_CLAIM_H
#define EMAIL_CLAIM_H
#include <stdbool.h>
#include <stdint.h>

#include "reminder.h"
#include "todo/dapr.h"
#include "todo/error.h"
#include "todo/uuid.h"

#define CLAIM_KEY_PREFIX   "reminder-mail-"
#define CLAIM_KEY_MAX      (sizeof(CLAIM_KEY_PREFIX) + REMINDER_EVENT_ID_MAX)
#define CLAIM_INSTANCE_MAX 128
#define CLAIM_DETAIL_MAX   256
#define CLAIM_RECORD_MAX   4096 /* bytes of a record read back */

typedef enum {
    CLAIM_SENDING, /* claimed: being sent until lease_until */
    CLAIM_RETRY,   /* released after a passing failure: the next attempt takes it over */
    CLAIM_SENT,    /* the SMTP server accepted the mail */
    CLAIM_FAILED   /* refused for good (or a malformed event): dead-lettered */
} claim_status_t;

typedef struct {
    claim_status_t status;
    char owner[TODO_UUID_LEN];             /* the attempt that wrote it */
    char instance[CLAIM_INSTANCE_MAX + 1]; /* INSTANCE_NAME of the process */
    char boot[TODO_UUID_LEN];              /* that process's run */
    int64_t claimed_at, lease_until;       /* microseconds since the epoch */
    int64_t finished_at;                   /* when sent/failed/released; 0 = not yet */
    int64_t attempts;                      /* claims made so far, this one included */
    int64_t task_id;                       /* 0 when unknown (malformed event) */
    char detail[CLAIM_DETAIL_MAX + 1];     /* last SMTP reply or reason, "" when none */
} claim_record_t;

/* The record as JSON (new): {"version":1,"status","owner","instance","boot","claimed_at",
 * "lease_until","attempts","task_id"[,"finished_at"][,"detail"]}, times RFC 3339 UTC. */
char *claim_record_json(const claim_record_t *r);
/* Reads a record; TODO_EVALIDATION_ERROR when json is not one (unknown status, missing field). */
int claim_record_parse(const char *json, size_t len, claim_record_t *r) TODO_WUR;

/* Who is claiming (borrowed strings). */
typedef struct {
    const char *instance; /* unique among the processes running at one time */
    const char *boot;     /* a UUID made when this process started */
} claim_self_t;

typedef enum {
    CLAIM_JUDGE_SENT,
    CLAIM_JUDGE_FAILED,
    CLAIM_JUDGE_BUSY, /* another attempt holds a live lease */
    CLAIM_JUDGE_TAKE, /* released, lease run out, or a dead run of this instance */
    CLAIM_JUDGE_MINE  /* written by the attempt `owner` itself */
} claim_judgement_t;

/* What an attempt `owner` of self finding r at time now (microseconds) may do. */
claim_judgement_t claim_judge(const claim_record_t *r, const claim_self_t *self, const char *owner,
                              int64_t now);

/* The state store and the claim settings (borrowed). */
typedef struct {
    dapr_t *dapr;
    const char *store;  /* STATESTORE_NAME */
    int64_t lease_usec; /* CLAIM_LEASE_SECONDS */
    int ttl_seconds;    /* metadata.ttlInSeconds of every write; 0 = kept for good */
    claim_self_t self;
} claim_ctx_t;

/* A claim held, or the record that stopped it. */
typedef struct {
    char key[CLAIM_KEY_MAX];
    char etag[DAPR_ETAG_MAX]; /* of the record as this attempt wrote it */
    claim_record_t rec;       /* as written (acquired) or as found (otherwise) */
} claim_t;

typedef enum {
    CLAIM_ACQUIRED,
    CLAIM_WAS_SENT,
    CLAIM_WAS_FAILED,
    CLAIM_BUSY,
    CLAIM_UNAVAILABLE, /* the state store could not be used: try again later */
    CLAIM_UNREADABLE   /* the key holds something that is no record */
} claim_result_t;

/* Claims event_id (reminder_event_id_valid) for task_id. */
claim_result_t claim_acquire(const claim_ctx_t *c, const char *event_id, int64_t task_id,
                             claim_t *out);
/* Ends an acquired claim with status (CLAIM_SENT, CLAIM_FAILED or CLAIM_RETRY) and detail (may be
 * NULL), by a save with its ETag. 0; TODO_ECONFLICT when the claim was taken over meanwhile;
 * another error when the store could not be used. */
int claim_finish(const claim_ctx_t *c, claim_t *cl, claim_status_t status,
                 const char *detail) TODO_WUR;
/* Records a malformed event as failed, only when it has no record yet (first-write). */
int claim_record_refusal(const claim_ctx_t *c, const char *event_id, const char *why) TODO_WUR;

#endif
