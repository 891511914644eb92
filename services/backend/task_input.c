/* Parsing and validation of task request bodies; see task_input.h. */
#include "task_input.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/recurrence.h"
#include "todo/timeutil.h"

static const char *const priority_names[] = {"low", "medium", "high", "urgent"};

static const char *const task_keys[] = {"title",     "description",     "priority",
                                        "completed", "category_id",     "tag_ids",
                                        "due_at",    "remind_at",       "remind_before_minutes",
                                        "timezone",  "recurrence_rule", NULL};

int task_priority_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, priority_names[i]) == 0)
            return i;
    return -1;
}

const char *task_priority_name(int p)
{
    return p >= 0 && p < 4 ? priority_names[p] : "medium";
}

void task_fields_init(task_fields_t *f)
{
    memset(f, 0, sizeof(*f));
    f->description = xstrdup("");
    f->priority = 1;
    strcpy(f->timezone, "UTC");
}

void task_fields_dispose(task_fields_t *f)
{
    free(f->title);
    free(f->description);
    free(f->recurrence_rule);
    f->title = f->description = f->recurrence_rule = NULL;
}

void task_input_dispose(task_input_t *in)
{
    task_fields_dispose(&in->fields);
}

/* Copy of s without leading and trailing white space (new). */
static char *trimmed(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return xstrndup(s, n);
}

bool task_rrule_valid(const char *rule)
{
    if (!rule[0] || strlen(rule) > TASK_RRULE_MAX)
        return false;
    for (const char *p = rule; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("=;,-+:", *p))
            return false;
    /* The recurring service's own check: a rule accepted here is one it can expand. */
    return recurrence_rule_valid(rule);
}

static void parse_time(const json_t *body, const char *key, unsigned bit, bool *has, int64_t *out,
                       task_input_t *in, json_errors_t *e)
{
    const char *s = NULL;
    json_field_t k = json_get_string(body, key, &s, e);
    if (k == JSON_FIELD_ABSENT || k == JSON_FIELD_WRONG_TYPE)
        return;
    in->has |= bit;
    if (k == JSON_FIELD_NULL) {
        *has = false;
        *out = 0;
        return;
    }
    if (time_parse_rfc3339(s, out) != 0) {
        json_errors_add(e, key, "must be an RFC 3339 date-time with an offset");
        return;
    }
    *has = true;
}

