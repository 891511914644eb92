/* Tests of services/email/smtp.c: the classification of outcomes, the stage tracking, the URL
 * check, and whole sessions against a scripted SMTP server in this process (a thread on a
 * 127.0.0.1 socket): AUTH PLAIN, the MIME layout on the wire, connection reuse (and a kept
 * connection the server closed), refusals at every stage, a lost answer after the data, a
 * server that never answers, a refused connection, and STARTTLS required but not offered. */
#define _GNU_SOURCE
#include "email/smtp.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "todo/alloc.h"
#include "todo/buf.h"

/* ---- the scripted server ---- */

static struct {
    int listen_fd, port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    /* The script (replies with their CRLF left out); NULL = the normal answer. */
    const char *greeting, *auth_reply, *mail_reply, *rcpt_reply, *data_reply, *eod_reply;
    bool silent;          /* never answer anything */
    bool drop_after_data; /* close instead of answering the end of the data */
    bool kick_next_mail;  /* answer the next MAIL FROM with 421 and close */
    /* Keep the transaction open after a refused end of data (aiosmtpd does so after a handler
     * error): a client reusing the connection without RSET then gets "nested MAIL". */
    bool sticky_refusals;
    bool advertise_auth;
    /* What happened. */
    int connections, mails;
    char auth_line[256];
    buf_t data; /* the last message's data, as on the wire (dot-stuffed) */
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void say(int fd, const char *line)
{
    char out[512];
    int n = snprintf(out, sizeof(out), "%s\r\n", line);
    (void)!write(fd, out, (size_t)n);
}

/* Reads one line (without CRLF) into line; false at EOF, error or stop. */
static bool read_line(int fd, buf_t *in, char *line, size_t cap)
{
    for (;;) {
        char *eol = in->len ? memmem(in->data, in->len, "\r\n", 2) : NULL;
        if (eol) {
            size_t n = (size_t)(eol - in->data);
            snprintf(line, cap, "%.*s", (int)n, in->data);
            memmove(in->data, eol + 2, in->len - n - 2);
            in->len -= n + 2;
            in->data[in->len] = '\0';
            return true;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (atomic_load(&srv.stop))
            return false;
        if (poll(&p, 1, 50) <= 0)
            continue;
        char chunk[4096];
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got <= 0 || buf_append(in, chunk, (size_t)got) != 0)
            return false;
    }
}

static const char *pick(const char *scripted, const char *normal)
{
    return scripted ? scripted : normal;
}

static void serve(int fd)
{
    buf_t in;
    char line[8192];
    bool in_tx = false; /* a MAIL FROM was accepted and no end of data or RSET came since */
    buf_init(&in, 1 << 20);
    pthread_mutex_lock(&srv.lock);
    srv.connections++;
    bool silent = srv.silent;
    pthread_mutex_unlock(&srv.lock);
    if (silent) {
        while (read_line(fd, &in, line, sizeof(line)))
            ;
        goto out;
    }
    say(fd, pick(srv.greeting, "220 fake ESMTP"));
    while (read_line(fd, &in, line, sizeof(line))) {
        if (strncasecmp(line, "EHLO", 4) == 0) {
            say(fd, "250-fake greets you");
            if (srv.advertise_auth)
                say(fd, "250-AUTH PLAIN");
            say(fd, "250 8BITMIME");
        } else if (strncasecmp(line, "AUTH", 4) == 0) {
            char creds[200] = "";
            if (strcasecmp(line, "AUTH PLAIN") == 0) { /* no initial response: ask for it */
                say(fd, "334 ");
                if (!read_line(fd, &in, creds, sizeof(creds)))
                    goto out;
            }
            pthread_mutex_lock(&srv.lock);
            if (snprintf(srv.auth_line, sizeof(srv.auth_line), "%.100s%s%s", line,
                         creds[0] ? " " : "", creds) < 0)
                srv.auth_line[0] = '\0';
            pthread_mutex_unlock(&srv.lock);
            say(fd, pick(srv.auth_reply, "235 2.7.0 Authentication successful"));
        } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
            if (srv.kick_next_mail) {
                srv.kick_next_mail = false;
                say(fd, "421 4.4.2 fake: idle for too long, closing");
                goto out;
            }
            if (in_tx) {
                say(fd, "503 5.5.1 Error: nested MAIL command");
                continue;
            }
            const char *reply = pick(srv.mail_reply, "250 2.1.0 OK");
            in_tx = reply[0] == '2';
            say(fd, reply);
        } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
            say(fd, pick(srv.rcpt_reply, "250 2.1.5 OK"));
        } else if (strcasecmp(line, "DATA") == 0) {
            if (srv.data_reply) {
                say(fd, srv.data_reply);
                continue;
            }
            say(fd, "354 End data with <CR><LF>.<CR><LF>");
            pthread_mutex_lock(&srv.lock);
            buf_reset(&srv.data);
            pthread_mutex_unlock(&srv.lock);
            bool ended = false;
            while (read_line(fd, &in, line, sizeof(line))) {
                if (strcmp(line, ".") == 0) {
                    ended = true;
                    break;
                }
                pthread_mutex_lock(&srv.lock);
                (void)!buf_puts(&srv.data, line);
                (void)!buf_puts(&srv.data, "\r\n");
                pthread_mutex_unlock(&srv.lock);
            }
            if (!ended || srv.drop_after_data)
                goto out;
            const char *reply = pick(srv.eod_reply, "250 2.0.0 Ok: queued as 42");
            in_tx = srv.sticky_refusals && reply[0] != '2';
            if (reply[0] == '2') {
                pthread_mutex_lock(&srv.lock);
                srv.mails++;
                pthread_mutex_unlock(&srv.lock);
            }
            say(fd, reply);
        } else if (strcasecmp(line, "QUIT") == 0) {
            say(fd, "221 2.0.0 Bye");
            goto out;
        } else if (strcasecmp(line, "RSET") == 0 || strcasecmp(line, "NOOP") == 0) {
            in_tx = in_tx && strcasecmp(line, "NOOP") == 0;
            say(fd, "250 2.0.0 OK");
        } else {
            say(fd, "502 5.5.2 Error: command not recognized");
        }
    }
