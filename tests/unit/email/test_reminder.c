/* Tests of services/email/reminder.c: a good reminder, every field missing or of the wrong type,
 * the size limits (in characters), addresses that would inject SMTP commands or headers, event
 * ids and links. */
#include "email/reminder.h"

#include <stdlib.h>

#include "check.h"
#include "todo/alloc.h"

static const char *good_json =
    "{\"task_id\": 42, \"user_id\": \"alice\", \"email\": \"alice@example.com\","
    " \"title\": \"Water the plants\", \"description\": \"The ones on the balcony\","
    " \"due_at\": \"2026-11-23T08:00:00Z\", \"remind_at\": \"2026-11-23T07:45:00Z\","
    " \"timezone\": \"Europe/Berlin\", \"link\": \"https://todo.example.com/tasks/42\"}";

static json_t *good(void)
{
    json_t *o = NULL;
    if (json_parse(good_json, strlen(good_json), true, &o) != 0)
        abort();
    return o;
}

/* Parses data and expects a failure whose reason mentions field. */
static void expect_bad(json_t *data, const char *field)
{
    reminder_t r;
    const char *why = NULL;
    CHECK_INT(reminder_parse(data, &r, &why), TODO_EVALIDATION_ERROR);
    CHECK(why != NULL && strstr(why, field) != NULL);
    if (why && !strstr(why, field))
        fprintf(stderr, "  reason \"%s\" does not name %s\n", why, field);
    json_decref(data);
}

static void test_good(void)
{
    json_t *o = good();
    reminder_t r;
    const char *why = "x";
    CHECK_INT(reminder_parse(o, &r, &why), 0);
    CHECK(why == NULL);
    CHECK_INT(r.task_id, 42);
    CHECK_STR(r.user_id, "alice");
    CHECK_STR(r.email, "alice@example.com");
    CHECK_STR(r.title, "Water the plants");
    CHECK_STR(r.description, "The ones on the balcony");
    CHECK(r.has_due);
    CHECK_INT(r.due_at, INT64_C(1795420800) * 1000000);
    CHECK_INT(r.remind_at, INT64_C(1795419900) * 1000000);
    CHECK_STR(r.timezone, "Europe/Berlin");
    CHECK_STR(r.link, "https://todo.example.com/tasks/42");

    /* due_at null, description null or absent, an unknown member: fine. */
    json_object_set_new(o, "due_at", json_null());
    json_object_set_new(o, "description", json_null());
    json_object_set_new(o, "priority", json_string("high"));
    CHECK_INT(reminder_parse(o, &r, &why), 0);
    CHECK(!r.has_due);
    CHECK_STR(r.description, "");
    json_object_del(o, "due_at");
    json_object_del(o, "description");
    CHECK_INT(reminder_parse(o, &r, &why), 0);
    CHECK(!r.has_due);
    json_decref(o);
}

static void test_fields(void)
{
    const char *required[] = {"task_id",  "user_id", "email",    "title",
                              "timezone", "link",    "remind_at"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        json_t *o = good();
        json_object_del(o, required[i]);
        expect_bad(o, required[i]);
        o = good();
        json_object_set_new(o, required[i], json_null());
        expect_bad(o, required[i]);
        o = good();
        json_object_set_new(o, required[i], json_pack("[i]", 1));
        expect_bad(o, required[i]);
    }
    json_t *o = good();
    json_object_set_new(o, "task_id", json_string("42"));
    expect_bad(o, "task_id");
    o = good();
    json_object_set_new(o, "task_id", json_real(42.0));
    expect_bad(o, "task_id");
    o = good();
    json_object_set_new(o, "task_id", json_integer(0));
    expect_bad(o, "task_id");
    o = good();
    json_object_set_new(o, "description", json_integer(1));
    expect_bad(o, "description");
    o = good();
    json_object_set_new(o, "due_at", json_string("tomorrow"));
    expect_bad(o, "due_at");
    o = good();
    json_object_set_new(o, "due_at", json_string("2026-11-23"));
    expect_bad(o, "due_at");
    o = good();
    json_object_set_new(o, "remind_at", json_string("2026-11-23T07:45:00")); /* no offset */
    expect_bad(o, "remind_at");
    o = good();
    json_object_set_new(o, "title", json_string(""));
    expect_bad(o, "title");
    o = good();
    json_object_set_new(o, "user_id", json_string(""));
    expect_bad(o, "user_id");
    o = good();
    json_object_set_new(o, "timezone", json_string(""));
    expect_bad(o, "timezone");
    o = good();
    json_object_set_new(o, "email", json_string("alice@example.com\r\nRCPT TO:<evil@example.net>"));
    expect_bad(o, "email");
    o = good();
    json_object_set_new(o, "link", json_string("javascript:alert(1)"));
    expect_bad(o, "link");
    expect_bad(json_pack("[]"), "data");
}