void task_input_parse(const json_t *body, bool require_title, task_input_t *in, json_errors_t *e)
{
    task_fields_t *f = &in->fields;
    const char *s = NULL;
    int64_t n = 0;
    bool b = false;
    json_field_t k;

    memset(in, 0, sizeof(*in));
    task_fields_init(f);
    json_reject_unknown(body, task_keys, e);

    k = json_get_string(body, "title", &s, e);
    if (k == JSON_FIELD_VALUE) {
        in->has |= TASK_F_TITLE;
        f->title = trimmed(s);
        size_t len = json_utf8_length(f->title);
        if (len == 0)
            json_errors_add(e, "title", "must not be empty");
        else if (len > TASK_TITLE_MAX)
            json_errors_add(e, "title", "must be at most 200 characters");
    } else if (k == JSON_FIELD_NULL) {
        json_errors_add(e, "title", "must not be null");
    } else if (k == JSON_FIELD_ABSENT && require_title) {
        json_errors_add(e, "title", "is required");
    }

    k = json_get_string(body, "description", &s, e);
    if (k == JSON_FIELD_VALUE || k == JSON_FIELD_NULL) {
        in->has |= TASK_F_DESCRIPTION;
        free(f->description);
        f->description = xstrdup(k == JSON_FIELD_VALUE ? s : "");
        if (json_utf8_length(f->description) > TASK_DESCRIPTION_MAX)
            json_errors_add(e, "description", "must be at most 4000 characters");
    }

    k = json_get_string(body, "priority", &s, e);
    if (k == JSON_FIELD_VALUE) {
        in->has |= TASK_F_PRIORITY;
        f->priority = task_priority_parse(s);
        if (f->priority < 0)
            json_errors_add(e, "priority", "must be one of low, medium, high, urgent");
    } else if (k == JSON_FIELD_NULL) {
        json_errors_add(e, "priority", "must not be null");
    }

    k = json_get_bool(body, "completed", &b, e);
    if (k == JSON_FIELD_VALUE) {
        in->has |= TASK_F_COMPLETED;
        f->completed = b;
    } else if (k == JSON_FIELD_NULL) {
        json_errors_add(e, "completed", "must not be null");
    }

    k = json_get_int(body, "category_id", &n, e);
    if (k == JSON_FIELD_VALUE || k == JSON_FIELD_NULL) {
        in->has |= TASK_F_CATEGORY;
        f->category_id = k == JSON_FIELD_VALUE ? n : 0;
        if (k == JSON_FIELD_VALUE && n <= 0)
            json_errors_add(e, "category_id", "must be a positive integer");
    }

    const json_t *tags = json_object_get(body, "tag_ids");
    if (tags) {
        in->has |= TASK_F_TAGS;
        if (json_is_null(tags)) {
            f->ntags = 0;
        } else if (!json_is_array(tags)) {
            json_errors_add(e, "tag_ids", "must be an array of tag ids");
        } else if (json_array_size(tags) > TASK_MAX_TAGS) {
            json_errors_add(e, "tag_ids", "must have at most 10 tags");
        } else {
            size_t i;
            const json_t *v;
            json_array_foreach(tags, i, v)
            {
                if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                    json_errors_add(e, "tag_ids", "must be an array of positive integers");
                    break;
                }
                int64_t id = json_integer_value(v);
                bool seen = false;
                for (int j = 0; j < f->ntags; j++)
                    seen |= f->tag_ids[j] == id;
                if (!seen)
                    f->tag_ids[f->ntags++] = id;
            }
        }
    }

    parse_time(body, "due_at", TASK_F_DUE, &f->has_due, &f->due_at, in, e);
    parse_time(body, "remind_at", TASK_F_REMIND_AT, &f->has_remind_at, &f->remind_at, in, e);

    k = json_get_int(body, "remind_before_minutes", &n, e);
    if (k == JSON_FIELD_VALUE || k == JSON_FIELD_NULL) {
        in->has |= TASK_F_REMIND_BEFORE;
        f->has_remind_before = k == JSON_FIELD_VALUE;
        if (k == JSON_FIELD_VALUE && (n < 0 || n > TASK_REMIND_BEFORE_MAX))
            json_errors_add(e, "remind_before_minutes", "must be between 0 and 525600");
        else
            f->remind_before = (int)n;
    }
    if ((in->has & TASK_F_REMIND_AT) && (in->has & TASK_F_REMIND_BEFORE) && f->has_remind_at &&
        f->has_remind_before)
        json_errors_add(e, "remind_at", "give either remind_at or remind_before_minutes, not both");

    k = json_get_string(body, "timezone", &s, e);
    if (k == JSON_FIELD_VALUE) {
        in->has |= TASK_F_TIMEZONE;
        if (strlen(s) > TASK_TIMEZONE_MAX || !time_zone_valid(s))
            json_errors_add(e, "timezone", "must be an IANA time zone name");
        else
            strcpy(f->timezone, s);
    } else if (k == JSON_FIELD_NULL) {
        json_errors_add(e, "timezone", "must not be null");
    }

    k = json_get_string(body, "recurrence_rule", &s, e);
    if (k == JSON_FIELD_VALUE) {
        in->has |= TASK_F_RRULE;
        if (strncasecmp(s, "RRULE:", 6) == 0)
            s += 6;
        if (!task_rrule_valid(s))
            json_errors_add(e, "recurrence_rule",
                            "must be an RFC 5545 RRULE with FREQ DAILY, WEEKLY, MONTHLY or YEARLY");
        else
            f->recurrence_rule = xstrdup(s);
    } else if (k == JSON_FIELD_NULL) {
        in->has |= TASK_F_RRULE;
    }
}

/* Copies (not moves): a transaction that is retried applies the same input again. */
static void copy_string(char **dst, char *const *src)
{
    free(*dst);
    *dst = *src ? xstrdup(*src) : NULL;
}

void task_input_apply(const task_input_t *in, task_fields_t *f)
{
    const task_fields_t *s = &in->fields;
    unsigned has = in->has;

    if (has & TASK_F_TITLE)
        copy_string(&f->title, &s->title);
    if (has & TASK_F_DESCRIPTION)
        copy_string(&f->description, &s->description);
    if (has & TASK_F_PRIORITY)
        f->priority = s->priority;
    if (has & TASK_F_COMPLETED)
        f->completed = s->completed;
    if (has & TASK_F_CATEGORY)
        f->category_id = s->category_id;
    if (has & TASK_F_TAGS) {
        memcpy(f->tag_ids, s->tag_ids, sizeof(f->tag_ids));
        f->ntags = s->ntags;
    }
    if (has & TASK_F_DUE) {
        f->has_due = s->has_due;
        f->due_at = s->due_at;
    }
    /* remind_at and remind_before_minutes are two ways of saying one thing: setting one replaces
     * the other. */
    if (has & TASK_F_REMIND_AT) {
        f->has_remind_at = s->has_remind_at;
        f->remind_at = s->remind_at;
        f->has_remind_before = false;
    }
    if (has & TASK_F_REMIND_BEFORE) {
        f->has_remind_before = s->has_remind_before;
        f->remind_before = s->remind_before;
        if (!s->has_remind_before)
            f->has_remind_at = false;
    }
    if (has & TASK_F_TIMEZONE)
        memcpy(f->timezone, s->timezone, sizeof(f->timezone));
    if (has & TASK_F_RRULE)
        copy_string(&f->recurrence_rule, &s->recurrence_rule);
}

void task_fields_check(task_fields_t *f, json_errors_t *e)
{
    if (f->recurrence_rule && !f->has_due)
        json_errors_add(e, "recurrence_rule", "needs due_at");
    if (f->has_remind_before) {
        if (!f->has_due) {
            json_errors_add(e, "remind_before_minutes", "needs due_at");
        } else {
            f->has_remind_at = true;
            f->remind_at = f->due_at - (int64_t)f->remind_before * 60 * 1000000;
        }
    }
}