out:
    buf_dispose(&in);
    close(fd);
}

static void *accept_loop(void *arg)
{
    while (!atomic_load(&srv.stop)) {
        struct pollfd p = {srv.listen_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv.listen_fd, NULL, NULL);
        if (fd >= 0)
            serve(fd); /* one session at a time is all the tests need */
    }
    return NULL;
}

static int listen_on_free_port(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

static void script_reset(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.greeting = srv.auth_reply = srv.mail_reply = srv.rcpt_reply = srv.data_reply = NULL;
    srv.eod_reply = NULL;
    srv.silent = srv.drop_after_data = srv.kick_next_mail = false;
    srv.sticky_refusals = true;
    srv.advertise_auth = true;
    srv.connections = srv.mails = 0;
    srv.auth_line[0] = '\0';
    pthread_mutex_unlock(&srv.lock);
}

/* ---- the client side ---- */

static mail_t sample_mail(void)
{
    mail_t m;
    mail_init(&m);
    m.headers[m.nheaders++] = xstrdup("From: \"Todo\" <todo@example.org>");
    m.headers[m.nheaders++] = xstrdup("To: alice@example.com");
    m.headers[m.nheaders++] = xstrdup("Subject: =?UTF-8?B?R3LDvMOfZQ==?=");
    m.headers[m.nheaders++] = xstrdup("Message-ID: <reminder-ev1@example.org>");
    m.text = xstrdup("Reminder: Gr\xc3\xbc\xc3\x9f"
                     "e\r\n.starts with a dot\r\n");
    m.html = xstrdup("<p>Gr\xc3\xbc\xc3\x9f"
                     "e</p>\r\n");
    return m;
}

static smtp_t *client(const char *user, bool require_tls, long timeout_ms)
{
    char url[64];
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", srv.port);
    smtp_config_t cfg = {.url = url,
                         .user = user,
                         .password = "s3cret",
                         .from = "todo@example.org",
                         .require_tls = require_tls,
                         .connect_timeout_ms = 2000,
                         .timeout_ms = timeout_ms};
    return smtp_new(&cfg);
}

static const char *find_after(const char *hay, const char *needle, const char *from)
{
    const char *p = strstr(from ? from : hay, needle);
    return p;
}

static void test_classify(void)
{
    CHECK_INT(smtp_classify(CURLE_OK, 250, SMTP_STAGE_BODY), SMTP_SENT);
    CHECK_INT(smtp_classify(CURLE_SEND_ERROR, 550, SMTP_STAGE_RCPT), SMTP_PERMANENT);
    CHECK_INT(smtp_classify(CURLE_SEND_ERROR, 554, SMTP_STAGE_DATA), SMTP_PERMANENT);
    CHECK_INT(smtp_classify(CURLE_WEIRD_SERVER_REPLY, 552, SMTP_STAGE_BODY), SMTP_PERMANENT);
    CHECK_INT(smtp_classify(CURLE_SEND_ERROR, 451, SMTP_STAGE_RCPT), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_WEIRD_SERVER_REPLY, 452, SMTP_STAGE_BODY), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_SEND_ERROR, 553, SMTP_STAGE_MAIL), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_LOGIN_DENIED, 535, SMTP_STAGE_AUTH), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_WEIRD_SERVER_REPLY, 554, SMTP_STAGE_CONNECT), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_COULDNT_CONNECT, 0, SMTP_STAGE_CONNECT), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_OPERATION_TIMEDOUT, 354, SMTP_STAGE_BODY), SMTP_TRANSIENT);
    CHECK_INT(smtp_classify(CURLE_RECV_ERROR, 250, SMTP_STAGE_RCPT), SMTP_TRANSIENT);
}

