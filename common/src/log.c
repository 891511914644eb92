/* JSON log lines on stderr. Each line is built in a stack buffer (no allocation, so the
 * allocator may log its own failure) and written with one write(2) so threads never interleave. */
#include "todo/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MSG_MAX   4096
#define LOG_LINE_MAX  8192
#define LOG_TRACE_MAX 128

log_level_t log_min_level = LOG_LEVEL_INFO;

static const char *log_service = "todo";
static _Thread_local char log_trace[LOG_TRACE_MAX + 1];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, log_level_t level)
{
    if (service)
        log_service = service;
    log_min_level = level;
}

int log_level_parse(const char *s, log_level_t *out)
{
    if (!s)
        return TODO_EBAD_REQUEST;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return TODO_EBAD_REQUEST;
}

void log_set_trace(const char *trace_id)
{
    if (!trace_id) {
        log_trace[0] = '\0';
        return;
    }
    size_t n = strnlen(trace_id, LOG_TRACE_MAX);
    memcpy(log_trace, trace_id, n);
    log_trace[n] = '\0';
}

const char *log_get_trace(void)
{
    return log_trace;
}

/* The line being built; once full, further output is dropped and the line marked truncated. */
typedef struct {
    char *p;
    size_t len, cap;
    bool full;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    if (l->full || n > l->cap - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_raw(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Appends s as a JSON string body (without quotes): escapes quotes, backslashes and control
 * characters, and replaces invalid UTF-8 with U+FFFD so the line stays valid JSON. A character
 * is written whole or not at all. */
static void put_escaped(line_t *l, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    char esc[8];
    while (n > 0 && !l->full) {
        unsigned char c = s[0];
        size_t step = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\r') {
            put(l, "\\r", 2);
        } else if (c == '\t') {
            put(l, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else if (c < 0x80) {
            put(l, (const char *)s, 1);
        } else {
            step = utf8_seq(s, n);
            if (step == 0) {
                put(l, "\\ufffd", 6);
                step = 1;
            } else {
                put(l, (const char *)s, step);
            }
        }
        s += step;
        n -= step;
    }
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void log_write(log_level_t level, const char *module, const char *fmt, ...)
{
    int saved_errno = errno;
    char msg[LOG_MSG_MAX];
    char out[LOG_LINE_MAX];
    /* Room kept back for the end of the line (truncation mark, trace id escaped at worst six
     * bytes per byte, closing), so a long message never breaks the JSON. */
    static const char tail_trunc[] = "...(truncated)";
    enum { TAIL_ROOM = 1024 };
    _Static_assert(sizeof(tail_trunc) + 16 + 6 * LOG_TRACE_MAX + 4 < TAIL_ROOM, "tail room");
    line_t l = {out, 0, sizeof(out) - TAIL_ROOM, false};

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bool truncated = n < 0 || (size_t)n >= sizeof(msg);
    if (n < 0)
        msg[0] = '\0';

    struct timespec ts;
    struct tm tm;
    char when[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000) % 1000);

    if ((unsigned)level > LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;
    puts_raw(&l, "{\"time\":\"");
    puts_raw(&l, when);
    puts_raw(&l, "\",\"level\":\"");
    puts_raw(&l, level_names[level]);
    puts_raw(&l, "\",\"service\":\"");
    put_escaped(&l, log_service);
    puts_raw(&l, "\",\"module\":\"");
    put_escaped(&l, module ? module : "");
    puts_raw(&l, "\",\"msg\":\"");
    put_escaped(&l, msg);
    truncated |= l.full;
    l.full = false;
    l.cap = sizeof(out);
    if (truncated)
        puts_raw(&l, tail_trunc);
    puts_raw(&l, "\",\"trace_id\":\"");
    put_escaped(&l, log_trace);
    puts_raw(&l, "\"}\n");
    write_all(out, l.len);
    errno = saved_errno;
}
