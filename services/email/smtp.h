/* Sending one mail over SMTP with libcurl: smtp:// with STARTTLS when the server offers it (or
 * required), smtps://, AUTH with SMTP_USER/SMTP_PASSWORD, connect and total timeouts, and the
 * mail as MIME multipart/mixed holding one multipart/alternative part (text, then HTML, both
 * quoted-printable). The outcome says whether the server accepted the mail, refused it for good
 * (a 5xx for the recipient or the message) or failed in passing (anything else). One smtp_t per
 * thread: it keeps its connection open between mails. */
#ifndef EMAIL_SMTP_H
#define EMAIL_SMTP_H
#include <stdbool.h>
#include <stdint.h>

#include "mail.h"

#define SMTP_REPLY_MAX 200

typedef struct {
    const char *url;      /* smtp://host[:port][/ehlo-name] or smtps://… (smtp_url_check) */
    const char *user;     /* NULL or "" = no AUTH */
    const char *password; /* never logged */
    const char *from;     /* envelope sender (MAIL FROM) */
    bool require_tls;     /* smtp://: fail unless STARTTLS succeeds (else STARTTLS when offered) */
    const char *ca_file;  /* CA bundle to verify the server with; NULL = the system's */
    int64_t connect_timeout_ms, timeout_ms;
} smtp_config_t;

typedef enum {
    SMTP_SENT,      /* the server answered 250 to the end of the data */
    SMTP_TRANSIENT, /* try again later: connection, timeout, TLS, 4xx, 5xx before the recipient */
    SMTP_PERMANENT  /* 5xx to RCPT, DATA or the end of the data: this mail will never go */
} smtp_outcome_t;

/* Where an SMTP session was when it ended, from the commands sent. */
typedef enum {
    SMTP_STAGE_CONNECT, /* no command sent yet: connecting, TLS, greeting */
    SMTP_STAGE_HELLO,   /* EHLO / HELO / STARTTLS */
    SMTP_STAGE_AUTH,
    SMTP_STAGE_MAIL,
    SMTP_STAGE_RCPT,
    SMTP_STAGE_DATA, /* DATA sent, 354 not yet received */
    SMTP_STAGE_BODY  /* the message was being sent or its end awaited its reply */
} smtp_stage_t;

typedef struct {
    smtp_outcome_t outcome;
    smtp_stage_t stage;
    long code;                      /* last SMTP reply code, 0 when none */
    char reply[SMTP_REPLY_MAX + 1]; /* that reply's first line, printable ASCII, "" when none */
    char why[256];                  /* libcurl's error text, "" when sent */
} smtp_result_t;

typedef struct smtp smtp_t;

/* new (strings copied). NULL when libcurl cannot make a handle. */
smtp_t *smtp_new(const smtp_config_t *cfg);
void smtp_free(smtp_t *s);

/* Sends m (borrowed) to rcpt (reminder_address_valid). The result's outcome is returned too. */
smtp_outcome_t smtp_send(smtp_t *s, const char *rcpt, const mail_t *m, smtp_result_t *res);

/* The outcome of a session that ended with libcurl's curl_code (a CURLcode) after reply code
 * `code` at `stage`. */
smtp_outcome_t smtp_classify(int curl_code, long code, smtp_stage_t stage);

/* The stage after the client sent the command line cmd (a CURLINFO_HEADER_OUT chunk) at stage;
 * AUTH continuation lines and QUIT leave it as it is. */
smtp_stage_t smtp_stage_after_command(smtp_stage_t stage, const char *cmd, size_t len);

/* NULL when url is an smtp:// or smtps:// URL with a host and no user name or password in it;
 * else a static reason. */
const char *smtp_url_check(const char *url);

#endif
