/* Unit test of common/src/log.c: every line is one valid JSON object with the documented fields,
 * messages are escaped, the level filter skips argument evaluation, and lines written by many
 * threads at once never interleave. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "todo/log.h"

static int saved_stderr = -1;
static FILE *capture;

/* Sends stderr to a fresh temporary file. */
static void capture_start(void)
{
    capture = tmpfile();
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture), STDERR_FILENO);
}

/* Restores stderr and returns what was written (new). */
static char *capture_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    off_t n = lseek(fileno(capture), 0, SEEK_END);
    char *s = calloc((size_t)n + 1, 1);
    if (n > 0 && pread(fileno(capture), s, (size_t)n, 0) != (ssize_t)n)
        s[0] = '\0';
    fclose(capture);
    return s;
}

static int evaluated;

static int count_evaluation(void)
{
    return ++evaluated;
}

/* Parses one line (without its newline) as a JSON object. */
static json_t *parse_line(const char *line, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (!v)
        fprintf(stderr, "not JSON (%s): %.*s\n", err.text, (int)len, line);
    return v;
}

static const char *field(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

#define THREADS          4
#define LINES_PER_THREAD 300

static void *writer(void *arg)
{
    char trace[32];
    char big[3000];
    int id = (int)(intptr_t)arg;
    snprintf(trace, sizeof(trace), "trace-%d", id);
    memset(big, 'a' + id, sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_set_trace(trace);
    for (int i = 0; i < LINES_PER_THREAD; i++)
        log_info("thread", "%d %d %s", id, i, big);
    return NULL;
}

int main(void)
{
    log_level_t lvl = LOG_LEVEL_ERROR;
    CHECK_INT(log_level_parse("debug", &lvl), 0);
    CHECK_INT(lvl, LOG_LEVEL_DEBUG);
    CHECK_INT(log_level_parse("WARN", &lvl), 0);
    CHECK_INT(lvl, LOG_LEVEL_WARN);
    CHECK_INT(log_level_parse("error", &lvl), 0);
    CHECK_INT(lvl, LOG_LEVEL_ERROR);
    CHECK_INT(log_level_parse("info", &lvl), 0);
    CHECK_INT(lvl, LOG_LEVEL_INFO);
    CHECK_INT(log_level_parse("verbose", &lvl), TODO_EBAD_REQUEST);
    CHECK_INT(log_level_parse("", &lvl), TODO_EBAD_REQUEST);
    CHECK_INT(log_level_parse("info ", &lvl), TODO_EBAD_REQUEST);
    CHECK_INT(log_level_parse(NULL, &lvl), TODO_EBAD_REQUEST);
    CHECK_INT(lvl, LOG_LEVEL_INFO);

    CHECK_STR(log_get_trace(), "");
    log_set_trace("abc123");
    CHECK_STR(log_get_trace(), "abc123");
    log_set_trace(NULL);
    CHECK_STR(log_get_trace(), "");

    /* One plain line with every field. */
    log_init("svc", LOG_LEVEL_INFO);
    capture_start();
    log_set_trace("0af7651916cd43dd8448eb211c80319c");
    errno = EAGAIN;
    log_info("http", "hello %s %d", "world", 7);
    int saved = errno;
    log_set_trace(NULL);
    char *out = capture_end();
    CHECK_INT(saved, EAGAIN);
    size_t len = strlen(out);
    CHECK(len > 0 && out[len - 1] == '\n');
    CHECK(strchr(out, '\n') == out + len - 1);
    CHECK(strncmp(out, "{\"time\":\"", 9) == 0);
    json_t *o = parse_line(out, len - 1);
    CHECK(o != NULL);
    CHECK_STR(field(o, "level"), "info");
    CHECK_STR(field(o, "service"), "svc");
    CHECK_STR(field(o, "module"), "http");
    CHECK_STR(field(o, "msg"), "hello world 7");
    CHECK_STR(field(o, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    const char *t = field(o, "time");
    CHECK(t && strlen(t) == 24 && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    CHECK_INT(json_object_size(o), 6);
    json_decref(o);
    free(out);

    /* Levels below the minimum are neither written nor evaluated. */
    capture_start();
    evaluated = 0;
    log_debug("m", "%d", count_evaluation());
    CHECK_INT(evaluated, 0);
    log_warn("m", "%d", count_evaluation());
    CHECK_INT(evaluated, 1);
    log_error("m", "boom");
    out = capture_end();
    CHECK(strstr(out, "\"level\":\"warn\"") != NULL);
    CHECK(strstr(out, "\"level\":\"error\"") != NULL);
    CHECK(strstr(out, "\"level\":\"debug\"") == NULL);
    free(out);
    log_init("svc", LOG_LEVEL_DEBUG);
    capture_start();
    log_debug("m", "now %s", "visible");
    out = capture_end();
    CHECK(strstr(out, "\"level\":\"debug\"") != NULL && strstr(out, "now visible") != NULL);
    free(out);

    /* Escaping: quotes, backslash, control characters, valid and invalid UTF-8. */
    capture_start();
    log_info("esc\"mod", "q\"b\\n\nt\tc\x01 del\x7f é 日本 bad\xff\xc3 end");
    log_set_trace("tr\"ace\n");
    log_info("m", "x");
    log_set_trace(NULL);
    out = capture_end();
    char *nl = strchr(out, '\n');
    CHECK(nl != NULL);
    if (nl) {
        o = parse_line(out, (size_t)(nl - out));
        CHECK(o != NULL);
        CHECK_STR(field(o, "msg"),
                  "q\"b\\n\nt\tc\x01 del\x7f é 日本 bad\xef\xbf\xbd\xef\xbf\xbd end");
        CHECK_STR(field(o, "module"), "esc\"mod");
        json_decref(o);
        o = parse_line(nl + 1, strlen(nl + 1) - 1);
        CHECK(o != NULL);
        CHECK_STR(field(o, "trace_id"), "tr\"ace\n");
        json_decref(o);
    }
    free(out);

    /* A message far over the size limit is cut but still one valid JSON line. */
    char *huge = malloc(20001);
    memset(huge, '"', 20000);
    huge[20000] = '\0';
    capture_start();
    log_info("m", "%s", huge);
    out = capture_end();
    len = strlen(out);
    CHECK(len > 1000 && len <= 8192);
    CHECK(strchr(out, '\n') == out + len - 1);
    o = parse_line(out, len - 1);
    CHECK(o != NULL);
    const char *msg = field(o, "msg");
    CHECK(msg && strstr(msg, "...(truncated)") != NULL);
    json_decref(o);
    free(out);
    free(huge);

    /* An over-long trace id is cut to 128 bytes. */
    char long_trace[300];
    memset(long_trace, 'f', sizeof(long_trace) - 1);
    long_trace[sizeof(long_trace) - 1] = '\0';
    log_set_trace(long_trace);
    CHECK_INT(strlen(log_get_trace()), 128);
    log_set_trace(NULL);

    /* Threads: every line whole, each carrying its own thread's trace id. */
    log_init("svc", LOG_LEVEL_INFO);
    capture_start();
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    out = capture_end();
    int lines = 0, good = 0;
    for (char *line = out; *line;) {
        char *end = strchr(line, '\n');
        if (!end)
            break;
        lines++;
        o = parse_line(line, (size_t)(end - line));
        if (o) {
            int id = -1, n = -1;
            char trace[32];
            msg = field(o, "msg");
            if (msg && sscanf(msg, "%d %d", &id, &n) == 2 && id >= 0 && id < THREADS) {
                snprintf(trace, sizeof(trace), "trace-%d", id);
                const char *tail = strrchr(msg, ' ');
                good += strcmp(field(o, "trace_id"), trace) == 0 && tail &&
                        strlen(tail + 1) == 2999 && tail[1] == 'a' + id;
            }
            json_decref(o);
        }
        line = end + 1;
    }
    CHECK_INT(lines, THREADS * LINES_PER_THREAD);
    CHECK_INT(good, THREADS * LINES_PER_THREAD);
    free(out);
    return check_exit();
}
