/* The job trigger loop of one sidecar (DAPR-CONTRACT §6.2, §6.3): while the app is ready it
 * claims due triggers of its app id from the shared jobs store and POSTs each to /job/<name>,
 * keeping the lease alive during the call, then records the outcome. */
#ifndef SIDECAR_SCHEDULER_H
#define SIDECAR_SCHEDULER_H
#include "sidecar.h"

typedef struct scheduler scheduler_t;

/* Namespace of the jobs: $NAMESPACE, else "default" (borrowed, static or environment). */
const char *scheduler_namespace(void);

/* Starts the trigger thread for s (borrowed; must outlive the scheduler) when
 * s->opt.scheduler_database_url is set; *out = NULL (and 0) when it is not. *out is new
 * (scheduler_stop). The database may be unreachable at first: the thread keeps trying. */
int scheduler_start(sidecar_t *s, scheduler_t **out) TODO_WUR;
/* Stops the thread after the delivery in progress (at most the call timeout) and frees it;
 * claimed but undelivered triggers are given back. NULL is a no-op. */
void scheduler_stop(scheduler_t *sch);

#endif
