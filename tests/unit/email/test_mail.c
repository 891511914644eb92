/* Tests of services/email/mail.c: the RFC 2047 subject (plain when it may be, encoded-words split
 * at character boundaries and within 76 columns, decoding back to the input), HTML escaping, the
 * RFC 5322 date, the due time in the task's zone (expected values computed independently with
 * Python's zoneinfo and the system tzdata, e.g. datetime.fromtimestamp(1795420800,
 * ZoneInfo("Europe/Berlin"))), a zone changed since 2022, an unknown zone, calls from several
 * threads, and the whole mail: headers, no header injection, both bodies. */
#include "email/mail.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "todo/alloc.h"

#define USEC INT64_C(1000000)

/* The header's value decoded: encoded-words base64-decoded and joined (folding removed), plain
 * text as it is (new). Returns NULL when a word is malformed. */
static char *decode_header(const char *header)
{
    const char *v = strchr(header, ':');
    if (!v)
        return NULL;
    v += 2;
    char *out = xcalloc(1, strlen(v) + 1);
    size_t n = 0;
    if (strncmp(v, "=?", 2) != 0) {
        memcpy(out, v, strlen(v) + 1);
        return out;
    }
    while (*v) {
        if (strncmp(v, "\r\n ", 3) == 0) {
            v += 3;
            continue;
        }
        if (strncmp(v, "=?UTF-8?B?", 10) != 0) {
            free(out);
            return NULL;
        }
        v += 10;
        const char *end = strstr(v, "?=");
        if (!end) {
            free(out);
            return NULL;
        }
        unsigned char buf[128];
        int len = EVP_DecodeBlock(buf, (const unsigned char *)v, (int)(end - v));
        int pad = (end - v >= 1 && end[-1] == '=') + (end - v >= 2 && end[-2] == '=');
        if (len < 0) {
            free(out);
            return NULL;
        }
        memcpy(out + n, buf, (size_t)(len - pad));
        n += (size_t)(len - pad);
        out[n] = '\0';
        v = end + 2;
    }
    return out;
}

/* Every line of a folded header fits in max columns; every word decodes to whole characters. */
static bool lines_fit(const char *h, size_t max)
{
    const char *line = h;
    for (;;) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > max)
            return false;
        if (!end)
            return true;
        if (end[2] != ' ')
            return false; /* a line break that is no folding */
        line = end + 2;
    }
}

static bool words_whole(const char *h)
{
    const char *v = h;
    while ((v = strstr(v, "=?UTF-8?B?")) != NULL) {
        v += 10;
        const char *end = strstr(v, "?=");
        unsigned char buf[128];
        int len = EVP_DecodeBlock(buf, (const unsigned char *)v, (int)(end - v));
        int pad = (end[-1] == '=') + (end[-2] == '=');
        len -= pad;
        /* The first byte starts a character, and the last character is complete. */
        if (len <= 0 || (buf[0] & 0xc0) == 0x80)
            return false;
        int i = len - 1;
        while (i > 0 && (buf[i] & 0xc0) == 0x80)
            i--;
        int need = buf[i] < 0x80 ? 1 : buf[i] >= 0xf0 ? 4 : buf[i] >= 0xe0 ? 3 : 2;
        if (len - i != need)
            return false;
        v = end + 2;
    }
    return true;
}

static void test_header_encoding(void)
{
    char *h = mail_header_encoded("Subject", "Reminder: Water the plants");
    CHECK_STR(h, "Subject: Reminder: Water the plants");
    free(h);

    h = mail_header_encoded("Subject", "Reminder: Größe prüfen");
    CHECK_STR(h, "Subject: =?UTF-8?B?UmVtaW5kZXI6IEdyw7bDn2UgcHLDvGZlbg==?=");
    char *d = decode_header(h);
    CHECK_STR(d, "Reminder: Größe prüfen");
    free(d);
    free(h);

    /* Text that looks like an encoded-word is encoded itself, so it reads back as it was. */
    h = mail_header_encoded("Subject", "=?UTF-8?B?SGk=?=");
    CHECK(strncmp(h, "Subject: =?UTF-8?B?", 19) == 0);
    d = decode_header(h);
    CHECK_STR(d, "=?UTF-8?B?SGk=?=");
    free(d);
    free(h);

    /* Long, with 2-, 3- and 4-byte characters at every offset: lines within 76 columns, words
     * of whole characters, decoding back to the input. */
    const char *pieces[] = {"a", "ß", "€", "🌱", " "};
    for (int shift = 0; shift < 5; shift++) {
        char value[1200] = "Reminder: ";
        for (int i = 0; i < 150; i++)
            strcat(value, pieces[(i + shift) % 5]);
        h = mail_header_encoded("Subject", value);
        CHECK(lines_fit(h, 76));
        CHECK(words_whole(h));
        CHECK(strchr(h, '\n') != NULL); /* folded */
        d = decode_header(h);
        CHECK_STR(d, value);
        free(d);
        free(h);
    }

    /* Long plain ASCII is encoded too rather than left as one long line. */
    char longer[300];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    h = mail_header_encoded("Subject", longer);
    CHECK(lines_fit(h, 76));
    d = decode_header(h);
    CHECK_STR(d, longer);
    free(d);
    free(h);
}

