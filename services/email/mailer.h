/* One reminder event from start to end: read and check it, claim it in the state store, send the
 * mail, record the outcome, and give the sidecar its answer (docs/email.md):
 *
 *   sent, or sent before ............................ SUCCESS
 *   being sent by another attempt, store or SMTP failing in passing (claim released) ... RETRY
 *   malformed event, or refused for good by the SMTP server (recorded as failed) ....... DROP
 *
 * Exactly one mail per event id, with one exception: a process that dies (or loses the state
 * store) after the SMTP server accepted a mail and before "sent" is recorded leaves a claim that
 * a later attempt takes over, so that mail goes out twice. So does a connection lost after the
 * end of the message was sent but before the server's answer came back (RFC 1047). */
#ifndef EMAIL_MAILER_H
#define EMAIL_MAILER_H
#include <stdint.h>

#include "smtp.h"
#include "todo/dapr.h"
#include "todo/subscriber.h"

typedef struct {
    dapr_config_t dapr;
    const char *store; /* STATESTORE_NAME */
    smtp_config_t smtp;
    const char *from_name; /* MAIL_FROM_NAME, may be "" */
    int64_t lease_seconds; /* CLAIM_LEASE_SECONDS */
    int64_t record_ttl;    /* DELIVERY_RECORD_TTL_SECONDS, 0 = none */
    const char *instance;  /* INSTANCE_NAME */
    const char *boot;      /* this process's run (a UUID) */
} mailer_config_t;

typedef struct mailer mailer_t;

/* new, for one handler thread: its own sidecar client and SMTP connection. cfg's strings are
 * borrowed and must outlive it. NULL when libcurl cannot make a handle. */
mailer_t *mailer_new(const mailer_config_t *cfg);
void mailer_free(mailer_t *m);

/* Handles one event of task-reminders (types other than todo.reminder.due are acknowledged and
 * ignored). */
delivery_t mailer_handle(mailer_t *m, const cloudevent_t *ev);

#endif
