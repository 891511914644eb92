/* Graceful shutdown on SIGTERM/SIGINT: a dedicated thread waits for the signals, so no work runs
 * in a signal handler. The first signal calls the hook once; a second one exits at once. */
#ifndef TODO_SHUTDOWN_H
#define TODO_SHUTDOWN_H
#include <stdbool.h>
#include "todo/error.h"

/* Blocks SIGTERM, SIGINT (and ignores SIGPIPE) in the calling thread — call it in main before
 * creating any thread so that every thread inherits the mask — and starts the waiting thread.
 * on_first runs on that thread. */
int shutdown_start(void (*on_first)(void *arg), void *arg) TODO_WUR;
/* True once the first signal has arrived (or shutdown_request was called). */
bool shutdown_requested(void);
/* Acts as if the first signal arrived (tests, fatal errors). */
void shutdown_request(void);

#endif
