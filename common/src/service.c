/* The start-up pieces every service's main shares; see service.h. */
#include "todo/service.h"

#include <time.h>

#include "todo/log.h"

const char *service_check_log_level(const char *value)
{
    log_level_t l;
    return log_level_parse(value, &l) == 0 ? NULL : "must be debug, info, warn or error";
}

void service_log_init(const char *service, const char *level, const config_entry_t *tab, size_t n)
{
    log_level_t l = LOG_LEVEL_INFO;
    (void)!log_level_parse(level, &l);
    log_init(service, l);
    config_log(service, tab, n);
}

void service_pause(int64_t ms, const atomic_bool *stop)
{
    for (int64_t waited = 0; waited < ms && !atomic_load(stop); waited += 50)
        nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
}

int service_migrate(const char *url, const char *schema, const db_migration_t *migrations, size_t n,
                    const atomic_bool *stop)
{
    db_t *db = db_new(url);
    int64_t delay = 250;
    int rc = TODO_EUNAVAILABLE;
    while (!atomic_load(stop)) {
        rc = db_connect(db);
        if (rc == 0)
            rc = db_migrate(db, schema, migrations, n);
        if (rc != TODO_EUNAVAILABLE)
            break;
        log_warn("main", "database unavailable, retrying migrations in %lld ms", (long long)delay);
        service_pause(delay, stop);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    db_free(db);
    return atomic_load(stop) && rc != 0 ? TODO_EUNAVAILABLE : rc;
}

int service_wait_sidecar(const dapr_config_t *sidecar, const atomic_bool *stop)
{
    dapr_t *d = dapr_new(sidecar);
    int rc = d ? dapr_wait_outbound(d, -1, stop) : TODO_EINTERNAL;
    dapr_free(d);
    return rc;
}
