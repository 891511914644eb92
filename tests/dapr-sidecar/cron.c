/* Cron schedules of the Jobs API: kit's (robfig-derived) 6-field parser with descriptors and zone
 * prefix, its Next() walk done in the schedule's zone through libical (DST-correct, serialized
 * by one mutex), and the dueTime/ttl formats of the Scheduler's parsePointInTime. */
#include "cron.h"

#include <ctype.h>
#include <libical/ical.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/timeutil.h"

#define STAR_BIT      (UINT64_C(1) << 63)
#define ZONE_NAME_MAX 128

struct cron_schedule {
    bool every;        /* @every: constant delay */
    int64_t delay_sec; /* ≥ 1 */
    uint64_t sec, min, hour, dom, month, dow;
    icaltimezone *zone; /* NULL = UTC */
};

typedef struct {
    unsigned lo, hi;
    const char *const *names; /* names[i] is the value lo+i… (NULL-terminated) or NULL */
    unsigned names_base;
} bounds_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const bounds_t b_sec = {0, 59, NULL, 0}, b_min = {0, 59, NULL, 0}, b_hour = {0, 23, NULL, 0},
                      b_dom = {1, 31, NULL, 0}, b_month = {1, 12, month_names, 1},
                      b_dow = {0, 6, dow_names, 0};

/* libical keeps process-wide zone caches; every call into it goes through this lock. */
static pthread_mutex_t ical_mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 2, 3))) static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err, CRON_ERR_MAX, fmt, ap);
    va_end(ap);
}

static uint64_t bits(unsigned lo, unsigned hi, unsigned step)
{
    uint64_t b = 0;
    for (unsigned i = lo; i <= hi; i += step)
        b |= UINT64_C(1) << i;
    return b;
}

static bool parse_uint(const char *s, size_t n, unsigned *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = (unsigned)v;
    return true;
}

static bool parse_int_or_name(const char *s, size_t n, const bounds_t *b, unsigned *out)
{
    if (b->names) {
        for (unsigned i = 0; b->names[i]; i++)
            if (strlen(b->names[i]) == n && strncasecmp(s, b->names[i], n) == 0) {
                *out = b->names_base + i;
                return true;
            }
    }
    return parse_uint(s, n, out);
}

/* One comma-separated term: "*", "?", "a", "a-b", each with an optional "/step". */
static int parse_range(const char *s, size_t n, const bounds_t *b, uint64_t *out)
{
    const char *slash = memchr(s, '/', n);
    size_t rn = slash ? (size_t)(slash - s) : n;
    const char *dash = memchr(s, '-', rn);
    unsigned lo, hi, step = 1;
    uint64_t extra = 0;
    bool single = dash == NULL;
    if ((rn == 1 && (s[0] == '*' || s[0] == '?')) ||
        (dash && dash - s == 1 && (s[0] == '*' || s[0] == '?'))) {
        lo = b->lo;
        hi = b->hi;
        extra = STAR_BIT;
    } else if (dash) {
        if (memchr(dash + 1, '-', rn - (size_t)(dash + 1 - s)))
            return TODO_EVALIDATION_ERROR; /* too many hyphens */
        if (!parse_int_or_name(s, (size_t)(dash - s), b, &lo) ||
            !parse_int_or_name(dash + 1, rn - (size_t)(dash + 1 - s), b, &hi))
            return TODO_EVALIDATION_ERROR;
    } else {
        if (!parse_int_or_name(s, rn, b, &lo))
            return TODO_EVALIDATION_ERROR;
        hi = lo;
    }
    if (slash) {
        size_t sn = n - rn - 1;
        if (memchr(slash + 1, '/', sn))
            return TODO_EVALIDATION_ERROR; /* too many slashes */
        if (!parse_uint(slash + 1, sn, &step))
            return TODO_EVALIDATION_ERROR;
        if (single && !extra)
            hi = b->hi; /* "N/step" means "N-max/step" */
        if (step > 1)
            extra = 0;
    }
    if (lo < b->lo || hi > b->hi || lo > hi || step == 0)
        return TODO_EVALIDATION_ERROR;
    *out = bits(lo, hi, step) | extra;
    return 0;
}

