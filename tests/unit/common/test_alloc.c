/* Unit test of common/src/alloc.c: the wrappers return usable memory, and a failed allocation
 * aborts the process after logging an error line (checked in child processes). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "todo/alloc.h"

/* Under AddressSanitizer an impossible allocation must return NULL as it would in production,
 * rather than being reported by the sanitizer itself. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

/* Runs fn in a child with stderr captured; returns its wait status and what it wrote. */
static int run_child(void (*fn)(void), char *out, size_t out_len)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < out_len && (r = read(fds[0], out + len, out_len - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static volatile size_t huge = SIZE_MAX / 2;

static void huge_malloc(void)
{
    void *p = xmalloc(huge);
    free(p);
}

static void overflowing_calloc(void)
{
    void *p = xcalloc(huge, 4);
    free(p);
}

static void huge_realloc(void)
{
    void *p = xrealloc(NULL, huge);
    free(p);
}

static void fine(void)
{
    free(xmalloc(16));
}

int main(void)
{
    char *p = xmalloc(0);
    CHECK(p != NULL);
    free(p);

    int *z = xcalloc(100, sizeof(int));
    int sum = 0;
    for (int i = 0; i < 100; i++)
        sum |= z[i];
    CHECK_INT(sum, 0);
    free(z);

    char *r = xmalloc(4);
    memcpy(r, "abc", 4);
    r = xrealloc(r, 100000);
    CHECK_STR(r, "abc");
    free(r);

    char *s = xstrdup("hello");
    CHECK_STR(s, "hello");
    free(s);
    s = xstrndup("hello", 3);
    CHECK_STR(s, "hel");
    free(s);
    s = xstrndup("hi", 10);
    CHECK_STR(s, "hi");
    free(s);
    s = xstrndup("", 0);
    CHECK_STR(s, "");
    free(s);

    s = xasprintf("%s-%d-%05.1f", "x", 42, 2.5);
    CHECK_STR(s, "x-42-002.5");
    free(s);

    char err[4096];
    void (*const failing[])(void) = {huge_malloc, overflowing_calloc, huge_realloc};
    for (size_t i = 0; i < sizeof(failing) / sizeof(failing[0]); i++) {
        int st = run_child(failing[i], err, sizeof(err));
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
        CHECK(strstr(err, "\"level\":\"error\"") != NULL);
        CHECK(strstr(err, "out of memory") != NULL);
    }
    int st = run_child(fine, err, sizeof(err));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR(err, "");
    return check_exit();
}