/* A string of n copies of the UTF-8 character c (new). */
static char *repeat(const char *c, size_t n)
{
    size_t len = strlen(c);
    char *s = xmalloc(len * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, c, len);
    s[len * n] = '\0';
    return s;
}

static void test_limits(void)
{
    reminder_t r;
    const char *why;
    json_t *o = good();
    char *s = repeat("ß", REMINDER_TITLE_MAX); /* 500 characters, 1000 bytes: fine */
    json_object_set_new(o, "title", json_string(s));
    CHECK_INT(reminder_parse(o, &r, &why), 0);
    free(s);
    s = repeat("a", REMINDER_TITLE_MAX + 1);
    json_object_set_new(o, "title", json_string(s));
    free(s);
    expect_bad(o, "title");

    o = good();
    s = repeat("€", REMINDER_DESCRIPTION_MAX);
    json_object_set_new(o, "description", json_string(s));
    CHECK_INT(reminder_parse(o, &r, &why), 0);
    free(s);
    s = repeat("a", REMINDER_DESCRIPTION_MAX + 1);
    json_object_set_new(o, "description", json_string(s));
    free(s);
    expect_bad(o, "description");

    o = good();
    s = repeat("a", REMINDER_TIMEZONE_MAX + 1);
    json_object_set_new(o, "timezone", json_string(s));
    free(s);
    expect_bad(o, "timezone");

    o = good();
    s = repeat("u", REMINDER_USER_ID_MAX + 1);
    json_object_set_new(o, "user_id", json_string(s));
    free(s);
    expect_bad(o, "user_id");

    /* An unknown zone is no reason to drop the reminder: the mail shows UTC. */
    o = good();
    json_object_set_new(o, "timezone", json_string("Mars/Olympus_Mons"));
    CHECK_INT(reminder_parse(o, &r, &why), 0);
    json_decref(o);
}