static int parse_field(const char *s, size_t n, const bounds_t *b, uint64_t *out)
{
    uint64_t acc = 0, one;
    size_t i = 0;
    while (i <= n) {
        const char *comma = memchr(s + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - s) : n;
        if (parse_range(s + i, end - i, b, &one) != 0)
            return TODO_EVALIDATION_ERROR;
        acc |= one;
        i = end + 1;
    }
    *out = acc;
    return 0;
}

/* Zone lookup: "UTC", "" → UTC (NULL); "Local" → the default zone; else an IANA name. */
static int zone_lookup(const char *name, icaltimezone **out)
{
    int rc = TODO_EVALIDATION_ERROR;
    *out = NULL;
    if (name[0] == '\0' || strcmp(name, "UTC") == 0)
        return 0;
    if (!time_zone_valid(name))
        return TODO_EVALIDATION_ERROR;
    pthread_mutex_lock(&ical_mu);
    *out = icaltimezone_get_builtin_timezone(name);
    pthread_mutex_unlock(&ical_mu);
    if (*out)
        rc = 0;
    return rc;
}

static int default_zone(icaltimezone **out)
{
    const char *tz = getenv("TZ");
    *out = NULL;
    if (tz && *tz == ':')
        tz++;
    if (!tz || !*tz || zone_lookup(tz, out) != 0)
        *out = NULL;
    return 0;
}

static int parse_descriptor(const char *d, cron_schedule_t *s, bool zoned, char *err)
{
    static const char every[] = "@every ";
    uint64_t all_dom = bits(1, 31, 1) | STAR_BIT, all_month = bits(1, 12, 1) | STAR_BIT,
             all_dow = bits(0, 6, 1) | STAR_BIT;
    s->sec = s->min = s->hour = 1; /* bit 0 */
    s->dom = all_dom;
    s->month = all_month;
    s->dow = all_dow;
    if (strcmp(d, "@yearly") == 0 || strcmp(d, "@annually") == 0) {
        s->dom = UINT64_C(1) << 1;
        s->month = UINT64_C(1) << 1;
    } else if (strcmp(d, "@monthly") == 0) {
        s->dom = UINT64_C(1) << 1;
    } else if (strcmp(d, "@weekly") == 0) {
        s->dow = 1;
    } else if (strcmp(d, "@daily") == 0 || strcmp(d, "@midnight") == 0) {
        /* defaults */
    } else if (strcmp(d, "@hourly") == 0) {
        s->hour = bits(0, 23, 1) | STAR_BIT;
    } else if (strncmp(d, every, sizeof(every) - 1) == 0) {
        int64_t usec;
        /* DAPR-CONTRACT §6.1: a TZ=/CRON_TZ= prefix with @every is rejected since v1.18.3. */
        if (zoned) {
            set_err(err, "%s", "a time zone prefix cannot be used with @every");
            return TODO_EVALIDATION_ERROR;
        }
        if (cron_parse_go_duration(d + sizeof(every) - 1, &usec) != 0) {
            set_err(err, "failed to parse duration %s", d);
            return TODO_EVALIDATION_ERROR;
        }
        s->every = true;
        s->delay_sec = usec / 1000000; /* rounded down to whole seconds, at least 1 s */
        if (s->delay_sec < 1)
            s->delay_sec = 1;
    } else {
        set_err(err, "unrecognized descriptor: %s", d);
        return TODO_EVALIDATION_ERROR;
    }
    return 0;
}