static void test_html_escape(void)
{
    char *e = mail_html_escape("<b>Tom & \"Jerry\"</b> 'x'");
    CHECK_STR(e, "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt; &#39;x&#39;");
    free(e);
    e = mail_html_escape("");
    CHECK_STR(e, "");
    free(e);
    e = mail_html_escape("Grüße");
    CHECK_STR(e, "Grüße");
    free(e);
}

static void test_date(void)
{
    char d[MAIL_DATE_LEN];
    mail_format_date(INT64_C(1795420800) * USEC, d);
    CHECK_STR(d, "Mon, 23 Nov 2026 08:00:00 +0000");
    mail_format_date(INT64_C(1795420800) * USEC + 999999, d);
    CHECK_STR(d, "Mon, 23 Nov 2026 08:00:00 +0000");
    mail_format_date(-1, d); /* just before the epoch */
    CHECK_STR(d, "Wed, 31 Dec 1969 23:59:59 +0000");
}

typedef struct {
    int64_t t;
    const char *zone, *want;
} time_case_t;

static const time_case_t time_cases[] = {
    {INT64_C(1795420800), "Europe/Berlin",
     "Monday, 23 November 2026, 09:00 (Europe/Berlin, UTC+01:00)"},
    {INT64_C(1782892800), "Europe/Berlin",
     "Wednesday, 1 July 2026, 10:00 (Europe/Berlin, UTC+02:00)"},
    /* The last second of CET and the first of CEST. */
    {INT64_C(1774745999), "Europe/Berlin",
     "Sunday, 29 March 2026, 01:59:59 (Europe/Berlin, UTC+01:00)"},
    {INT64_C(1774746000), "Europe/Berlin",
     "Sunday, 29 March 2026, 03:00 (Europe/Berlin, UTC+02:00)"},
    /* Mexico dropped DST in October 2022: summer 2026 is UTC-6, summer 2022 was UTC-5. */
    {INT64_C(1782928800), "America/Mexico_City",
     "Wednesday, 1 July 2026, 12:00 (America/Mexico_City, UTC-06:00)"},
    {INT64_C(1656698400), "America/Mexico_City",
     "Friday, 1 July 2022, 13:00 (America/Mexico_City, UTC-05:00)"},
    {INT64_C(1768507230), "Asia/Kolkata",
     "Friday, 16 January 2026, 01:30:30 (Asia/Kolkata, UTC+05:30)"},
    {INT64_C(1777636800), "America/St_Johns",
     "Friday, 1 May 2026, 09:30 (America/St_Johns, UTC-02:30)"},
    {INT64_C(1798759800), "Pacific/Kiritimati",
     "Friday, 1 January 2027, 13:30 (Pacific/Kiritimati, UTC+14:00)"},
    {INT64_C(2224756800), "America/New_York",
     "Sunday, 1 July 2040, 08:00 (America/New_York, UTC-04:00)"},
    {INT64_C(1795420800), "UTC", "Monday, 23 November 2026, 08:00 (UTC)"},
    {INT64_C(1795420800), "Etc/UTC", "Monday, 23 November 2026, 08:00 (Etc/UTC, UTC+00:00)"},
};

static void test_time_in_zone(void)
{
    char out[MAIL_TIME_TEXT_LEN];
    for (size_t i = 0; i < sizeof(time_cases) / sizeof(time_cases[0]); i++) {
        CHECK_INT(mail_format_time(time_cases[i].t * USEC, time_cases[i].zone, out), 0);
        CHECK_STR(out, time_cases[i].want);
    }
    /* Not a zone here (or not a safe name): shown in UTC, and said so. */
    const char *unknown[] = {"Mars/Olympus_Mons", "../../etc/passwd", "", "Europe/Berlin ",
                             "/usr/share/zoneinfo/UTC"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        CHECK_INT(mail_format_time(INT64_C(1795420800) * USEC, unknown[i], out), TODO_ENOT_FOUND);
        CHECK_STR(out, "Monday, 23 November 2026, 08:00 (UTC)");
    }
    CHECK_INT(mail_format_time(INT64_C(1795420800) * USEC, NULL, out), TODO_ENOT_FOUND);
}

/* Several threads formatting in different zones at once, each zone new to libical on first use:
 * every answer must be the one a single thread gets. */