static void test_addresses(void)
{
    const char *ok[] = {"alice@example.com", "a.b-c+tag@sub.example.co.uk", "x@localhost",
                        "o'brien@example.ie", "user_1!#$%&*/=?^`{|}~@x-y.example"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK(reminder_address_valid(ok[i]));
        if (!reminder_address_valid(ok[i]))
            fprintf(stderr, "  refused: %s\n", ok[i]);
    }
    const char *bad[] = {
        "",
        "alice",
        "@example.com",
        "alice@",
        "alice@@example.com",
        "a@b@example.com",
        "alice@example.com\r\nRCPT TO:<evil@example.net>",
        "alice@example.com>",
        "<alice@example.com>",
        "alice@example.com\n",
        "Alice <alice@example.com>",
        "alice smith@example.com",
        "\"alice\"@example.com",
        ".alice@example.com",
        "alice.@example.com",
        "al..ice@example.com",
        "alice@-example.com",
        "alice@example-.com",
        "alice@example..com",
        "alice@example.com.",
        "alice@[127.0.0.1]",
        "alice@exa_mple.com",
        "alïce@example.com",
        "alice@exämple.com",
        "alice,bob@example.com",
        "alice;@example.com",
        "alice@example.com\t",
        "alice\\@example.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!reminder_address_valid(bad[i]));
        if (reminder_address_valid(bad[i]))
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
    CHECK(!reminder_address_valid(NULL));
    /* Lengths: a 64-character local part is the most; 254 bytes in all. */
    char addr[300];
    memset(addr, 'a', 64);
    strcpy(addr + 64, "@example.com");
    CHECK(reminder_address_valid(addr));
    memset(addr, 'a', 65);
    strcpy(addr + 65, "@example.com");
    CHECK(!reminder_address_valid(addr));
    /* Three 63-character labels and one of 60: 254 bytes in all, the most; then one more. */
    char label[65];
    memset(label, 'b', 64);
    label[64] = '\0';
    int n = snprintf(addr, sizeof(addr), "a@");
    for (int i = 0; i < 3; i++)
        n += snprintf(addr + n, sizeof(addr) - (size_t)n, "%.63s.", label);
    snprintf(addr + n, sizeof(addr) - (size_t)n, "%.60s", label);
    CHECK_INT(strlen(addr), 254);
    CHECK(reminder_address_valid(addr));
    strcat(addr, "c");
    CHECK(!reminder_address_valid(addr));
    /* A 64-character label. */
    memset(addr, 0, sizeof(addr));
    strcpy(addr, "a@");
    memset(addr + 2, 'b', 64);
    strcat(addr, ".com");
    CHECK(!reminder_address_valid(addr));
}

static void test_event_ids_and_links(void)
{
    CHECK(reminder_event_id_valid("0b6f3c1e-8a38-5b7e-9a43-2f1d6c2b9e10"));
    CHECK(reminder_event_id_valid("reminder_42_A"));
    CHECK(!reminder_event_id_valid(""));
    CHECK(!reminder_event_id_valid("a||b"));
    CHECK(!reminder_event_id_valid("a/b"));
    CHECK(!reminder_event_id_valid("a.b"));
    CHECK(!reminder_event_id_valid("a b"));
    CHECK(!reminder_event_id_valid("id>\r\nBcc: x"));
    char id[REMINDER_EVENT_ID_MAX + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    CHECK(!reminder_event_id_valid(id));
    id[REMINDER_EVENT_ID_MAX] = '\0';
    CHECK(reminder_event_id_valid(id));

    CHECK(reminder_link_valid("https://todo.example.com/tasks/42"));
    CHECK(reminder_link_valid("http://localhost:8080/tasks/42?x=1&y=%20#top"));
    CHECK(reminder_link_valid("HTTPS://todo.example.com/"));
    const char *bad[] = {"",
                         "todo.example.com/tasks/42",
                         "javascript:alert(1)",
                         "ftp://example.com/x",
                         "https://",
                         "https:///path",
                         "https://todo.example.com/tasks/42\" onclick=\"x",
                         "https://todo.example.com/<b>",
                         "https://todo.example.com/a b",
                         "https://todo.example.com/\r\nX: y",
                         "https://todo.example.com/ä",
                         "https://todo.example.com/{x}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!reminder_link_valid(bad[i]));
        if (reminder_link_valid(bad[i]))
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
    char *longer = xmalloc(REMINDER_LINK_MAX + 2);
    strcpy(longer, "https://x/");
    memset(longer + 10, 'a', REMINDER_LINK_MAX - 10);
    longer[REMINDER_LINK_MAX] = '\0';
    CHECK(reminder_link_valid(longer));
    strcat(longer, "a");
    CHECK(!reminder_link_valid(longer));
    free(longer);
}

int main(void)
{
    test_good();
    test_fields();
    test_limits();
    test_addresses();
    test_event_ids_and_links();
    return check_exit();
}