int cron_parse(const char *spec, cron_schedule_t **out, char err[CRON_ERR_MAX])
{
    int rc = TODO_EVALIDATION_ERROR;
    cron_schedule_t *s = NULL;
    const char *p = spec, *fields[7];
    size_t lens[7], nf = 0;
    bool zoned = false;
    *out = NULL;
    if (err)
        err[0] = '\0';
    if (!spec || !*spec) {
        set_err(err, "%s", "empty spec string");
        goto out;
    }
    if (strlen(spec) > 1024) {
        set_err(err, "%s", "spec too long");
        goto out;
    }
    s = xcalloc(1, sizeof(*s));
    if (strncmp(p, "TZ=", 3) == 0 || strncmp(p, "CRON_TZ=", 8) == 0) {
        const char *eq = strchr(p, '=') + 1, *sp = strchr(p, ' ');
        char name[ZONE_NAME_MAX];
        if (!sp || (size_t)(sp - eq) >= sizeof(name)) {
            set_err(err, "provided bad location %s", eq);
            goto out;
        }
        memcpy(name, eq, (size_t)(sp - eq));
        name[sp - eq] = '\0';
        if (strcmp(name, "Local") == 0 ? default_zone(&s->zone) != 0
                                       : zone_lookup(name, &s->zone) != 0) {
            set_err(err, "provided bad location %s", name);
            goto out;
        }
        zoned = true;
        p = sp;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
            p++;
    } else if (default_zone(&s->zone) != 0) {
        goto out;
    }
    if (*p == '@') {
        /* the rest after TrimSpace, as kit does */
        char d[1100];
        size_t n = strlen(p);
        while (zoned && n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        if (n >= sizeof(d))
            goto out;
        memcpy(d, p, n);
        d[n] = '\0';
        if (parse_descriptor(d, s, zoned, err) != 0)
            goto out;
    } else {
        while (*p) {
            while (*p && isspace((unsigned char)*p))
                p++;
            if (!*p)
                break;
            if (nf == 7) {
                nf++;
                break;
            }
            fields[nf] = p;
            while (*p && !isspace((unsigned char)*p))
                p++;
            lens[nf] = (size_t)(p - fields[nf]);
            nf++;
        }
        if (nf != 6) {
            set_err(err, "expected exactly 6 fields, found %s", nf > 6 ? "more" : "fewer");
            goto out;
        }
        if (parse_field(fields[0], lens[0], &b_sec, &s->sec) != 0 ||
            parse_field(fields[1], lens[1], &b_min, &s->min) != 0 ||
            parse_field(fields[2], lens[2], &b_hour, &s->hour) != 0 ||
            parse_field(fields[3], lens[3], &b_dom, &s->dom) != 0 ||
            parse_field(fields[4], lens[4], &b_month, &s->month) != 0 ||
            parse_field(fields[5], lens[5], &b_dow, &s->dow) != 0) {
            set_err(err, "invalid cron field in %s", spec);
            goto out;
        }
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    cron_free(s);
    return rc;
}

void cron_free(cron_schedule_t *s)
{
    free(s); /* libical zones are process-wide and never freed */
}

/* ---- civil calendar (proleptic Gregorian) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

typedef struct {
    int y, mo, d, h, mi, s, wd;
} lt_t;

static void split_utc(int64_t secs, lt_t *o)
{
    int64_t days = floor_div(secs, 86400), rem = secs - days * 86400;
    civil_from_days(days, &o->y, &o->mo, &o->d);
    o->h = (int)(rem / 3600);
    o->mi = (int)(rem / 60 % 60);
    o->s = (int)(rem % 60);
    o->wd = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
}

/* Absolute seconds → wall clock in zone z. */
static void to_local(icaltimezone *z, int64_t secs, lt_t *o)
{
    if (!z) {
        split_utc(secs, o);
        return;
    }
    pthread_mutex_lock(&ical_mu);
    icaltimezone *utc = icaltimezone_get_utc_timezone();
    struct icaltimetype t = icaltime_from_timet_with_zone((time_t)secs, 0, utc);
    icaltimezone_convert_time(&t, utc, z);
    pthread_mutex_unlock(&ical_mu);
    int64_t local = days_from_civil(t.year, (unsigned)t.month, (unsigned)t.day) * 86400 +
                    t.hour * 3600 + t.minute * 60 + t.second;
    split_utc(local, o);
}

/* Wall clock in zone z (fields may overflow, as Go's time.Date normalises) → absolute seconds.
 * A wall time in a DST gap or overlap resolves as libical resolves it. */
static int64_t from_local(icaltimezone *z, int y, int mo, int d, int h, int mi, int s)
{
    int64_t ym = (int64_t)y * 12 + (mo - 1);
    int64_t yy = floor_div(ym, 12);
    int m = (int)(ym - yy * 12) + 1;
    int64_t local = (days_from_civil(yy, (unsigned)m, 1) + d - 1) * 86400 + (int64_t)h * 3600 +
                    (int64_t)mi * 60 + s;
    if (!z)
        return local;
    lt_t n;
    split_utc(local, &n);
    struct icaltimetype t = icaltime_null_time();
    t.year = n.y;
    t.month = n.mo;
    t.day = n.d;
    t.hour = n.h;
    t.minute = n.mi;
    t.second = n.s;
    pthread_mutex_lock(&ical_mu);
    t.zone = z;
    int64_t r = (int64_t)icaltime_as_timet_with_zone(t, z);
    pthread_mutex_unlock(&ical_mu);
    return r;
}

static bool day_matches(const cron_schedule_t *s, const lt_t *t)
{
    bool dom = (s->dom >> t->d) & 1, dow = (s->dow >> t->wd) & 1;
    if ((s->dom & STAR_BIT) || (s->dow & STAR_BIT))
        return dom && dow;
    return dom || dow;
}

int64_t cron_next(const cron_schedule_t *s, int64_t after_usec)
{
    int64_t t = floor_div(after_usec, 1000000) + 1; /* the next whole second */
    lt_t l;
    bool added = false;
    int year_limit;
    if (s->every)
        return (t - 1 + s->delay_sec) * 1000000; /* robfig: t + delay, sub-second part dropped */
    to_local(s->zone, t, &l);
    year_limit = l.y + 5;
wrap:
    to_local(s->zone, t, &l);
    if (l.y > year_limit)
        return 0;
    while (!((s->month >> l.mo) & 1)) {
        if (!added) {
            added = true;
            t = from_local(s->zone, l.y, l.mo, 1, 0, 0, 0);
            to_local(s->zone, t, &l);
        }
        t = from_local(s->zone, l.y, l.mo + 1, l.d, l.h, l.mi, l.s);
        to_local(s->zone, t, &l);
        if (l.mo == 1)
            goto wrap;
    }
    while (!day_matches(s, &l)) {
        if (!added) {
            added = true;
            t = from_local(s->zone, l.y, l.mo, l.d, 0, 0, 0);
            to_local(s->zone, t, &l);
        }
        t = from_local(s->zone, l.y, l.mo, l.d + 1, l.h, l.mi, l.s);
        to_local(s->zone, t, &l);
        if (l.h != 0) { /* DST moved midnight */
            t += l.h > 12 ? (int64_t)(24 - l.h) * 3600 : -(int64_t)l.h * 3600;
            to_local(s->zone, t, &l);
        }
        if (l.d == 1)
            goto wrap;
    }
    while (!((s->hour >> l.h) & 1)) {
        if (!added) {
            added = true;
            t = from_local(s->zone, l.y, l.mo, l.d, l.h, 0, 0);
            to_local(s->zone, t, &l);
        }
        t += 3600;
        to_local(s->zone, t, &l);
        if (l.h == 0)
            goto wrap;
    }
    while (!((s->min >> l.mi) & 1)) {
        if (!added) {
            added = true;
            t = floor_div(t, 60) * 60;
            to_local(s->zone, t, &l);
        }
        t += 60;
        to_local(s->zone, t, &l);
        if (l.mi == 0)
            goto wrap;
    }
    while (!((s->sec >> l.s) & 1)) {
        added = true;
        t += 1;
        to_local(s->zone, t, &l);
        if (l.s == 0)
            goto wrap;
    }
    return t * 1000000;
}

/* ---- durations and times ---- */

int cron_parse_go_duration(const char *s, int64_t *out_usec)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {{"ns", 1},
                 {"us", 1000},
                 {"\xc2\xb5s", 1000},
                 {"\xce\xbcs", 1000},
                 {"ms", 1000000},
                 {"s", 1000000000},
                 {"m", INT64_C(60000000000)},
                 {"h", INT64_C(3600000000000)}};
    bool neg = false;
    double total = 0; /* ns; bounded below */
    int64_t itotal = 0;
    const char *p = s;
    if (!s || !*s)
        return TODO_EVALIDATION_ERROR;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out_usec = 0;
        return 0;
    }
    if (!*p)
        return TODO_EVALIDATION_ERROR;
    while (*p) {
        int64_t whole = 0;
        double frac = 0, scale = 1;
        bool digits = false;
        while (isdigit((unsigned char)*p)) {
            if (whole > INT64_MAX / 10)
                return TODO_EVALIDATION_ERROR;
            whole = whole * 10 + (*p++ - '0');
            digits = true;
        }
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                scale /= 10;
                frac += (*p++ - '0') * scale;
                digits = true;
            }
        }
        if (!digits)
            return TODO_EVALIDATION_ERROR;
        size_t un = 0;
        while (p[un] && p[un] != '.' && !isdigit((unsigned char)p[un]))
            un++;
        int64_t mult = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strlen(units[i].unit) == un && strncmp(p, units[i].unit, un) == 0)
                mult = units[i].ns;
        if (!mult)
            return TODO_EVALIDATION_ERROR; /* missing or unknown unit */
        p += un;
        if (whole > INT64_MAX / mult)
            return TODO_EVALIDATION_ERROR;
        itotal += whole * mult;
        total += frac * (double)mult;
        if (itotal < 0 || (double)itotal + total > 9.2e18)
            return TODO_EVALIDATION_ERROR;
    }
    itotal += (int64_t)total;
    *out_usec = (neg ? -itotal : itotal) / 1000;
    return 0;
}

