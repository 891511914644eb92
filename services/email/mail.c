/* Building the reminder mail's headers and bodies; see mail.h. */
#include "mail.h"

#include <libical/ical.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/timeutil.h"

#define MAIL_BODY_MAX   (1u << 20) /* bytes of one body; inputs are bounded far below it */
#define LINE_MAX_CHARS  76         /* RFC 2047 §2: lines holding encoded-words */
#define PLAIN_LINE_MAX  78         /* RFC 5322 §2.1.1 */
#define WORD_OVERHEAD   12         /* "=?UTF-8?B?" and "?=" */
#define SIGNATURE_TEXT  "You get this mail because you set a reminder for this task."
#define USEC_PER_SECOND INT64_C(1000000)

static const char *const day_abbr[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_name[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char *const month_abbr[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const month_name[12] = {"January",   "February", "March",    "April",
                                           "May",       "June",     "July",     "August",
                                           "September", "October",  "November", "December"};

void mail_init(mail_t *m)
{
    memset(m, 0, sizeof(*m));
}

void mail_dispose(mail_t *m)
{
    for (size_t i = 0; i < m->nheaders; i++)
        free(m->headers[i]);
    free(m->text);
    free(m->html);
    mail_init(m);
}

/* ---- Headers ---- */

static bool plain_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Appends one encoded-word of n bytes of s. */
static int put_word(buf_t *b, const char *s, size_t n)
{
    unsigned char enc[4 * ((LINE_MAX_CHARS + 2) / 3) + 4];
    int len = EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
    return buf_printf(b, "=?UTF-8?B?%.*s?=", len, (const char *)enc);
}

char *mail_header_encoded(const char *name, const char *value)
{
    size_t prefix = strlen(name) + 2, n = strlen(value);
    if (plain_ascii(value) && !strstr(value, "=?") && prefix + n <= PLAIN_LINE_MAX)
        return xasprintf("%s: %s", name, value);

    buf_t b;
    buf_init(&b, 0);
    int rc = buf_printf(&b, "%s: ", name);
    for (size_t at = 0; at < n && rc == 0;) {
        /* The bytes that fit: 4 base64 characters per 3 bytes, at least one character. */
        size_t room = prefix + WORD_OVERHEAD < LINE_MAX_CHARS
                          ? (LINE_MAX_CHARS - prefix - WORD_OVERHEAD) / 4 * 3
                          : 0;
        size_t take = room < 6 ? 6 : room;
        if (take > n - at)
            take = n - at;
        /* Never split a UTF-8 sequence: back off over continuation bytes. */
        while (take > 1 && at + take < n && ((unsigned char)value[at + take] & 0xc0) == 0x80)
            take--;
        if (at > 0)
            rc = buf_puts(&b, "\r\n ");
        if (rc == 0)
            rc = put_word(&b, value + at, take);
        at += take;
        prefix = 1; /* continuation lines start with one space */
    }
    char *out = buf_steal(&b);
    buf_dispose(&b);
    return out;
}

char *mail_html_escape(const char *s)
{
    buf_t b;
    int rc = 0;
    buf_init(&b, 0);
    for (; *s && rc == 0; s++) {
        switch (*s) {
        case '&':
            rc = buf_puts(&b, "&amp;");
            break;
        case '<':
            rc = buf_puts(&b, "&lt;");
            break;
        case '>':
            rc = buf_puts(&b, "&gt;");
            break;
        case '"':
            rc = buf_puts(&b, "&quot;");
            break;
        case '\'':
            rc = buf_puts(&b, "&#39;");
            break;
        default:
            rc = buf_append(&b, s, 1);
        }
    }
    char *out = buf_steal(&b);
    buf_dispose(&b);
    return out;
}

/* Valid UTF-8 without overlong forms or surrogates. */
static bool utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t n = c < 0x80             ? 0
                   : (c & 0xe0) == 0xc0 ? 1
                   : (c & 0xf0) == 0xe0 ? 2
                   : (c & 0xf8) == 0xf0 ? 3
                                        : 9;
        if (n == 9 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4))
            return false;
        for (size_t i = 1; i <= n; i++)
            if ((s[i] & 0xc0) != 0x80)
                return false;
        if (n == 2 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0)))
            return false;
        if (n == 3 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90)))
            return false;
        s += n + 1;
    }
    return true;
}

