/* Unit tests of common/src/shutdown.c, each in a child process since signals and the waiting
 * thread are process-wide: the hook runs once, on its own thread; a second signal exits at once. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "todo/shutdown.h"

#define WAIT_MS 10000

static int child_fd = -1;  /* the hook writes one byte per call here for the child to wait on */
static int parent_fd = -1; /* ... and here for the parent to count */
static pthread_t main_thread;

static void hook(void *arg)
{
    char c = pthread_equal(pthread_self(), main_thread) ? 'm' : 'h';
    ssize_t w = write(child_fd, &c, 1);
    w = write(parent_fd, &c, 1);
    (void)w;
}

/* Waits until fd is readable and reads one byte; false after WAIT_MS. */
static bool read_byte(int fd, char *c)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, WAIT_MS) == 1 && read(fd, c, 1) == 1;
}

/* Runs body in a child process; returns its exit status (-1 when it did not exit normally) and
 * what the hook wrote (one 'h' per call on another thread, 'm' on the main thread). */
static int run_child(int (*body)(int self_fd), char *written, size_t size)
{
    int to_parent[2], to_self[2], status = 0;
    if (pipe(to_parent) != 0)
        return -1;
    if (pipe(to_self) != 0) {
        close(to_parent[0]);
        close(to_parent[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(to_parent[0]);
        parent_fd = to_parent[1];
        child_fd = to_self[1];
        main_thread = pthread_self();
        _exit(body(to_self[0]));
    }
    close(to_parent[1]);
    close(to_self[0]);
    close(to_self[1]);
    bool exited = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status);
    ssize_t n = read(to_parent[0], written, size - 1);
    written[n > 0 ? n : 0] = '\0';
    close(to_parent[0]);
    return exited ? WEXITSTATUS(status) : -1;
}

/* First SIGTERM: the hook, once, on the signal thread; second: exit 128 + SIGTERM. */
static int two_signals(int self_fd)
{
    char c;
    if (shutdown_start(hook, NULL) != 0)
        return 10;
    if (shutdown_start(hook, NULL) == 0) /* only once */
        return 11;
    if (shutdown_requested())
        return 12;
    kill(getpid(), SIGTERM);
    if (!read_byte(self_fd, &c))
        return 13;
    if (c != 'h' || !shutdown_requested())
        return 14;
    shutdown_request(); /* the hook has run: nothing more */
    kill(getpid(), SIGTERM);
    struct pollfd p = {.fd = self_fd, .events = POLLIN};
    poll(&p, 1, WAIT_MS); /* the second signal ends the process during this wait */
    return 15;
}

/* shutdown_request runs the hook on the signal thread and is not a signal: two more signals
 * are needed to exit. (Two different ones, so that they cannot merge while both are pending.) */
static int request_then_signals(int self_fd)
{
    char c;
    if (shutdown_start(hook, NULL) != 0)
        return 20;
    shutdown_request();
    if (!shutdown_requested())
        return 21;
    if (!read_byte(self_fd, &c) || c != 'h')
        return 22;
    shutdown_request(); /* no second hook */
    kill(getpid(), SIGTERM);
    kill(getpid(), SIGINT);
    struct pollfd p = {.fd = self_fd, .events = POLLIN};
    poll(&p, 1, WAIT_MS); /* the second signal ends the process during this wait */
    return 24;
}

/* Without shutdown_start, shutdown_request only sets the flag. */
static int request_alone(int self_fd)
{
    if (shutdown_requested())
        return 30;
    shutdown_request();
    return shutdown_requested() ? 0 : 31;
}

int main(void)
{
    char written[16];

    CHECK_INT(run_child(two_signals, written, sizeof(written)), 128 + SIGTERM);
    CHECK_STR(written, "h");
    int rc = run_child(request_then_signals, written, sizeof(written));
    CHECK(rc == 128 + SIGINT || rc == 128 + SIGTERM);
    if (rc != 128 + SIGINT && rc != 128 + SIGTERM)
        fprintf(stderr, "exit status %d\n", rc);
    CHECK_STR(written, "h");
    CHECK_INT(run_child(request_alone, written, sizeof(written)), 0);
    CHECK_STR(written, "");
    return check_exit();
}
