/* One mail over SMTP with libcurl's curl_mime; see smtp.h. libcurl reports an SMTP refusal as a
 * plain transfer error, so the session is followed through CURLOPT_DEBUGFUNCTION: the commands
 * sent tell the stage (never their arguments: AUTH carries the credentials), the replies give the
 * code and text. */
#include "smtp.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "todo/alloc.h"

struct smtp {
    CURL *curl;
    char *url, *user, *password, *from_path, *ca_file;
    bool require_tls;
    long connect_timeout_ms, timeout_ms;
};

/* What the debug callback follows during one transfer. */
typedef struct {
    smtp_stage_t stage;
    bool quitting; /* after QUIT: replies are no longer the mail's */
    long code;
    char reply[SMTP_REPLY_MAX + 1];
} trace_t;

static char *dup_or_null(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

smtp_t *smtp_new(const smtp_config_t *cfg)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    smtp_t *s = xcalloc(1, sizeof(*s));
    s->curl = c;
    s->url = xstrdup(cfg->url);
    s->user = dup_or_null(cfg->user);
    s->password = xstrdup(cfg->password ? cfg->password : "");
    s->from_path = xasprintf("<%s>", cfg->from);
    s->ca_file = dup_or_null(cfg->ca_file);
    s->require_tls = cfg->require_tls;
    s->connect_timeout_ms = (long)cfg->connect_timeout_ms;
    s->timeout_ms = (long)cfg->timeout_ms;
    return s;
}

void smtp_free(smtp_t *s)
{
    if (!s)
        return;
    curl_easy_cleanup(s->curl);
    free(s->url);
    free(s->user);
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s->from_path);
    free(s->ca_file);
    free(s);
}

static bool starts(const char *cmd, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && strncasecmp(cmd, word, n) == 0;
}

smtp_stage_t smtp_stage_after_command(smtp_stage_t stage, const char *cmd, size_t len)
{
    if (starts(cmd, len, "EHLO ") || starts(cmd, len, "HELO ") || starts(cmd, len, "STARTTLS"))
        return SMTP_STAGE_HELLO;
    if (starts(cmd, len, "AUTH "))
        return SMTP_STAGE_AUTH;
    if (starts(cmd, len, "MAIL FROM:"))
        return SMTP_STAGE_MAIL;
    if (starts(cmd, len, "RCPT TO:"))
        return SMTP_STAGE_RCPT;
    if (starts(cmd, len, "DATA") && (len == 4 || cmd[4] == '\r' || cmd[4] == '\n'))
        return SMTP_STAGE_DATA;
    return stage; /* QUIT, RSET, NOOP, or an AUTH continuation line */
}

smtp_outcome_t smtp_classify(int curl_code, long code, smtp_stage_t stage)
{
    if (curl_code == CURLE_OK)
        return SMTP_SENT;
    /* A 5xx after the recipient was named is about this mail; one before it (greeting, EHLO,
     * AUTH, MAIL FROM) is about the server or our configuration, and is retried. */
    if (code >= 500 && code <= 599 &&
        (stage == SMTP_STAGE_RCPT || stage == SMTP_STAGE_DATA || stage == SMTP_STAGE_BODY))
        return SMTP_PERMANENT;
    return SMTP_TRANSIENT;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
    trace_t *t = arg;
    if (type == CURLINFO_HEADER_OUT) {
        if (starts(data, size, "QUIT"))
            t->quitting = true;
        else
            t->stage = smtp_stage_after_command(t->stage, data, size);
    } else if (type == CURLINFO_HEADER_IN && !t->quitting && size >= 3 && data[0] >= '1' &&
               data[0] <= '5' && data[1] >= '0' && data[1] <= '9' && data[2] >= '0' &&
               data[2] <= '9') {
        t->code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
        if (t->stage == SMTP_STAGE_DATA && t->code == 354)
            t->stage = SMTP_STAGE_BODY;
        size_t n = 0;
        for (; n < size && n < SMTP_REPLY_MAX && data[n] != '\r' && data[n] != '\n'; n++)
            t->reply[n] = data[n] >= 0x20 && data[n] < 0x7f ? data[n] : '?';
        t->reply[n] = '\0';
    }
    return 0;
}