static pthread_barrier_t barrier;
static void *format_many(void *arg)
{
    size_t start = (size_t)(uintptr_t)arg, n = sizeof(time_cases) / sizeof(time_cases[0]);
    int bad = 0;
    char out[MAIL_TIME_TEXT_LEN];
    pthread_barrier_wait(&barrier);
    for (int round = 0; round < 200; round++) {
        const time_case_t *c = &time_cases[(start + (size_t)round) % n];
        if (mail_format_time(c->t * USEC, c->zone, out) != 0 || strcmp(out, c->want) != 0)
            bad++;
    }
    return (void *)(uintptr_t)bad;
}

static void test_threads(void)
{
    enum { N = 8 };
    pthread_t th[N];
    pthread_barrier_init(&barrier, NULL, N);
    for (size_t i = 0; i < N; i++)
        pthread_create(&th[i], NULL, format_many, (void *)(uintptr_t)i);
    int bad = 0;
    for (size_t i = 0; i < N; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (int)(uintptr_t)r;
    }
    pthread_barrier_destroy(&barrier);
    CHECK_INT(bad, 0);
}

static void test_from_name(void)
{
    CHECK(mail_from_name_valid("Todo"));
    CHECK(mail_from_name_valid("Todo – Erinnerungen"));
    CHECK(!mail_from_name_valid(""));
    CHECK(!mail_from_name_valid("Todo\r\nBcc: x@y.z"));
    CHECK(!mail_from_name_valid("\"Todo\""));
    CHECK(!mail_from_name_valid("To\\do"));
    CHECK(!mail_from_name_valid("\xc3\x28"));     /* not UTF-8 */
    CHECK(!mail_from_name_valid("\xed\xa0\x80")); /* a surrogate */
    char longer[MAIL_FROM_NAME_MAX + 2];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    CHECK(!mail_from_name_valid(longer));
}

static reminder_t sample(void)
{
    return (reminder_t){.task_id = 42,
                        .user_id = "alice",
                        .email = "alice@example.com",
                        .title = "Water the plants",
                        .description = "The ones on the balcony",
                        .has_due = true,
                        .due_at = INT64_C(1795420800) * USEC,
                        .remind_at = INT64_C(1795419900) * USEC,
                        .timezone = "Europe/Berlin",
                        .link = "https://todo.example.com/tasks/42"};
}

static const char *header(const mail_t *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < m->nheaders; i++)
        if (strncmp(m->headers[i], name, n) == 0 && m->headers[i][n] == ':')
            return m->headers[i];
    return NULL;
}