bool mail_from_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MAIL_FROM_NAME_MAX || !utf8_valid((const unsigned char *)name))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

void mail_format_date(int64_t usec, char out[MAIL_DATE_LEN])
{
    time_t t = (time_t)(usec / USEC_PER_SECOND - (usec % USEC_PER_SECOND < 0));
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, MAIL_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d +0000", day_abbr[tm.tm_wday],
             tm.tm_mday, month_abbr[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* ---- Time zones ---- */

static pthread_once_t zone_once = PTHREAD_ONCE_INIT;
/* libical 3.0 fills its zone table lazily and without a lock (and loads a zone's definition
 * behind an unlocked check), so every look-up and offset computation holds this mutex. */
static pthread_mutex_t zone_mutex = PTHREAD_MUTEX_INITIALIZER;

static void zone_setup(void)
{
    icalerror_set_errors_are_fatal(0);
    icaltimezone_set_builtin_tzdata(0); /* the system's TZif files, not libical's copy */
    (void)icaltzutil_get_zone_directory();
    (void)icaltimezone_get_utc_timezone();
}

/* The UTC offset (seconds east) of tzid at the instant t; false when tzid is no zone here. */
static bool zone_offset(const char *tzid, int64_t t, int *offset)
{
    bool found = false;
    *offset = 0;
    if (!time_zone_valid(tzid)) /* also keeps libical to safe relative file names */
        return false;
    if (strcmp(tzid, "UTC") == 0)
        return true;
    pthread_once(&zone_once, zone_setup);
    pthread_mutex_lock(&zone_mutex);
    icaltimezone *zone = icaltimezone_get_builtin_timezone(tzid);
    if (zone && zone != icaltimezone_get_utc_timezone() && icaltimezone_get_component(zone)) {
        struct icaltimetype tt = icaltime_from_timet_with_zone((time_t)t, 0, NULL);
        *offset = icaltimezone_get_utc_offset_of_utc_time(zone, &tt, NULL);
        found = true;
    } else if (zone) {
        found = true; /* an alias of UTC, such as "Etc/UTC" */
    }
    pthread_mutex_unlock(&zone_mutex);
    return found;
}

int mail_format_time(int64_t usec, const char *tzid, char out[MAIL_TIME_TEXT_LEN])
{
    int64_t t = usec / USEC_PER_SECOND - (usec % USEC_PER_SECOND < 0);
    int offset = 0;
    bool known = tzid && zone_offset(tzid, t, &offset);
    time_t wall = (time_t)(t + offset);
    struct tm tm;
    char clock[16], zone[160];
    gmtime_r(&wall, &tm);
    if (tm.tm_sec)
        snprintf(clock, sizeof(clock), "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        snprintf(clock, sizeof(clock), "%02d:%02d", tm.tm_hour, tm.tm_min);
    if (!known || strcmp(tzid, "UTC") == 0) {
        snprintf(zone, sizeof(zone), "UTC");
    } else {
        int a = offset < 0 ? -offset : offset;
        snprintf(zone, sizeof(zone), "%.128s, UTC%c%02d:%02d", tzid, offset < 0 ? '-' : '+',
                 a / 3600 % 100, a / 60 % 60);
    }
    if (snprintf(out, MAIL_TIME_TEXT_LEN, "%s, %d %s %04d, %s (%s)", day_name[tm.tm_wday],
                 tm.tm_mday, month_name[tm.tm_mon], tm.tm_year + 1900, clock, zone) < 0)
        out[0] = '\0';
    return known ? 0 : TODO_ENOT_FOUND;
}

/* ---- Bodies ---- */

/* Appends s with its line breaks (CRLF, CR or LF) as CRLF, or as "<br>" CRLF and escaped when
 * html; other control characters except tab are left out. */
static int put_multiline(buf_t *b, const char *s, bool html)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\r' || c == '\n') {
            if (c == '\r' && s[1] == '\n')
                s++;
            rc = buf_puts(b, html ? "<br>\r\n" : "\r\n");
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            continue;
        } else if (html && strchr("&<>\"'", c)) {
            char one[2] = {(char)c, '\0'};
            char *e = mail_html_escape(one);
            rc = buf_puts(b, e);
            free(e);
        } else {
            rc = buf_append(b, s, 1);
        }
    }
    return rc;
}

/* The title on one line: control characters become spaces (new). */
static char *one_line(const char *s)
{
    char *t = xstrdup(s);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
    return t;
}

