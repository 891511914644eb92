/* The data of a todo.reminder.due event (docs/email.md), read from the CloudEvent's JSON and
 * checked (types, sizes, the address, the times, the link) before anything is claimed or sent,
 * so that no field can inject a mail header or an SMTP command. Pure: no I/O. */
#ifndef EMAIL_REMINDER_H
#define EMAIL_REMINDER_H
#include <stdbool.h>
#include <stdint.h>

#include "todo/error.h"
#include "todo/json.h"

#define REMINDER_TYPE            "todo.reminder.due"
#define REMINDER_TITLE_MAX       500   /* characters (the backend allows 200) */
#define REMINDER_DESCRIPTION_MAX 10000 /* characters (the backend allows 4000) */
#define REMINDER_USER_ID_MAX     256   /* bytes */
#define REMINDER_TIMEZONE_MAX    64    /* bytes */
#define REMINDER_LINK_MAX        2048  /* bytes */
#define REMINDER_ADDRESS_MAX     254   /* bytes (RFC 5321 path limit less the brackets) */
#define REMINDER_EVENT_ID_MAX    128   /* bytes */

/* One reminder; strings are borrowed from the JSON it was read from. */
typedef struct {
    int64_t task_id;
    const char *user_id;
    const char *email;       /* the recipient, checked by reminder_address_valid() */
    const char *title;       /* non-empty */
    const char *description; /* "" when empty or null */
    bool has_due;
    int64_t due_at;       /* microseconds since the epoch (UTC), when has_due */
    int64_t remind_at;    /* microseconds since the epoch (UTC) */
    const char *timezone; /* IANA name as sent; may be unknown here (the mail then shows UTC) */
    const char *link;     /* an http(s) URL without spaces, quotes or angle brackets */
} reminder_t;

/* Reads data (the event's data object, borrowed) into *out. Members other than those of
 * reminder_t are ignored (a later version may add some). Returns 0, or TODO_EVALIDATION_ERROR
 * with *why a static reason naming the field. */
int reminder_parse(const json_t *data, reminder_t *out, const char **why) TODO_WUR;

/* True for a plain ASCII address local@domain (RFC 5321 Mailbox without quoted local parts or
 * address literals): a dot-atom local part of at most 64 characters, a domain of LDH labels, at
 * most REMINDER_ADDRESS_MAX bytes. Such an address can go between <> in MAIL/RCPT and into a
 * header as it is. */
bool reminder_address_valid(const char *addr);

/* True for an event id usable as a state key and in a Message-ID: 1 to REMINDER_EVENT_ID_MAX
 * characters of [A-Za-z0-9_-] (a UUID is). */
bool reminder_event_id_valid(const char *id);

/* True for an http:// or https:// URL of at most REMINDER_LINK_MAX bytes, with a host, made of
 * printable ASCII other than space, '"', '<', '>', '\\', '^', '`', '{', '|' and '}'. */
bool reminder_link_valid(const char *link);

#endif
