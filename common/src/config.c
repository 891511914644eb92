/* The declarative configuration table of a service (after redis' static_configs): values from the
 * environment, bounded parsing, --help/--version/--check-config, and the masked start-up line. */
#define _GNU_SOURCE /* memrchr */
#include "todo/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "todo/buf.h"
#include "todo/log.h"

#define CONFIG_SHOWN_MAX  80   /* characters of a bad value echoed back */
#define CONFIG_LOG_MAX    3000 /* bytes of the start-up line */
#define CONFIG_REASON_MAX 160

static void usage(FILE *f, const char *service)
{
    fprintf(f, "Usage: %s [--help | --version | --check-config]\n", service);
}

static const char *type_name(config_type_t t)
{
    switch (t) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_SECRET:
        return "secret";
    case CONFIG_INT:
        return "integer";
    case CONFIG_BOOL:
        return "boolean";
    }
    return "?";
}

static void print_help(const char *service, const config_entry_t *tab, size_t n)
{
    usage(stdout, service);
    printf("\n"
           "  --help          print this help and exit\n"
           "  --version       print the version and exit\n"
           "  --check-config  validate the configuration, print \"configuration ok\" and exit\n"
           "\n"
           "Environment variables (an empty value counts as unset):\n");
    for (size_t i = 0; i < n; i++) {
        const config_entry_t *e = &tab[i];
        printf("  %s (%s", e->name, type_name(e->type));
        if (e->type == CONFIG_INT)
            printf(" %" PRId64 "..%" PRId64, e->min, e->max);
        else if ((e->type == CONFIG_STRING || e->type == CONFIG_SECRET) && e->max > 0)
            printf(", %" PRId64 "..%" PRId64 " characters", e->min, e->max);
        else if ((e->type == CONFIG_STRING || e->type == CONFIG_SECRET) && e->min > 0)
            printf(", at least %" PRId64 " characters", e->min);
        if (e->def)
            printf(", default %s", e->type == CONFIG_SECRET ? "***" : e->def);
        else if (e->required)
            printf(", required");
        else
            printf(", no default");
        printf(")\n      %s\n", e->help ? e->help : "");
    }
}