static void test_stages(void)
{
    smtp_stage_t s = SMTP_STAGE_CONNECT;
#define AFTER(cmd) (s = smtp_stage_after_command(s, cmd, strlen(cmd)))
    CHECK_INT(AFTER("EHLO host\r\n"), SMTP_STAGE_HELLO);
    CHECK_INT(AFTER("STARTTLS\r\n"), SMTP_STAGE_HELLO);
    CHECK_INT(AFTER("AUTH LOGIN\r\n"), SMTP_STAGE_AUTH);
    CHECK_INT(AFTER("dXNlcg==\r\n"), SMTP_STAGE_AUTH); /* a continuation line */
    CHECK_INT(AFTER("REFUQQ==\r\n"), SMTP_STAGE_AUTH);
    CHECK_INT(AFTER("mail FROM:<a@b.c>\r\n"), SMTP_STAGE_MAIL);
    CHECK_INT(AFTER("RCPT TO:<a@b.c>\r\n"), SMTP_STAGE_RCPT);
    CHECK_INT(AFTER("DATABASE\r\n"), SMTP_STAGE_RCPT);
    CHECK_INT(AFTER("DATA\r\n"), SMTP_STAGE_DATA);
    CHECK_INT(AFTER("QUIT\r\n"), SMTP_STAGE_DATA);
#undef AFTER
}

static void test_url_check(void)
{
    CHECK(smtp_url_check("smtp://127.0.0.1:1025") == NULL);
    CHECK(smtp_url_check("smtps://mail.example.com:465") == NULL);
    CHECK(smtp_url_check("smtp://mail.example.com/client.example.com") == NULL);
    CHECK(smtp_url_check("SMTP://mail.example.com") == NULL);
    CHECK(smtp_url_check("http://mail.example.com") != NULL);
    CHECK(smtp_url_check("mail.example.com:25") != NULL);
    CHECK(smtp_url_check("smtp://") != NULL);
    CHECK(smtp_url_check("smtp://user:pass@mail.example.com") != NULL);
    CHECK(smtp_url_check("smtp://user@mail.example.com") != NULL);
    CHECK(smtp_url_check("smtp://mail example.com") != NULL);
    CHECK(smtp_url_check("smtp://mail.example.com:99999") != NULL);
}

