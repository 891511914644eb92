/* Unit test of common/src/config.c: values from the environment with defaults, every kind of bad
 * value (exit 2, message naming the variable, never a secret), --help, --version,
 * --check-config, unknown arguments, and the masked start-up log line. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "todo/config.h"
#include "todo/log.h"

static int64_t port, threads;
static const char *name, *secret, *mode, *url;
static bool debug;

static const char *mode_check(const char *v)
{
    return strcmp(v, "fast") == 0 || strcmp(v, "slow") == 0 ? NULL : "must be fast or slow";
}

static const config_entry_t tab[] = {
    {"T_PORT", CONFIG_INT, "8080", false, 1, 65535, "TCP port to listen on", &port, NULL},
    {"T_THREADS", CONFIG_INT, NULL, false, 1, 64, "worker threads", &threads, NULL},
    {"T_NAME", CONFIG_STRING, NULL, true, 2, 10, "a required name", &name, NULL},
    {"T_SECRET", CONFIG_SECRET, NULL, true, 8, 0, "signing secret", &secret, NULL},
    {"T_DEBUG", CONFIG_BOOL, "false", false, 0, 0, "debug mode", &debug, NULL},
    {"T_MODE", CONFIG_STRING, "fast", false, 0, 0, "fast or slow", &mode, mode_check},
    {"T_URL", CONFIG_STRING, NULL, false, 0, 0, "database URL", &url, NULL},
};
#define N (sizeof(tab) / sizeof(tab[0]))

static char out_text[16384], err_text[16384];

/* Reads a whole temporary file back into dst. */
static void slurp(FILE *f, char *dst, size_t cap)
{
    fflush(f);
    off_t n = lseek(fileno(f), 0, SEEK_END);
    if (n < 0 || (size_t)n >= cap)
        n = (off_t)cap - 1;
    if (pread(fileno(f), dst, (size_t)n, 0) != (ssize_t)n)
        n = 0;
    dst[n] = '\0';
    fclose(f);
}

/* config_main with stdout and stderr captured into out_text and err_text. */
static int run(int argc, char **argv)
{
    FILE *o = tmpfile(), *e = tmpfile();
    fflush(stdout);
    fflush(stderr);
    int so = dup(STDOUT_FILENO), se = dup(STDERR_FILENO);
    dup2(fileno(o), STDOUT_FILENO);
    dup2(fileno(e), STDERR_FILENO);
    int rc = config_main("svc", tab, N, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, STDOUT_FILENO);
    dup2(se, STDERR_FILENO);
    close(so);
    close(se);
    slurp(o, out_text, sizeof(out_text));
    slurp(e, err_text, sizeof(err_text));
    return rc;
}

static int run_plain(void)
{
    char *argv[] = {"svc", NULL};
    return run(1, argv);
}

