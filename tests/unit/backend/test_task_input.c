/* Tests of services/backend/task_input.c: parsing, limits, RRULE and time zone validation, and the
 * PATCH merge rules. */
#include "backend/task_input.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Parses text and returns the number of errors; the input stays in *in. */
static int parse(const char *text, bool require_title, task_input_t *in)
{
    json_t *body = NULL;
    json_errors_t e;
    if (json_parse(text, strlen(text), true, &body) != 0) {
        fprintf(stderr, "bad test JSON: %s\n", text);
        return -1;
    }
    json_errors_init(&e);
    task_input_parse(body, require_title, in, &e);
    int n = (int)json_array_size(e.list);
    json_errors_dispose(&e);
    json_decref(body);
    return n;
}

static int errors_of(const char *text, bool require_title)
{
    task_input_t in;
    int n = parse(text, require_title, &in);
    task_input_dispose(&in);
    return n;
}

static void test_valid_create(void)
{
    task_input_t in;
    CHECK_INT(parse("{\"title\":\"  Buy milk \",\"priority\":\"urgent\",\"tag_ids\":[3,3,4],"
                    "\"due_at\":\"2026-03-29T01:30:00+01:00\",\"remind_before_minutes\":15,"
                    "\"timezone\":\"Europe/Berlin\",\"recurrence_rule\":\"RRULE:FREQ=WEEKLY;"
                    "BYDAY=MO,WE;COUNT=3\"}",
                    true, &in),
              0);
    CHECK_STR(in.fields.title, "Buy milk");
    CHECK_INT(in.fields.priority, 3);
    CHECK_INT(in.fields.ntags, 2); /* duplicates collapse */
    CHECK_INT(in.fields.due_at, 1774744200LL * 1000000);
    CHECK_STR(in.fields.recurrence_rule, "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=3");
    CHECK_STR(in.fields.timezone, "Europe/Berlin");

    task_fields_t f;
    json_errors_t e;
    task_fields_init(&f);
    json_errors_init(&e);
    task_input_apply(&in, &f);
    task_fields_check(&f, &e);
    CHECK(!json_errors_any(&e));
    CHECK(f.has_remind_at);
    CHECK_INT(f.remind_at, f.due_at - 15 * 60 * 1000000LL);
    json_errors_dispose(&e);
    task_fields_dispose(&f);
    task_input_dispose(&in);
}

static void test_invalid_fields(void)
{
    char big[4100];
    CHECK_INT(errors_of("{}", true), 1);                  /* title required */
    CHECK_INT(errors_of("{\"title\":\"   \"}", true), 1); /* blank */
    CHECK_INT(errors_of("{\"title\":5}", true), 1);       /* type */
    CHECK_INT(errors_of("{\"title\":null}", false), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"priority\":\"huge\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"tag_ids\":[1,2,3,4,5,6,7,8,9,10,11]}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"tag_ids\":[1,\"x\"]}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"category_id\":0}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"due_at\":\"tomorrow\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"due_at\":\"2026-02-30T10:00:00Z\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"timezone\":\"Mars/Olympus\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"timezone\":\"../../etc/passwd\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"recurrence_rule\":\"FREQ=SOMETIMES\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"recurrence_rule\":\"FREQ=HOURLY\"}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"remind_before_minutes\":525601}", true), 1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"remind_at\":\"2026-01-01T00:00:00Z\","
                        "\"remind_before_minutes\":5}",
                        true),
              1);
    CHECK_INT(errors_of("{\"title\":\"a\",\"colour\":\"red\"}", true), 1); /* unknown key */

    /* 200 characters of two bytes each is fine; 201 is not. */
    char title[1024] = "{\"title\":\"";
    for (int i = 0; i < 200; i++)
        strcat(title, "\xc3\xa9");
    strcat(title, "\"}");
    CHECK_INT(errors_of(title, true), 0);
    title[strlen(title) - 2] = '\0';
    strcat(title, "x\"}");
    CHECK_INT(errors_of(title, true), 1);

    strcpy(big, "{\"title\":\"a\",\"description\":\"");
    size_t n = strlen(big);
    memset(big + n, 'd', 4001);
    strcpy(big + n + 4001, "\"}");
    CHECK_INT(errors_of(big, true), 1);
}

static void test_cross_field(void)
{
    task_input_t in;
    task_fields_t f;
    json_errors_t e;

    CHECK_INT(parse("{\"title\":\"a\",\"recurrence_rule\":\"FREQ=DAILY\","
                    "\"remind_before_minutes\":5}",
                    true, &in),
              0);
    task_fields_init(&f);
    json_errors_init(&e);
    task_input_apply(&in, &f);
    task_fields_check(&f, &e);
    CHECK_INT(json_array_size(e.list), 2); /* both need due_at */
    json_errors_dispose(&e);
    task_fields_dispose(&f);
    task_input_dispose(&in);
}

static void test_patch_merge(void)
{
    task_input_t in;
    task_fields_t f;
    task_fields_init(&f);
    f.title = strdup("old");
    f.has_due = true;
    f.due_at = 1000;
    f.category_id = 7;
    f.priority = 2;

    /* null clears nullable fields; absent fields stay. */
    CHECK_INT(parse("{\"due_at\":null,\"category_id\":null,\"description\":null}", false, &in), 0);
    task_input_apply(&in, &f);
    CHECK_STR(f.title, "old");
    CHECK(!f.has_due);
    CHECK_INT(f.category_id, 0);
    CHECK_INT(f.priority, 2);
    CHECK_STR(f.description, "");
    task_input_dispose(&in);

    /* setting remind_at replaces a relative reminder */
    f.has_remind_before = true;
    f.remind_before = 10;
    CHECK_INT(parse("{\"remind_at\":\"2030-01-01T00:00:00Z\"}", false, &in), 0);
    task_input_apply(&in, &f);
    CHECK(!f.has_remind_before);
    CHECK(f.has_remind_at);
    task_input_dispose(&in);
    task_fields_dispose(&f);
}

static void test_rrule(void)
{
    CHECK(task_rrule_valid("FREQ=DAILY"));
    CHECK(task_rrule_valid("FREQ=MONTHLY;BYMONTHDAY=31;UNTIL=20271231T000000Z"));
    CHECK(task_rrule_valid("FREQ=YEARLY;INTERVAL=2;BYMONTH=2"));
    CHECK(!task_rrule_valid(""));
    CHECK(!task_rrule_valid("FREQ=MINUTELY"));
    CHECK(!task_rrule_valid("BYDAY=MO"));
    CHECK(!task_rrule_valid("FREQ=DAILY\nDTSTART:20200101"));
    CHECK(!task_rrule_valid("hello world"));
}

int main(void)
{
    test_valid_create();
    test_invalid_fields();
    test_cross_field();
    test_patch_merge();
    test_rrule();
    return check_exit();
}
