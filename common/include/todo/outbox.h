/* The outbox relay: a thread that publishes the rows a service wrote to its outbox table (in the
 * transactions of its changes) to the bus, in creation order, and marks each published only once
 * the bus accepted it. It wakes on LISTEN/NOTIFY with a polling fallback, publishes a backlog in
 * bulk, backs off while the sidecar or broker is down, deletes published rows after a retention
 * period, exports its state in /metrics, and drains on stop. Of several replicas' relays only one
 * publishes at a time (a PostgreSQL advisory lock); the others stand by and take over when its
 * session ends, so that no row is published twice in steady state.
 *
 * The table has the columns of backend.outbox: id bigserial, event_id uuid, topic text,
 * partition_key text, event jsonb, created_at timestamptz, published_at timestamptz (NULL until
 * published). Writers call outbox_relay_signal after committing rows. */
#ifndef TODO_OUTBOX_H
#define TODO_OUTBOX_H
#include <stdint.h>

#include "todo/bus.h"
#include "todo/db.h"
#include "todo/error.h"

typedef struct outbox_relay outbox_relay_t;

typedef struct {
    const char *database_url;
    const char *table;   /* e.g. "backend.outbox" (a trusted identifier) */
    const char *channel; /* the NOTIFY channel, e.g. "backend_outbox" */
    bus_config_t bus;
    int batch;              /* rows per round, default 200 */
    int64_t poll_ms;        /* longest wait without a notification, default 1000 */
    int64_t retention_s;    /* published rows older than this are deleted, default 86400 */
    int64_t backoff_max_ms; /* longest pause after a failed publish, default 5000 */
} outbox_config_t;

/* Starts the relay thread (strings copied). NULL when the thread cannot start. */
outbox_relay_t *outbox_relay_start(const outbox_config_t *cfg);
/* Tells the relays that rows were committed (call it after the commit, never inside the
 * transaction): the relay r of this process is woken at once when it holds the lead; otherwise
 * NOTIFY channel is sent on db, which wakes the leader wherever it runs. r may be NULL (no relay
 * here, or not started yet). Thread-safe. */
void outbox_relay_signal(outbox_relay_t *r, db_t *db, const char *channel);
/* Stops the relay: it first publishes what is pending (while the bus accepts) for up to
 * drain_ms, then ends its session (and so its lock) and is joined. NULL is a no-op. */
void outbox_relay_stop(outbox_relay_t *r, int64_t drain_ms);

#endif
