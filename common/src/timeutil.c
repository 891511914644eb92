/* RFC 3339 date-times: strict parsing to microseconds since the epoch, UTC formatting, the
 * clocks, and checking time zone names against the system zoneinfo. */
#include "todo/timeutil.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZONEINFO_DIR  "/usr/share/zoneinfo/"
#define ZONE_NAME_MAX 128

/* Reads exactly n digits at *s into *out and advances *s. */
static bool digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool expect(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

int time_parse_rfc3339(const char *s, int64_t *out_usec)
{
    int year, mon, day, hour, min, sec, off_h = 0, off_m = 0, sign = 0;
    int64_t frac = 0;
    if (!s)
        return TODO_EVALIDATION_ERROR;

    if (!digits(&s, 4, &year) || !expect(&s, '-') || !digits(&s, 2, &mon) || !expect(&s, '-') ||
        !digits(&s, 2, &day))
        return TODO_EVALIDATION_ERROR;
    if (*s != 'T' && *s != 't' && *s != ' ')
        return TODO_EVALIDATION_ERROR;
    s++;
    if (!digits(&s, 2, &hour) || !expect(&s, ':') || !digits(&s, 2, &min) || !expect(&s, ':') ||
        !digits(&s, 2, &sec))
        return TODO_EVALIDATION_ERROR;
    if (*s == '.') {
        int n = 0;
        s++;
        for (; *s >= '0' && *s <= '9'; s++, n++) {
            if (n >= 9)
                return TODO_EVALIDATION_ERROR;
            if (n < 6)
                frac = frac * 10 + (*s - '0');
        }
        if (n == 0)
            return TODO_EVALIDATION_ERROR;
        for (; n < 6; n++)
            frac *= 10;
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s == '+' ? 1 : -1;
        s++;
        if (!digits(&s, 2, &off_h) || !expect(&s, ':') || !digits(&s, 2, &off_m))
            return TODO_EVALIDATION_ERROR;
    } else {
        return TODO_EVALIDATION_ERROR;
    }
    if (*s != '\0')
        return TODO_EVALIDATION_ERROR;

    /* Leap seconds (:60) are refused: the services have no use for them. */
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
        sec > 59 || off_h > 23 || off_m > 59)
        return TODO_EVALIDATION_ERROR;

    struct tm tm = {
        .tm_year = year - 1900,
        .tm_mon = mon - 1,
        .tm_mday = day,
        .tm_hour = hour,
        .tm_min = min,
        .tm_sec = sec,
    };
    int64_t t = (int64_t)timegm(&tm);
    t -= (int64_t)sign * (off_h * 3600 + off_m * 60);
    *out_usec = t * 1000000 + frac;
    return 0;
}

size_t time_format_rfc3339(int64_t usec, char out[TIME_RFC3339_LEN])
{
    int64_t sec = usec / 1000000, frac = usec % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    out[0] = '\0';
    if (!gmtime_r(&t, &tm))
        return 0;
    int n;
    if (frac)
        n = snprintf(out, TIME_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)frac);
    else
        n = snprintf(out, TIME_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n < TIME_RFC3339_LEN ? (size_t)n : TIME_RFC3339_LEN - 1;
}

int64_t time_now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A relative path of IANA-style components: [A-Za-z0-9_+-] separated by single slashes. Dots
 * are not allowed at all, so neither are "." and ".." components. */
static bool zone_name_safe(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ZONE_NAME_MAX || name[0] == '/' || name[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '+' || c == '-' || (c == '/' && name[i + 1] != '/');
        if (!ok)
            return false;
    }
    /* Files in zoneinfo that are not plain zone names: the alternative trees and links. */
    return strncmp(name, "posix/", 6) != 0 && strncmp(name, "right/", 6) != 0 &&
           strcmp(name, "posixrules") != 0 && strcmp(name, "localtime") != 0;
}

int time_zone_valid(const char *name)
{
    char path[sizeof(ZONEINFO_DIR) + ZONE_NAME_MAX];
    char magic[4];
    struct stat st;
    int fd = -1, ok = 0;
    if (!name || !zone_name_safe(name))
        return 0;
    if (strcmp(name, "UTC") == 0)
        return 1;
    snprintf(path, sizeof(path), "%s%s", ZONEINFO_DIR, name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    ok = read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) && memcmp(magic, "TZif", 4) == 0;
out:
    if (fd >= 0)
        close(fd);
    return ok;
}