static void test_sessions(void)
{
    mail_t m = sample_mail();
    smtp_result_t res;
    smtp_t *s = client("todo", false, 5000);
    CHECK(s != NULL);

    /* Accepted, with AUTH PLAIN and the mail laid out as MIME on the wire. */
    script_reset();
    CHECK_INT(smtp_send(s, "alice@example.com", &m, &res), SMTP_SENT);
    CHECK_INT(res.stage, SMTP_STAGE_BODY);
    CHECK_INT(res.code, 250);
    CHECK_STR(res.reply, "250 2.0.0 Ok: queued as 42");
    CHECK_STR(res.why, "");
    pthread_mutex_lock(&srv.lock);
    CHECK_INT(srv.mails, 1);
    /* "\0todo\0s3cret" in base64 */
    CHECK_STR(srv.auth_line, "AUTH PLAIN AHRvZG8AczNjcmV0");
    const char *d = srv.data.data;
    const char *from = find_after(d, "From: \"Todo\" <todo@example.org>\r\n", NULL);
    const char *mixed = find_after(d, "Content-Type: multipart/mixed; boundary=", NULL);
    const char *alt = find_after(d, "Content-Type: multipart/alternative; boundary=", mixed);
    const char *text = find_after(d, "Content-Type: text/plain; charset=UTF-8\r\n", alt);
    const char *html = find_after(d, "Content-Type: text/html; charset=UTF-8\r\n", text);
    CHECK(from && mixed && alt && text && html);
    CHECK(find_after(d, "To: alice@example.com\r\n", NULL) != NULL);
    CHECK(find_after(d, "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n", NULL) != NULL);
    CHECK(find_after(d, "Message-ID: <reminder-ev1@example.org>\r\n", NULL) != NULL);
    CHECK(find_after(d, "Mime-Version: 1.0\r\n", NULL) != NULL ||
          find_after(d, "MIME-Version: 1.0\r\n", NULL) != NULL);
    CHECK(find_after(d, "Content-Disposition: inline\r\n", NULL) != NULL);
    CHECK(text &&
          find_after(text, "Content-Transfer-Encoding: quoted-printable\r\n", NULL) != NULL);
    CHECK(text && find_after(text, "Reminder: Gr=C3=BC=C3=9Fe\r\n", NULL) != NULL);
    CHECK(html && find_after(html, "<p>Gr=C3=BC=C3=9Fe</p>", NULL) != NULL);
    /* A line starting with a dot arrives dot-stuffed or encoded, never as a lone dot. */
    CHECK(text && (find_after(text, "\r\n..starts with a dot", NULL) ||
                   find_after(text, "\r\n=2Estarts with a dot", NULL)));
    pthread_mutex_unlock(&srv.lock);

    /* A second mail on the same connection. */
    CHECK_INT(smtp_send(s, "bob@example.com", &m, &res), SMTP_SENT);
    CHECK_INT(srv.connections, 1);
    CHECK_INT(srv.mails, 2);

    /* The server gives up the kept connection at the next MAIL FROM: sent on a new one. */
    script_reset();
    pthread_mutex_lock(&srv.lock);
    srv.kick_next_mail = true;
    pthread_mutex_unlock(&srv.lock);
    CHECK_INT(smtp_send(s, "alice@example.com", &m, &res), SMTP_SENT);
    CHECK_INT(srv.mails, 1);
    CHECK_INT(srv.connections, 1);

    /* Refusals: for good after the recipient was named, in passing otherwise. */
    struct {
        const char **slot, *reply;
        smtp_outcome_t want;
        smtp_stage_t stage;
        long code;
    } cases[] = {
        {&srv.rcpt_reply, "550 5.1.1 <nobody@example.com>: Recipient address rejected",
         SMTP_PERMANENT, SMTP_STAGE_RCPT, 550},
        {&srv.rcpt_reply, "451 4.3.0 Try again later", SMTP_TRANSIENT, SMTP_STAGE_RCPT, 451},
        {&srv.data_reply, "554 5.5.1 No valid recipients", SMTP_PERMANENT, SMTP_STAGE_DATA, 554},
        {&srv.eod_reply, "552 5.3.4 Message too big", SMTP_PERMANENT, SMTP_STAGE_BODY, 552},
        {&srv.eod_reply, "452 4.3.1 Insufficient system storage", SMTP_TRANSIENT, SMTP_STAGE_BODY,
         452},
        {&srv.mail_reply, "553 5.7.1 Sender address rejected", SMTP_TRANSIENT, SMTP_STAGE_MAIL,
         553},
        {&srv.auth_reply, "535 5.7.8 Authentication credentials invalid", SMTP_TRANSIENT,
         SMTP_STAGE_AUTH, 535},
        {&srv.greeting, "554 5.7.1 No service for you", SMTP_TRANSIENT, SMTP_STAGE_CONNECT, 554},
    };
    smtp_free(s); /* the scripted server serves one connection at a time */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool at_connect = cases[i].stage <= SMTP_STAGE_AUTH;
        script_reset();
        s = client("todo", false, 5000);
        /* Refusals within a transaction come on a kept connection, after a good mail. */
        if (!at_connect)
            CHECK_INT(smtp_send(s, "somebody@example.com", &m, &res), SMTP_SENT);
        pthread_mutex_lock(&srv.lock);
        *cases[i].slot = cases[i].reply;
        srv.mails = 0;
        pthread_mutex_unlock(&srv.lock);
        CHECK_INT(smtp_send(s, "nobody@example.com", &m, &res), cases[i].want);
        CHECK_INT(res.stage, cases[i].stage);
        CHECK_INT(res.code, cases[i].code);
        CHECK_STR(res.reply, cases[i].reply);
        CHECK(res.why[0] != '\0');
        CHECK_INT(srv.mails, 0);
        if (res.stage != cases[i].stage)
            fprintf(stderr, "  case %zu (%s): stage %d\n", i, cases[i].reply, (int)res.stage);
        /* After the refusal the next mail goes through, on a clean session (no "nested MAIL"). */
        pthread_mutex_lock(&srv.lock);
        *cases[i].slot = NULL;
        pthread_mutex_unlock(&srv.lock);
        CHECK_INT(smtp_send(s, "nobody@example.com", &m, &res), SMTP_SENT);
        CHECK_INT(srv.mails, 1);
        smtp_free(s);
    }
    s = client("todo", false, 5000);

    /* The connection drops after the data, before the answer: in passing (and ambiguous). */
    script_reset();
    srv.drop_after_data = true;
    CHECK_INT(smtp_send(s, "alice@example.com", &m, &res), SMTP_TRANSIENT);
    CHECK_INT(res.stage, SMTP_STAGE_BODY);

    /* A server that never answers: the time limit ends it. */
    script_reset();
    srv.silent = true;
    smtp_t *quick = client(NULL, false, 600);
    CHECK_INT(smtp_send(quick, "alice@example.com", &m, &res), SMTP_TRANSIENT);
    CHECK_INT(res.stage, SMTP_STAGE_CONNECT);
    CHECK(strstr(res.why, "imeout") != NULL || strstr(res.why, "timed out") != NULL);
    smtp_free(quick);

    /* STARTTLS required but not offered. */
    script_reset();
    smtp_t *strict = client(NULL, true, 5000);
    CHECK_INT(smtp_send(strict, "alice@example.com", &m, &res), SMTP_TRANSIENT);
    CHECK_INT(srv.mails, 0);
    smtp_free(strict);

    /* No AUTH without a user. */
    script_reset();
    smtp_t *anonymous = client("", false, 5000);
    CHECK_INT(smtp_send(anonymous, "alice@example.com", &m, &res), SMTP_SENT);
    CHECK_STR(srv.auth_line, "");
    smtp_free(anonymous);

    smtp_free(s);

    /* Nobody listening. */
    int dead_port;
    int fd = listen_on_free_port(&dead_port);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", dead_port);
    smtp_config_t cfg = {
        .url = url, .from = "todo@example.org", .connect_timeout_ms = 2000, .timeout_ms = 2000};
    s = smtp_new(&cfg);
    CHECK_INT(smtp_send(s, "alice@example.com", &m, &res), SMTP_TRANSIENT);
    CHECK_INT(res.stage, SMTP_STAGE_CONNECT);
    CHECK_INT(res.code, 0);
    smtp_free(s);
    mail_dispose(&m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_classify();
    test_stages();
    test_url_check();

    buf_init(&srv.data, 1 << 20);
    srv.listen_fd = listen_on_free_port(&srv.port);
    pthread_create(&srv.thread, NULL, accept_loop, NULL);
    test_sessions();
    atomic_store(&srv.stop, true);
    pthread_join(srv.thread, NULL);
    close(srv.listen_fd);
    buf_dispose(&srv.data);
    curl_global_cleanup();
    return check_exit();
}
