/* What the main of every service shares: the log level check of its config table, logging set up
 * from the config, and the start-up waits (migrations while the database is unreachable, the
 * sidecar's outbound health), each with backoff and an end when the service is asked to stop. */
#ifndef TODO_SERVICE_H
#define TODO_SERVICE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "todo/config.h"
#include "todo/dapr.h"
#include "todo/db.h"
#include "todo/error.h"

/* config_entry_t.check of LOG_LEVEL: NULL, or why the value is not a level. */
const char *service_check_log_level(const char *value);

/* log_init with the level named by level (info when it is none), then the configuration line. */
void service_log_init(const char *service, const char *level, const config_entry_t *tab, size_t n);

/* Sleeps ms in short steps, returning early once *stop is set. */
void service_pause(int64_t ms, const atomic_bool *stop);

/* Applies the migrations of schema at url, retrying (250 ms doubling to 5 s) while the database
 * is unreachable. 0, the migration's error, or TODO_EUNAVAILABLE once *stop is set. */
int service_migrate(const char *url, const char *schema, const db_migration_t *migrations, size_t n,
                    const atomic_bool *stop) TODO_WUR;

/* Waits for the sidecar's /v1.0/healthz/outbound (never /v1.0/healthz, which waits for the app:
 * DAPR-CONTRACT §8.2). 0, or TODO_EUNAVAILABLE once *stop is set. */
int service_wait_sidecar(const dapr_config_t *sidecar, const atomic_bool *stop) TODO_WUR;

#endif