static int build_text(const reminder_t *r, const char *title, const char *due, buf_t *b)
{
    int rc = buf_printf(b, "Reminder: %s\r\n\r\n", title);
    if (rc == 0)
        rc = buf_printf(b, "Due: %s\r\n\r\n", due);
    if (rc == 0 && *r->description) {
        rc = put_multiline(b, r->description, false);
        if (rc == 0)
            rc = buf_puts(b, "\r\n\r\n");
    }
    if (rc == 0)
        rc = buf_printf(b, "Open the task: %s\r\n\r\n-- \r\n%s\r\n", r->link, SIGNATURE_TEXT);
    return rc;
}

static int build_html(const reminder_t *r, const char *title, const char *due, buf_t *b)
{
    char *t = mail_html_escape(title), *d = mail_html_escape(due), *l = mail_html_escape(r->link);
    int rc = buf_printf(b,
                        "<!DOCTYPE html>\r\n"
                        "<html><head><meta charset=\"utf-8\"><title>Reminder: %s</title></head>\r\n"
                        "<body style=\"font-family: sans-serif\">\r\n"
                        "<h1>%s</h1>\r\n"
                        "<p><strong>Due:</strong> %s</p>\r\n",
                        t, t, d);
    if (rc == 0 && *r->description) {
        rc = buf_puts(b, "<p>");
        if (rc == 0)
            rc = put_multiline(b, r->description, true);
        if (rc == 0)
            rc = buf_puts(b, "</p>\r\n");
    }
    if (rc == 0)
        rc = buf_printf(b,
                        "<p><a href=\"%s\">Open the task</a></p>\r\n"
                        "<hr>\r\n<p style=\"color: #666; font-size: small\">%s</p>\r\n"
                        "</body></html>\r\n",
                        l, SIGNATURE_TEXT);
    free(t);
    free(d);
    free(l);
    return rc;
}

int mail_build(const reminder_t *r, const mail_params_t *p, mail_t *out)
{
    int rc = TODO_EVALIDATION_ERROR;
    char date[MAIL_DATE_LEN], due[MAIL_TIME_TEXT_LEN];
    char *title = NULL, *subject = NULL;
    buf_t text, html;

    mail_init(out);
    buf_init(&text, MAIL_BODY_MAX);
    buf_init(&html, MAIL_BODY_MAX);
    const char *at = p->from ? strchr(p->from, '@') : NULL;
    if (!reminder_address_valid(p->from) || !at || !reminder_event_id_valid(p->event_id) ||
        !reminder_address_valid(r->email) ||
        (p->from_name && *p->from_name && !mail_from_name_valid(p->from_name)))
        goto out;

    if (r->has_due)
        (void)mail_format_time(r->due_at, r->timezone, due); /* an unknown zone shows UTC */
    else
        snprintf(due, sizeof(due), "no due time set");
    title = one_line(r->title);
    subject = xasprintf("Reminder: %s", title);
    mail_format_date(p->now, date);

    if (!p->from_name || !*p->from_name) {
        out->headers[out->nheaders++] = xasprintf("From: %s", p->from);
    } else if (plain_ascii(p->from_name) && !strstr(p->from_name, "=?")) {
        out->headers[out->nheaders++] = xasprintf("From: \"%s\" <%s>", p->from_name, p->from);
    } else {
        char *name = mail_header_encoded("From", p->from_name);
        out->headers[out->nheaders++] = xasprintf("%s\r\n <%s>", name, p->from);
        free(name);
    }
    out->headers[out->nheaders++] = xasprintf("To: %s", r->email);
    out->headers[out->nheaders++] = mail_header_encoded("Subject", subject);
    out->headers[out->nheaders++] = xasprintf("Date: %s", date);
    out->headers[out->nheaders++] = xasprintf("Message-ID: <reminder-%s@%s>", p->event_id, at + 1);
    out->headers[out->nheaders++] = xasprintf("Auto-Submitted: auto-generated");

    if (build_text(r, title, due, &text) != 0 || build_html(r, title, due, &html) != 0) {
        mail_dispose(out);
        goto out;
    }
    out->text = buf_steal(&text);
    out->html = buf_steal(&html);
    rc = 0;
out:
    buf_dispose(&text);
    buf_dispose(&html);
    free(title);
    free(subject);
    return rc;
}