static void test_build(void)
{
    reminder_t r = sample();
    mail_params_t p = {.from = "todo@mail.example.org",
                       .from_name = "Todo",
                       .event_id = "0b6f3c1e-8a38-5b7e-9a43-2f1d6c2b9e10",
                       .now = INT64_C(1795419903) * USEC};
    mail_t m;
    CHECK_INT(mail_build(&r, &p, &m), 0);
    CHECK_INT(m.nheaders, 6);
    CHECK_STR(header(&m, "From"), "From: \"Todo\" <todo@mail.example.org>");
    CHECK_STR(header(&m, "To"), "To: alice@example.com");
    CHECK_STR(header(&m, "Subject"), "Subject: Reminder: Water the plants");
    CHECK_STR(header(&m, "Date"), "Date: Mon, 23 Nov 2026 07:45:03 +0000");
    CHECK_STR(header(&m, "Message-ID"),
              "Message-ID: <reminder-0b6f3c1e-8a38-5b7e-9a43-2f1d6c2b9e10@mail.example.org>");
    CHECK_STR(header(&m, "Auto-Submitted"), "Auto-Submitted: auto-generated");
    CHECK_STR(m.text, "Reminder: Water the plants\r\n"
                      "\r\n"
                      "Due: Monday, 23 November 2026, 09:00 (Europe/Berlin, UTC+01:00)\r\n"
                      "\r\n"
                      "The ones on the balcony\r\n"
                      "\r\n"
                      "Open the task: https://todo.example.com/tasks/42\r\n"
                      "\r\n"
                      "-- \r\n"
                      "You get this mail because you set a reminder for this task.\r\n");
    CHECK(strstr(m.html, "<h1>Water the plants</h1>") != NULL);
    CHECK(strstr(m.html, "<p><strong>Due:</strong> Monday, 23 November 2026, 09:00 "
                         "(Europe/Berlin, UTC+01:00)</p>") != NULL);
    CHECK(strstr(m.html, "<p>The ones on the balcony</p>") != NULL);
    CHECK(strstr(m.html, "<a href=\"https://todo.example.com/tasks/42\">") != NULL);
    CHECK(strstr(m.html, "<meta charset=\"utf-8\">") != NULL);
    mail_dispose(&m);
    mail_dispose(&m); /* twice is harmless */

    /* Hostile text: a title trying to add a header, HTML in title and description, line
     * breaks of every kind, a quote in the link. */
    r.title = "Hi\r\nBcc: evil@example.net\nX: <script>&";
    r.description = "line 1\r\nline 2\nline 3\rline <4> & \"5\"\x01";
    r.link = "https://todo.example.com/tasks/42?a=1&b=2";
    r.has_due = false;
    p.from_name = "Todo – Erinnerungen";
    CHECK_INT(mail_build(&r, &p, &m), 0);
    for (size_t i = 0; i < m.nheaders; i++) {
        /* The only line breaks in a header are foldings (CRLF SP). */
        for (const char *c = m.headers[i]; *c; c++) {
            if (*c == '\r')
                CHECK(c[1] == '\n' && c[2] == ' ');
            if (*c == '\n')
                CHECK(c[-1] == '\r' && c[1] == ' ');
        }
        CHECK(strncmp(m.headers[i], "Bcc", 3) != 0);
    }
    char *subject = decode_header(header(&m, "Subject"));
    CHECK_STR(subject, "Reminder: Hi  Bcc: evil@example.net X: <script>&");
    free(subject);
    const char *from = header(&m, "From");
    CHECK(strncmp(from, "From: =?UTF-8?B?", 16) == 0);
    CHECK(strstr(from, "?=\r\n <todo@mail.example.org>") != NULL);
    CHECK(strstr(m.text, "Reminder: Hi  Bcc: evil@example.net X: <script>&\r\n") != NULL);
    CHECK(strstr(m.text, "Due: no due time set\r\n") != NULL);
    CHECK(strstr(m.text, "line 1\r\nline 2\r\nline 3\r\nline <4> & \"5\"\r\n") != NULL);
    CHECK(strstr(m.html, "<h1>Hi  Bcc: evil@example.net X: &lt;script&gt;&amp;</h1>") != NULL);
    CHECK(strstr(m.html, "<p>line 1<br>\r\nline 2<br>\r\nline 3<br>\r\nline &lt;4&gt; &amp; "
                         "&quot;5&quot;</p>") != NULL);
    CHECK(strstr(m.html, "href=\"https://todo.example.com/tasks/42?a=1&amp;b=2\"") != NULL);
    CHECK(strstr(m.html, "<script>") == NULL);
    CHECK(strchr(m.text, '\x01') == NULL);
    /* Every line break of both bodies is CRLF. */
    for (const char *c = m.text; *c; c++)
        if (*c == '\n')
            CHECK(c > m.text && c[-1] == '\r');
    for (const char *c = m.html; *c; c++)
        if (*c == '\n')
            CHECK(c > m.html && c[-1] == '\r');
    mail_dispose(&m);

    /* No description: no empty paragraph; no sender name: a bare address. */
    r = sample();
    r.description = "";
    p.from_name = "";
    CHECK_INT(mail_build(&r, &p, &m), 0);
    CHECK_STR(header(&m, "From"), "From: todo@mail.example.org");
    CHECK(strstr(m.html, "<p></p>") == NULL);
    CHECK(strstr(m.text, "UTC+01:00)\r\n\r\nOpen the task:") != NULL);
    mail_dispose(&m);

    /* An unknown zone: the due time in UTC. */
    r.timezone = "Mars/Olympus_Mons";
    CHECK_INT(mail_build(&r, &p, &m), 0);
    CHECK(strstr(m.text, "Due: Monday, 23 November 2026, 08:00 (UTC)\r\n") != NULL);
    mail_dispose(&m);

    /* Unusable parameters. */
    r = sample();
    p.event_id = "a b";
    CHECK_INT(mail_build(&r, &p, &m), TODO_EVALIDATION_ERROR);
    CHECK_INT(m.nheaders, 0);
    CHECK(m.text == NULL);
    p.event_id = "e1";
    p.from = "not an address";
    CHECK_INT(mail_build(&r, &p, &m), TODO_EVALIDATION_ERROR);
    p.from = "todo@example.org";
    r.email = "alice@example.com\r\nRCPT TO:<evil@example.net>";
    CHECK_INT(mail_build(&r, &p, &m), TODO_EVALIDATION_ERROR);
    r.email = "alice@example.com";
    p.from_name = "Todo\r\nBcc: x@example.net";
    CHECK_INT(mail_build(&r, &p, &m), TODO_EVALIDATION_ERROR);
}

int main(void)
{
    test_header_encoding();
    test_html_escape();
    test_date();
    test_time_in_zone();
    test_threads();
    test_from_name();
    test_build();
    return check_exit();
}
