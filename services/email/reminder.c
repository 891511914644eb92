/* Reading and checking a todo.reminder.due event's data; see reminder.h. */
#include "reminder.h"

#include <string.h>
#include <strings.h>

#include "todo/timeutil.h"

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static bool is_atext(char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A dot-atom: atext runs separated by single dots. */
static bool dot_atom(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext(s[i])) {
            return false;
        }
    }
    return true;
}

/* Labels of letters, digits and hyphens (not at either end), 1-63 each, separated by dots. */
static bool ldh_domain(const char *s, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_alnum(s[i]) || s[i] == '-') {
            if (label == 0 && s[i] == '-')
                return false;
            label++;
        } else {
            return false;
        }
    }
    return true;
}

bool reminder_address_valid(const char *addr)
{
    if (!addr)
        return false;
    size_t n = strlen(addr);
    const char *at = strchr(addr, '@');
    if (n > REMINDER_ADDRESS_MAX || !at || strchr(at + 1, '@'))
        return false;
    size_t local = (size_t)(at - addr);
    return local <= 64 && dot_atom(addr, local) && ldh_domain(at + 1, n - local - 1);
}

bool reminder_event_id_valid(const char *id)
{
    if (!id)
        return false;
    size_t n = strlen(id);
    if (n == 0 || n > REMINDER_EVENT_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(id[i]) && id[i] != '-' && id[i] != '_')
            return false;
    return true;
}

bool reminder_link_valid(const char *link)
{
    if (!link)
        return false;
    size_t n = strlen(link), skip;
    if (n > REMINDER_LINK_MAX)
        return false;
    if (strncasecmp(link, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(link, "http://", 7) == 0)
        skip = 7;
    else
        return false;
    if (n == skip || link[skip] == '/' || link[skip] == '?' || link[skip] == '#')
        return false; /* no host */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)link[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c))
            return false;
    }
    return true;
}

/* A required string member; *why names it when it is missing or not a string. */
static bool get_string(const json_t *data, const char *key, const char **out, const char **why,
                       const char *reason)
{
    if (json_get_string(data, key, out, NULL) == JSON_FIELD_VALUE)
        return true;
    *why = reason;
    return false;
}

/* A required RFC 3339 time. */
static bool get_time(const json_t *data, const char *key, int64_t *out, const char **why,
                     const char *reason)
{
    const char *s = NULL;
    if (json_get_string(data, key, &s, NULL) == JSON_FIELD_VALUE && time_parse_rfc3339(s, out) == 0)
        return true;
    *why = reason;
    return false;
}

int reminder_parse(const json_t *data, reminder_t *out, const char **why)
{
    const char *s = NULL;
    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (!json_is_object(data)) {
        *why = "data is not an object";
        return TODO_EVALIDATION_ERROR;
    }
    if (json_get_int(data, "task_id", &out->task_id, NULL) != JSON_FIELD_VALUE ||
        out->task_id < 1) {
        *why = "task_id must be a positive integer";
        return TODO_EVALIDATION_ERROR;
    }
    if (!get_string(data, "user_id", &out->user_id, why, "user_id must be a string") ||
        !get_string(data, "email", &out->email, why, "email must be a string") ||
        !get_string(data, "title", &out->title, why, "title must be a string") ||
        !get_string(data, "timezone", &out->timezone, why, "timezone must be a string") ||
        !get_string(data, "link", &out->link, why, "link must be a string") ||
        !get_time(data, "remind_at", &out->remind_at, why, "remind_at must be an RFC 3339 time"))
        return TODO_EVALIDATION_ERROR;

    switch (json_get_string(data, "description", &s, NULL)) {
    case JSON_FIELD_VALUE:
        out->description = s;
        break;
    case JSON_FIELD_ABSENT:
    case JSON_FIELD_NULL:
        out->description = "";
        break;
    default:
        *why = "description must be a string or null";
        return TODO_EVALIDATION_ERROR;
    }
    switch (json_get_string(data, "due_at", &s, NULL)) {
    case JSON_FIELD_VALUE:
        if (time_parse_rfc3339(s, &out->due_at) != 0) {
            *why = "due_at must be an RFC 3339 time or null";
            return TODO_EVALIDATION_ERROR;
        }
        out->has_due = true;
        break;
    case JSON_FIELD_NULL:
    case JSON_FIELD_ABSENT:
        break;
    default:
        *why = "due_at must be an RFC 3339 time or null";
        return TODO_EVALIDATION_ERROR;
    }

    if (!*out->user_id || strlen(out->user_id) > REMINDER_USER_ID_MAX)
        *why = "user_id must be 1 to 256 bytes";
    else if (!reminder_address_valid(out->email))
        *why = "email is not a usable address";
    else if (!*out->title || json_utf8_length(out->title) > REMINDER_TITLE_MAX)
        *why = "title must be 1 to 500 characters";
    else if (json_utf8_length(out->description) > REMINDER_DESCRIPTION_MAX)
        *why = "description must be at most 10000 characters";
    else if (!*out->timezone || strlen(out->timezone) > REMINDER_TIMEZONE_MAX)
        *why = "timezone must be 1 to 64 bytes";
    else if (!reminder_link_valid(out->link))
        *why = "link must be an http(s) URL";
    return *why ? TODO_EVALIDATION_ERROR : 0;
}