/* Whole-string base-10 integer: no leading blanks, no trailing text, no overflow. */
static bool parse_int(const char *s, int64_t *out)
{
    char *end = NULL;
    if (!((*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9')))
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Parses value into e->dest. Returns NULL when fine, else the reason (static or in why). */
static const char *apply(const config_entry_t *e, const char *value, char *why, size_t why_len)
{
    int64_t i = 0;
    bool b = false;
    size_t len = strlen(value);

    switch (e->type) {
    case CONFIG_STRING:
    case CONFIG_SECRET:
        if (e->min > 0 && len < (uint64_t)e->min) {
            snprintf(why, why_len, "must be at least %" PRId64 " characters long", e->min);
            return why;
        }
        if (e->max > 0 && len > (uint64_t)e->max) {
            snprintf(why, why_len, "must be at most %" PRId64 " characters long", e->max);
            return why;
        }
        break;
    case CONFIG_INT:
        if (!parse_int(value, &i) || i < e->min || i > e->max) {
            snprintf(why, why_len, "must be an integer from %" PRId64 " to %" PRId64, e->min,
                     e->max);
            return why;
        }
        break;
    case CONFIG_BOOL:
        if (!parse_bool(value, &b))
            return "must be one of true, false, 1, 0, yes, no, on, off";
        break;
    default:
        return "has an unknown type in the configuration table";
    }

    const char *reason = e->check ? e->check(value) : NULL;
    if (reason)
        return reason;
    if (!e->dest)
        return NULL;
    if (e->type == CONFIG_INT)
        *(int64_t *)e->dest = i;
    else if (e->type == CONFIG_BOOL)
        *(bool *)e->dest = b;
    else
        *(const char **)e->dest = value;
    return NULL;
}

/* What an unset variable without a default leaves behind. */
static void clear(const config_entry_t *e)
{
    if (!e->dest)
        return;
    if (e->type == CONFIG_INT)
        *(int64_t *)e->dest = 0;
    else if (e->type == CONFIG_BOOL)
        *(bool *)e->dest = false;
    else
        *(const char **)e->dest = NULL;
}

/* Appends a string value with any password in a URL ("scheme://user:pass@") or a libpq
 * keyword list ("password=…") replaced by ***. */
static int put_masked(buf_t *b, const char *v)
{
    const char *scheme = strstr(v, "://");
    if (scheme) {
        const char *user = scheme + 3;
        size_t span = strcspn(user, "/?#");
        const char *at = memrchr(user, '@', span); /* a password may itself hold '@' */
        const char *colon = at ? memchr(user, ':', (size_t)(at - user)) : NULL;
        if (colon)
            return buf_printf(b, "%.*s***%s", (int)(colon + 1 - v), v, at);
    }
    const char *pw = strstr(v, "password=");
    if (pw && (pw == v || pw[-1] == ' ')) {
        const char *rest = pw + strlen("password=");
        rest += strcspn(rest, " ");
        return buf_printf(b, "%.*spassword=***%s", (int)(pw - v), v, rest);
    }
    return buf_puts(b, v);
}

/* Echoes a bad value back with any password in it masked (put_masked), shortened, and with
 * unprintable bytes replaced. */
static void print_value(const char *v)
{
    buf_t b;
    buf_init(&b, 0);
    const char *shown = put_masked(&b, v) == 0 ? b.data : "";
    size_t len = strlen(shown);
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < CONFIG_SHOWN_MAX; i++)
        fputc(shown[i] >= 0x20 && shown[i] < 0x7f ? shown[i] : '?', stderr);
    fputs(len > CONFIG_SHOWN_MAX ? "\"..." : "\"", stderr);
    buf_dispose(&b);
}

int config_main(const char *service, const config_entry_t *tab, size_t n, int argc, char **argv)
{
    bool check_only = false;
    int bad = 0;

    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            print_help(service, tab, n);
            return 0;
        }
        if (strcmp(argv[a], "--version") == 0) {
            printf("%s %s\n", service, TODO_VERSION);
            return 0;
        }
        if (strcmp(argv[a], "--check-config") == 0) {
            check_only = true;
            continue;
        }
        fprintf(stderr, "%s: unknown argument \"%s\"\n", service, argv[a]);
        usage(stderr, service);
        return 2;
    }

    for (size_t i = 0; i < n; i++) {
        const config_entry_t *e = &tab[i];
        const char *value = getenv(e->name);
        bool from_env = value && *value;
        char why[CONFIG_REASON_MAX];
        if (!from_env)
            value = e->def;
        if (!value) {
            clear(e);
            if (e->required) {
                fprintf(stderr, "%s: configuration error: %s is required\n", service, e->name);
                bad++;
            }
            continue;
        }
        const char *reason = apply(e, value, why, sizeof(why));
        if (!reason)
            continue;
        fprintf(stderr, "%s: configuration error: %s", service, e->name);
        if (e->type != CONFIG_SECRET) {
            fputc('=', stderr);
            print_value(value);
        }
        fprintf(stderr, "%s: %s\n", from_env ? "" : " (the default)", reason);
        bad++;
    }
    if (bad)
        return 2;
    if (check_only) {
        printf("configuration ok\n");
        return 0;
    }
    return -1;
}

void config_log(const char *service, const config_entry_t *tab, size_t n)
{
    buf_t b;
    int rc = 0;
    buf_init(&b, CONFIG_LOG_MAX);
    rc = buf_printf(&b, "configuration of %s %s:", service, TODO_VERSION);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const config_entry_t *e = &tab[i];
        if (!e->dest)
            continue;
        rc = buf_printf(&b, " %s=", e->name);
        if (rc != 0)
            break;
        const char *s = e->type == CONFIG_STRING || e->type == CONFIG_SECRET
                            ? *(const char *const *)e->dest
                            : NULL;
        switch (e->type) {
        case CONFIG_INT:
            rc = buf_printf(&b, "%" PRId64, *(const int64_t *)e->dest);
            break;
        case CONFIG_BOOL:
            rc = buf_puts(&b, *(const bool *)e->dest ? "true" : "false");
            break;
        case CONFIG_SECRET:
            rc = buf_puts(&b, s && *s ? "***" : "(unset)");
            break;
        case CONFIG_STRING:
            if (!s) {
                rc = buf_puts(&b, "(unset)");
                break;
            }
            rc = buf_puts(&b, "\"");
            if (rc == 0)
                rc = put_masked(&b, s);
            if (rc == 0)
                rc = buf_puts(&b, "\"");
            break;
        }
    }
    log_info("config", "%s%s", b.data, rc != 0 ? " ..." : "");
    buf_dispose(&b);
}