/* The MIME tree: multipart/mixed → multipart/alternative → text/plain, text/html (new). */
static curl_mime *make_mime(CURL *c, const mail_t *m)
{
    curl_mime *top = curl_mime_init(c), *alt = curl_mime_init(c);
    curl_mimepart *part;
    struct curl_slist *inline_hdr = curl_slist_append(NULL, "Content-Disposition: inline");
    bool ok = top && alt && inline_hdr;

    if (ok) {
        part = curl_mime_addpart(alt);
        ok = part && curl_mime_data(part, m->text, CURL_ZERO_TERMINATED) == CURLE_OK &&
             curl_mime_type(part, "text/plain; charset=UTF-8") == CURLE_OK &&
             curl_mime_encoder(part, "quoted-printable") == CURLE_OK;
    }
    if (ok) {
        part = curl_mime_addpart(alt);
        ok = part && curl_mime_data(part, m->html, CURL_ZERO_TERMINATED) == CURLE_OK &&
             curl_mime_type(part, "text/html; charset=UTF-8") == CURLE_OK &&
             curl_mime_encoder(part, "quoted-printable") == CURLE_OK;
    }
    if (ok) {
        part = curl_mime_addpart(top);
        ok = part && curl_mime_subparts(part, alt) == CURLE_OK;
        if (ok)
            alt = NULL; /* part owns it now */
        ok = ok && curl_mime_type(part, "multipart/alternative") == CURLE_OK &&
             curl_mime_headers(part, inline_hdr, 1) == CURLE_OK;
        if (ok)
            inline_hdr = NULL; /* part owns it now */
    }
    curl_slist_free_all(inline_hdr);
    curl_mime_free(alt);
    if (!ok) {
        curl_mime_free(top);
        return NULL;
    }
    return top;
}

/* One transfer; *reused tells whether it ran on a connection kept from before. */
static CURLcode attempt(smtp_t *s, const char *rcpt_path, const mail_t *m, bool fresh, trace_t *t,
                        char errbuf[CURL_ERROR_SIZE], bool *reused)
{
    CURL *c = s->curl;
    if (!c)
        return CURLE_FAILED_INIT;
    struct curl_slist *rcpts = curl_slist_append(NULL, rcpt_path), *headers = NULL;
    curl_mime *mime = NULL;
    CURLcode code = CURLE_OUT_OF_MEMORY;
    long connects = 0;

    memset(t, 0, sizeof(*t));
    errbuf[0] = '\0';
    *reused = false;
    for (size_t i = 0; i < m->nheaders; i++)
        headers = curl_slist_append(headers, m->headers[i]);
    curl_easy_reset(c);
    mime = make_mime(c, m);
    if (!rcpts || !headers || !mime)
        goto out;
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    /* Also bounds the wait for the reply to QUIT when a failed connection is closed. */
    curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, (s->timeout_ms + 999) / 1000);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (strncasecmp(s->url, "smtps:", 6) != 0)
        curl_easy_setopt(c, CURLOPT_USE_SSL, s->require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY);
    if (s->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    if (s->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, s->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, s->password);
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, s->from_path);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, t);
    if (fresh)
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    code = curl_easy_perform(c);
    if (curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        *reused = connects == 0;
out:
    /* The handle keeps its connection; nothing of this transfer may outlive it. */
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, NULL);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, NULL);
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpts);
    return code;
}

smtp_outcome_t smtp_send(smtp_t *s, const char *rcpt, const mail_t *m, smtp_result_t *res)
{
    char *rcpt_path = xasprintf("<%s>", rcpt), errbuf[CURL_ERROR_SIZE];
    trace_t t;
    bool reused = false;
    CURLcode code = attempt(s, rcpt_path, m, false, &t, errbuf, &reused);
    /* A kept connection the server has closed meanwhile fails before anything of the mail was
     * accepted: once more on a new connection. */
    if (code != CURLE_OK && reused && t.stage <= SMTP_STAGE_MAIL && t.code < 500)
        code = attempt(s, rcpt_path, m, true, &t, errbuf, &reused);
    free(rcpt_path);
    if (code != CURLE_OK) {
        /* libcurl may keep a connection whose transaction failed half-way (MAIL FROM accepted,
         * RCPT refused, no RSET): the next MAIL FROM would be refused as nested. A new handle
         * closes it (with QUIT) and starts clean. */
        curl_easy_cleanup(s->curl);
        s->curl = curl_easy_init();
    }

    memset(res, 0, sizeof(*res));
    res->stage = t.stage;
    res->code = t.code;
    snprintf(res->reply, sizeof(res->reply), "%s", t.reply);
    if (code != CURLE_OK)
        snprintf(res->why, sizeof(res->why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(code));
    res->outcome = smtp_classify((int)code, t.code, t.stage);
    return res->outcome;
}

const char *smtp_url_check(const char *url)
{
    const char *why = NULL;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    CURLU *u = curl_url();
    if (!u)
        return "cannot be parsed (out of memory)";
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        why = "must be a URL such as smtp://mail.example.com:587";
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0))
        why = "must start with smtp:// or smtps://";
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        why = "must name a host";
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
             curl_url_get(u, CURLUPART_PASSWORD, &password, 0) != CURLUE_NO_PASSWORD)
        why = "must not hold credentials (use SMTP_USER and SMTP_PASSWORD)";
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return why;
}
