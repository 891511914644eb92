/* SIGTERM/SIGINT handling without signal handlers: the signals stay blocked in every thread and
 * one dedicated thread takes them with sigwaitinfo, runs the shutdown hook, or exits at once. */
#define _GNU_SOURCE /* pthread_sigqueue */
#include "todo/shutdown.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "todo/log.h"

/* si_value of the signal shutdown_request queues, so it is not counted as a real signal. */
#define REQUEST_MAGIC 0x5d0e

static atomic_bool requested;
static atomic_bool hook_called;
static atomic_bool started;
static void (*hook)(void *arg);
static void *hook_arg;
static pthread_t waiter;

static void shutdown_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

static void *wait_signals(void *unused)
{
    sigset_t set;
    int signals = 0;

    shutdown_signals(&set);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            log_error("shutdown", "sigwaitinfo: %s", strerror(errno));
            return NULL;
        }
        bool is_request = info.si_code == SI_QUEUE && info.si_pid == getpid() &&
                          info.si_value.sival_int == REQUEST_MAGIC;
        if (!is_request) {
            if (++signals > 1) {
                log_warn("shutdown", "second %s: exiting now", signal_name(sig));
                _exit(128 + sig);
            }
            log_info("shutdown", "%s: shutting down (send it again to exit at once)",
                     signal_name(sig));
        }
        atomic_store(&requested, true);
        if (!atomic_exchange(&hook_called, true) && hook)
            hook(hook_arg);
    }
}

int shutdown_start(void (*on_first)(void *arg), void *arg)
{
    int rc = TODO_EINTERNAL, err = 0;
    sigset_t set;
    pthread_attr_t attr;
    bool attr_made = false;

    if (atomic_load(&started)) {
        log_error("shutdown", "shutdown_start called twice");
        goto out;
    }
    hook = on_first;
    hook_arg = arg;
    shutdown_signals(&set);
    if ((err = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0 ||
        (signal(SIGPIPE, SIG_IGN) == SIG_ERR && (err = errno) != 0) ||
        (err = pthread_attr_init(&attr)) != 0) {
        log_error("shutdown", "cannot set up signal handling: %s", strerror(err));
        goto out;
    }
    attr_made = true;
    if ((err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) != 0 ||
        (err = pthread_create(&waiter, &attr, wait_signals, NULL)) != 0) {
        log_error("shutdown", "cannot start the signal thread: %s", strerror(err));
        goto out;
    }
    atomic_store(&started, true);
    rc = 0;
out:
    if (attr_made)
        pthread_attr_destroy(&attr);
    return rc;
}

bool shutdown_requested(void)
{
    return atomic_load(&requested);
}

void shutdown_request(void)
{
    atomic_store(&requested, true);
    if (atomic_load(&started) && !atomic_load(&hook_called)) {
        union sigval v = {.sival_int = REQUEST_MAGIC};
        int err = pthread_sigqueue(waiter, SIGTERM, v);
        if (err != 0)
            log_error("shutdown", "cannot wake the signal thread: %s", strerror(err));
    }
}
