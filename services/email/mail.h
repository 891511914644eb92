/* The reminder mail of one event as text: its header lines (RFC 5322; the subject and a non-ASCII
 * sender name RFC 2047-encoded), a plain-text body and an HTML body (escaped), with the due time
 * shown in the task's time zone. No I/O apart from reading the system zoneinfo; smtp.c puts the
 * pieces into MIME parts. */
#ifndef EMAIL_MAIL_H
#define EMAIL_MAIL_H
#include <stddef.h>
#include <stdint.h>

#include "reminder.h"
#include "todo/error.h"

#define MAIL_HEADERS_MAX 8
#define MAIL_DATE_LEN    40 /* "Mon, 23 Nov 2026 07:45:03 +0000" and room */
#define MAIL_TIME_TEXT_LEN \
    128 /* "Wednesday, 30 September 2026, 09:00 (America/Argentina/..., UTC-03:00)" */
#define MAIL_FROM_NAME_MAX 64

/* What the mail needs besides the reminder (borrowed). */
typedef struct {
    const char *from;      /* the sender address (reminder_address_valid) */
    const char *from_name; /* display name, "" or NULL for none (mail_from_name_valid) */
    const char *event_id;  /* reminder_event_id_valid: the Message-ID is made from it */
    int64_t now;           /* microseconds since the epoch: the Date header */
} mail_params_t;

/* A built mail; every string is new and freed by mail_dispose. */
typedef struct {
    char *headers[MAIL_HEADERS_MAX]; /* "Name: value" lines, folded with CRLF SP where long */
    size_t nheaders;
    char *text; /* text/plain; charset=UTF-8, CRLF line ends */
    char *html; /* text/html; charset=UTF-8, CRLF line ends */
} mail_t;

void mail_init(mail_t *m);
void mail_dispose(mail_t *m);

/* Builds the mail for r into *out (initialised here): From, To, Subject ("Reminder: <title>"),
 * Date, Message-ID (<reminder-<event id>@<the sender's domain>>) and Auto-Submitted. Control
 * characters of the title become spaces. 0, or TODO_EVALIDATION_ERROR when a parameter is
 * unusable (*out is then empty). */
int mail_build(const reminder_t *r, const mail_params_t *p, mail_t *out) TODO_WUR;

/* "Name: value" (new) with value as it is when it is printable ASCII without "=?" and the line
 * fits in 78 characters, else as RFC 2047 "B" encoded-words of UTF-8 (value must be UTF-8),
 * split at character boundaries so that no line exceeds 76 characters, joined by CRLF SP. */
char *mail_header_encoded(const char *name, const char *value);

/* s with &, <, >, " and ' replaced by character references (new). */
char *mail_html_escape(const char *s);

/* The RFC 5322 date of usec in UTC: "Mon, 23 Nov 2026 07:45:03 +0000". */
void mail_format_date(int64_t usec, char out[MAIL_DATE_LEN]);

/* The wall time of usec in the IANA zone tzid, for people: "Monday, 23 November 2026, 09:00
 * (Europe/Berlin, UTC+01:00)" ("…, 08:00 (UTC)" for UTC; seconds only when not zero). Offsets
 * come from the system zoneinfo through libical's icaltimezone, looked up under a lock, so it is
 * safe on any thread (localtime_r would need a process-wide TZ). Returns 0, or TODO_ENOT_FOUND
 * when tzid is no zone of this system: the time is then shown in UTC. */
int mail_format_time(int64_t usec, const char *tzid, char out[MAIL_TIME_TEXT_LEN]);

/* True for a display name of 1 to MAIL_FROM_NAME_MAX bytes of UTF-8 without control characters,
 * quotes or backslashes. */
bool mail_from_name_valid(const char *name);

#endif
