/* The life of one reminder event in the email service; see mailer.h and claim.h. */
#include "mailer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "claim.h"
#include "mail.h"
#include "reminder.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/metrics.h"
#include "todo/timeutil.h"

#define MODULE         "mailer"
#define FINISH_TRIES   4   /* writes of "sent" when the store fails in passing */
#define FINISH_BACKOFF 100 /* ms before the second, x4 after */

struct mailer {
    const mailer_config_t *cfg;
    dapr_t *dapr;
    smtp_t *smtp;
    claim_ctx_t claims;
};

/* Deliveries by result, in /metrics as email_deliveries_total{result="…"}. */
typedef enum {
    R_SENT,
    R_DUPLICATE,
    R_BUSY,
    R_RETRY,
    R_FAILED,
    R_MALFORMED,
    R_IGNORED,
    R_COUNT
} result_t;
static const char *const result_names[R_COUNT] = {"sent",   "duplicate", "busy",   "retry",
                                                  "failed", "malformed", "ignored"};
static metrics_counter_t *counters[R_COUNT];
static pthread_once_t counters_once = PTHREAD_ONCE_INIT;

static const char *const stage_names[] = {
    [SMTP_STAGE_CONNECT] = "connect", [SMTP_STAGE_HELLO] = "EHLO",   [SMTP_STAGE_AUTH] = "AUTH",
    [SMTP_STAGE_MAIL] = "MAIL FROM",  [SMTP_STAGE_RCPT] = "RCPT TO", [SMTP_STAGE_DATA] = "DATA",
    [SMTP_STAGE_BODY] = "end of data"};

static void register_counters(void)
{
    for (int i = 0; i < R_COUNT; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "result=\"%s\"", result_names[i]);
        counters[i] = metrics_counter("email_deliveries_total",
                                      "Reminder deliveries handled, by result", labels);
    }
}

static void count(result_t r)
{
    metrics_counter_add(counters[r], 1);
}

mailer_t *mailer_new(const mailer_config_t *cfg)
{
    pthread_once(&counters_once, register_counters);
    mailer_t *m = xcalloc(1, sizeof(*m));
    m->cfg = cfg;
    m->dapr = dapr_new(&cfg->dapr);
    m->smtp = smtp_new(&cfg->smtp);
    if (!m->dapr || !m->smtp) {
        mailer_free(m);
        return NULL;
    }
    m->claims = (claim_ctx_t){.dapr = m->dapr,
                              .store = cfg->store,
                              .lease_usec = cfg->lease_seconds * 1000000,
                              .ttl_seconds = (int)cfg->record_ttl,
                              .self = {.instance = cfg->instance, .boot = cfg->boot}};
    return m;
}