int cron_parse_iso_duration(const char *s, int *out_years, int *out_months, int64_t *out_usec)
{
    const char *p = s;
    bool in_time = false, any = false;
    int64_t years = 0, months = 0, usec = 0;
    const char *order_date = "YMWD", *order_time = "HMS";
    const char *pos = order_date;
    if (!s || *p++ != 'P')
        return TODO_EVALIDATION_ERROR;
    while (*p) {
        int64_t whole = 0;
        double frac = 0, scale = 1;
        bool digits = false, has_frac = false;
        if (*p == 'T') {
            if (in_time)
                return TODO_EVALIDATION_ERROR;
            in_time = true;
            pos = order_time;
            p++;
            if (!*p)
                return TODO_EVALIDATION_ERROR;
            continue;
        }
        while (isdigit((unsigned char)*p)) {
            if (whole > 100000000)
                return TODO_EVALIDATION_ERROR;
            whole = whole * 10 + (*p++ - '0');
            digits = true;
        }
        if (*p == '.' || *p == ',') {
            p++;
            has_frac = true;
            while (isdigit((unsigned char)*p)) {
                scale /= 10;
                frac += (*p++ - '0') * scale;
            }
        }
        if (!digits || !*p)
            return TODO_EVALIDATION_ERROR;
        const char *u = strchr(pos, *p);
        if (!u)
            return TODO_EVALIDATION_ERROR; /* unknown unit or out of order */
        pos = u + 1;
        if (has_frac && !(in_time && *p == 'S'))
            return TODO_EVALIDATION_ERROR;
        if (!in_time) {
            switch (*p) {
            case 'Y':
                years = whole;
                break;
            case 'M':
                months = whole;
                break;
            case 'W':
                usec += whole * 7 * 86400 * INT64_C(1000000);
                break;
            default:
                usec += whole * 86400 * INT64_C(1000000);
                break;
            }
        } else {
            switch (*p) {
            case 'H':
                usec += whole * 3600 * INT64_C(1000000);
                break;
            case 'M':
                usec += whole * 60 * INT64_C(1000000);
                break;
            default:
                usec += whole * INT64_C(1000000) + (int64_t)(frac * 1e6);
                break;
            }
        }
        any = true;
        p++;
    }
    if (!any || years > 10000 || months > 120000)
        return TODO_EVALIDATION_ERROR;
    *out_years = (int)years;
    *out_months = (int)months;
    *out_usec = usec;
    return 0;
}

int cron_parse_time(const char *s, int64_t base_usec, int64_t *out_usec)
{
    int years, months;
    int64_t d;
    if (!s || !*s || strlen(s) > 256)
        return TODO_EVALIDATION_ERROR;
    if (time_parse_rfc3339(s, out_usec) == 0)
        return 0;
    if (cron_parse_go_duration(s, &d) == 0) {
        *out_usec = base_usec + d;
        return 0;
    }
    if (cron_parse_iso_duration(s, &years, &months, &d) == 0) {
        /* AddDate(years, months, 0) in UTC, then the fixed part. */
        int64_t secs = floor_div(base_usec, 1000000), sub = base_usec - secs * 1000000;
        lt_t l;
        split_utc(secs, &l);
        *out_usec =
            from_local(NULL, l.y + years, l.mo + months, l.d, l.h, l.mi, l.s) * 1000000 + sub + d;
        return 0;
    }
    return TODO_EVALIDATION_ERROR;
}