static void good_env(void)
{
    static const char *const vars[] = {"T_PORT", "T_THREADS", "T_DEBUG", "T_MODE", "T_URL"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("T_NAME", "alice", 1);
    setenv("T_SECRET", "hunter22-very-secret", 1);
}

/* One variable set to a bad value: exit 2, the variable named, and the reason given. */
static void expect_bad(const char *var, const char *value, const char *reason)
{
    good_env();
    setenv(var, value, 1);
    int rc = run_plain();
    CHECK_INT(rc, 2);
    if (!strstr(err_text, var) || !strstr(err_text, reason))
        fprintf(stderr, "for %s=\"%s\" stderr was: %s\n", var, value, err_text);
    CHECK(strstr(err_text, var) != NULL);
    CHECK(strstr(err_text, reason) != NULL);
    CHECK(strstr(err_text, "hunter22") == NULL);
}

int main(void)
{
    log_init("svc", LOG_LEVEL_INFO);

    /* Defaults and the environment. */
    good_env();
    CHECK_INT(run_plain(), -1);
    CHECK_STR(err_text, "");
    CHECK_STR(out_text, "");
    CHECK_INT(port, 8080);
    CHECK_INT(threads, 0);
    CHECK_STR(name, "alice");
    CHECK_STR(secret, "hunter22-very-secret");
    CHECK(!debug);
    CHECK_STR(mode, "fast");
    CHECK(url == NULL);

    setenv("T_PORT", "65535", 1);
    setenv("T_THREADS", "+4", 1);
    setenv("T_DEBUG", "YES", 1);
    setenv("T_MODE", "slow", 1);
    setenv("T_URL", "postgres://app:pa:ss@word@db:5432/todo", 1);
    CHECK_INT(run_plain(), -1);
    CHECK_INT(port, 65535);
    CHECK_INT(threads, 4);
    CHECK(debug);
    CHECK_STR(mode, "slow");
    const char *bools[][2] = {{"on", "1"}, {"off", "0"},  {"1", "1"},
                              {"0", "0"},  {"TRUE", "1"}, {"no", "0"}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        setenv("T_DEBUG", bools[i][0], 1);
        CHECK_INT(run_plain(), -1);
        CHECK_INT(debug, bools[i][1][0] == '1');
    }
    setenv("T_PORT", "", 1); /* empty counts as unset: the default applies */
    CHECK_INT(run_plain(), -1);
    CHECK_INT(port, 8080);

    /* The start-up line: secrets and URL passwords masked, unset values shown as such. */
    FILE *e = tmpfile();
    fflush(stderr);
    int se = dup(STDERR_FILENO);
    dup2(fileno(e), STDERR_FILENO);
    config_log("svc", tab, N);
    const char *saved_secret = secret;
    secret = NULL;
    config_log("svc", tab, N);
    secret = saved_secret;
    dup2(se, STDERR_FILENO);
    close(se);
    slurp(e, err_text, sizeof(err_text));
    CHECK(strstr(err_text, "\"module\":\"config\"") != NULL);
    CHECK(strstr(err_text, "T_PORT=8080") != NULL);
    CHECK(strstr(err_text, "T_THREADS=4") != NULL);
    CHECK(strstr(err_text, "T_SECRET=***") != NULL);
    CHECK(strstr(err_text, "T_SECRET=(unset)") != NULL);
    CHECK(strstr(err_text, "T_NAME=\\\"alice\\\"") != NULL);
    CHECK(strstr(err_text, "postgres://app:***@db:5432/todo") != NULL);
    CHECK(strstr(err_text, "hunter22") == NULL);
    CHECK(strstr(err_text, "word") == NULL);
    CHECK(strstr(err_text, "pa:ss") == NULL);

    /* Bad values, each named with its reason. */
    expect_bad("T_PORT", "abc", "must be an integer from 1 to 65535");
    expect_bad("T_PORT", "0", "must be an integer");
    expect_bad("T_PORT", "65536", "must be an integer");
    expect_bad("T_PORT", "-1", "must be an integer");
    expect_bad("T_PORT", "80x", "must be an integer");
    expect_bad("T_PORT", " 80", "must be an integer");
    expect_bad("T_PORT", "80 ", "must be an integer");
    expect_bad("T_PORT", "0x50", "must be an integer");
    expect_bad("T_PORT", "8.0", "must be an integer");
    expect_bad("T_PORT", "+", "must be an integer");
    expect_bad("T_PORT", "99999999999999999999", "must be an integer");
    expect_bad("T_PORT", "-99999999999999999999", "must be an integer");
    expect_bad("T_THREADS", "65", "must be an integer from 1 to 64");
    expect_bad("T_DEBUG", "maybe", "must be one of true, false");
    expect_bad("T_DEBUG", "truee", "must be one of true, false");
    expect_bad("T_NAME", "a", "at least 2");
    expect_bad("T_NAME", "abcdefghijk", "at most 10");
    expect_bad("T_MODE", "medium", "must be fast or slow");
    expect_bad("T_SECRET", "short12", "at least 8");
    CHECK(strstr(err_text, "short12") == NULL); /* a secret's value is never echoed */
    CHECK(strstr(err_text, "abcdefghijk") == NULL);
    expect_bad("T_NAME", "abcdefghijk", "abcdefghijk"); /* other values are */
    /* ... with any password in them masked */
    expect_bad("T_MODE", "smtp://u:hunter22pw@mail:25", "must be fast or slow");
    CHECK(strstr(err_text, "smtp://u:***@mail:25") != NULL);
    CHECK(strstr(err_text, "hunter22pw") == NULL);
    expect_bad("T_MODE", "host=db password=hunter22pw", "must be fast or slow");
    CHECK(strstr(err_text, "password=***") != NULL);
    CHECK(strstr(err_text, "hunter22pw") == NULL);

    good_env();
    unsetenv("T_SECRET");
    CHECK_INT(run_plain(), 2);
    CHECK(strstr(err_text, "T_SECRET is required") != NULL);
    setenv("T_SECRET", "", 1);
    CHECK_INT(run_plain(), 2);
    CHECK(strstr(err_text, "T_SECRET is required") != NULL);
    unsetenv("T_NAME");
    setenv("T_PORT", "nope", 1);
    CHECK_INT(run_plain(), 2); /* every problem is reported, not just the first */
    CHECK(strstr(err_text, "T_SECRET") != NULL);
    CHECK(strstr(err_text, "T_NAME") != NULL);
    CHECK(strstr(err_text, "T_PORT") != NULL);

    /* Command line. */
    good_env();
    char *version[] = {"svc", "--version", NULL};
    CHECK_INT(run(2, version), 0);
    CHECK_STR(out_text, "svc " TODO_VERSION "\n");

    char *help[] = {"svc", "--help", NULL};
    setenv("T_PORT", "bad", 1); /* help does not validate */
    CHECK_INT(run(2, help), 0);
    for (size_t i = 0; i < N; i++)
        CHECK(strstr(out_text, tab[i].name) != NULL && strstr(out_text, tab[i].help) != NULL);
    CHECK(strstr(out_text, "default 8080") != NULL);
    CHECK(strstr(out_text, "1..65535") != NULL);
    CHECK(strstr(out_text, "required") != NULL);
    CHECK(strstr(out_text, "--check-config") != NULL);
    CHECK_STR(err_text, "");

    char *check[] = {"svc", "--check-config", NULL};
    CHECK_INT(run(2, check), 2);
    CHECK(strstr(err_text, "T_PORT") != NULL);
    CHECK(strstr(out_text, "configuration ok") == NULL);
    good_env();
    CHECK_INT(run(2, check), 0);
    CHECK_STR(out_text, "configuration ok\n");
    CHECK_STR(err_text, "");

    char *unknown[] = {"svc", "--frobnicate", NULL};
    CHECK_INT(run(2, unknown), 2);
    CHECK(strstr(err_text, "--frobnicate") != NULL);
    CHECK(strstr(err_text, "Usage: svc") != NULL);
    CHECK_STR(out_text, "");
    char *positional[] = {"svc", "--check-config", "extra", NULL};
    CHECK_INT(run(3, positional), 2);
    return check_exit();
}