void mailer_free(mailer_t *m)
{
    if (!m)
        return;
    dapr_free(m->dapr);
    smtp_free(m->smtp);
    free(m);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static const char *domain_of(const char *addr)
{
    const char *at = strchr(addr, '@');
    return at ? at + 1 : addr;
}

/* A malformed event: recorded as failed where it has no record yet, then dead-lettered. */
static delivery_t refuse(mailer_t *m, const cloudevent_t *ev, const char *why)
{
    log_warn(MODULE, "event %s: malformed reminder (%s): to the dead-letter topic", ev->id, why);
    if (claim_record_refusal(&m->claims, ev->id, why) != 0)
        log_debug(MODULE, "event %s: no failure record written (one exists, or the store failed)",
                  ev->id);
    count(R_MALFORMED);
    return DELIVERY_DROP;
}

/* Records "sent", trying again a few times when the store fails in passing: the mail is out,
 * and a claim left "sending" would let a later delivery of the event send it again. */
static void finish_sent(mailer_t *m, const cloudevent_t *ev, claim_t *cl, const char *reply)
{
    char etag[DAPR_ETAG_MAX];
    snprintf(etag, sizeof(etag), "%s", cl->etag);
    int rc = TODO_EUNAVAILABLE;
    long wait = FINISH_BACKOFF;
    for (int i = 0; i < FINISH_TRIES; i++, wait *= 4) {
        if (i > 0)
            sleep_ms(wait);
        snprintf(cl->etag, sizeof(cl->etag), "%s", etag);
        rc = claim_finish(&m->claims, cl, CLAIM_SENT, reply);
        if (rc == 0 || rc == TODO_ECONFLICT)
            break;
    }
    if (rc == TODO_ECONFLICT)
        log_warn(MODULE,
                 "event %s: mailed, but its claim was taken over meanwhile: the other attempt "
                 "may mail it again",
                 ev->id);
    else if (rc != 0)
        log_error(MODULE,
                  "event %s: mailed, but \"sent\" could not be recorded (%s): a later delivery "
                  "of the event may mail it again",
                  ev->id, todo_err_code(rc));
}

/* Releases a claim after a passing failure, so that the next delivery need not wait out the
 * lease (when this fails, the lease runs out on its own). */
static void release(mailer_t *m, const cloudevent_t *ev, claim_t *cl, const char *detail)
{
    if (claim_finish(&m->claims, cl, CLAIM_RETRY, detail) != 0)
        log_info(MODULE, "event %s: the claim could not be released; it ends with its lease",
                 ev->id);
}

/* "<stage>: <text>", cut to fit. */
static void set_detail(char out[CLAIM_DETAIL_MAX + 1], const char *stage, const char *text)
{
    if (snprintf(out, CLAIM_DETAIL_MAX + 1, "%s: %s", stage, text) < 0)
        out[0] = '\0';
}

static delivery_t deliver(mailer_t *m, const cloudevent_t *ev, const reminder_t *r,
                          const mail_t *mail)
{
    claim_t cl;
    char until[TIME_RFC3339_LEN], detail[CLAIM_DETAIL_MAX + 1];
    smtp_result_t res;

    switch (claim_acquire(&m->claims, ev->id, r->task_id, &cl)) {
    case CLAIM_WAS_SENT:
        log_info(MODULE, "event %s: the reminder of task %lld was mailed before: nothing to do",
                 ev->id, (long long)r->task_id);
        count(R_DUPLICATE);
        return DELIVERY_SUCCESS;
    case CLAIM_WAS_FAILED:
        log_info(MODULE, "event %s: refused before (%s): to the dead-letter topic again", ev->id,
                 cl.rec.detail);
        count(R_FAILED);
        return DELIVERY_DROP;
    case CLAIM_BUSY:
        time_format_rfc3339(cl.rec.lease_until, until);
        log_info(MODULE, "event %s: being mailed by %s (lease until %s): later", ev->id,
                 cl.rec.instance, until);
        count(R_BUSY);
        return DELIVERY_RETRY;
    case CLAIM_UNAVAILABLE:
        log_warn(MODULE, "event %s: the state store cannot be used: later", ev->id);
        count(R_RETRY);
        return DELIVERY_RETRY;
    case CLAIM_UNREADABLE:
        log_warn(MODULE, "event %s: %s holds no delivery record: to the dead-letter topic", ev->id,
                 cl.key);
        count(R_FAILED);
        return DELIVERY_DROP;
    case CLAIM_ACQUIRED:
        break;
    }
    /* The SMTP session must end before the lease does, or another attempt could send too. */
    if (time_now_usec() + m->cfg->smtp.timeout_ms * 1000 >= cl.rec.lease_until) {
        log_warn(MODULE,
                 "event %s: the claim took too long, too little of its lease is left: later",
                 ev->id);
        release(m, ev, &cl, "too little of the lease left");
        count(R_RETRY);
        return DELIVERY_RETRY;
    }

    smtp_send(m->smtp, r->email, mail, &res);
    switch (res.outcome) {
    case SMTP_SENT:
        finish_sent(m, ev, &cl, res.reply);
        log_info(MODULE, "event %s: the reminder of task %lld went to a recipient at %s: %s",
                 ev->id, (long long)r->task_id, domain_of(r->email), res.reply);
        count(R_SENT);
        return DELIVERY_SUCCESS;
    case SMTP_TRANSIENT:
        set_detail(detail, stage_names[res.stage], res.reply[0] ? res.reply : res.why);
        log_warn(MODULE, "event %s: SMTP failed at %s (%s%s%s): later", ev->id,
                 stage_names[res.stage], res.why, res.reply[0] ? "; " : "", res.reply);
        release(m, ev, &cl, detail);
        count(R_RETRY);
        return DELIVERY_RETRY;
    case SMTP_PERMANENT:
        break;
    }
    set_detail(detail, stage_names[res.stage], res.reply);
    log_warn(MODULE,
             "event %s: the SMTP server refused the reminder of task %lld for good at %s "
             "(%s): to the dead-letter topic",
             ev->id, (long long)r->task_id, stage_names[res.stage], res.reply);
    if (claim_finish(&m->claims, &cl, CLAIM_FAILED, detail) != 0)
        log_info(MODULE, "event %s: \"failed\" could not be recorded", ev->id);
    count(R_FAILED);
    return DELIVERY_DROP;
}

delivery_t mailer_handle(mailer_t *m, const cloudevent_t *ev)
{
    reminder_t r;
    mail_t mail;
    const char *why = NULL;

    if (strcmp(ev->type, REMINDER_TYPE) != 0) {
        log_debug(MODULE, "event %s: type %s is not for this service", ev->id, ev->type);
        count(R_IGNORED);
        return DELIVERY_SUCCESS;
    }
    if (!reminder_event_id_valid(ev->id)) {
        log_warn(MODULE, "an event id of %zu bytes is no usable key: to the dead-letter topic",
                 strlen(ev->id));
        count(R_MALFORMED);
        return DELIVERY_DROP;
    }
    if (reminder_parse(ev->data, &r, &why) != 0)
        return refuse(m, ev, why);
    mail_params_t p = {.from = m->cfg->smtp.from,
                       .from_name = m->cfg->from_name,
                       .event_id = ev->id,
                       .now = time_now_usec()};
    if (mail_build(&r, &p, &mail) != 0)
        return refuse(m, ev, "the mail cannot be built");
    delivery_t d = deliver(m, ev, &r, &mail);
    mail_dispose(&mail);
    return d;
}
