/* The outbox relay; see outbox.h. */
#define _GNU_SOURCE
#include "todo/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/db.h"
#include "todo/log.h"
#include "todo/metrics.h"
#include "todo/timeutil.h"

#define RELAY_STANDBY_MS   1000  /* how often a standby relay tries to take the lead */
#define RELAY_STATS_MS     1000  /* how often the backlog gauges are refreshed */
#define RELAY_RETENTION_MS 60000 /* how often published rows are pruned (at most) */
#define RELAY_PRUNE_ROWS   10000 /* rows deleted per prune statement */
#define RELAY_BACKOFF_MIN  100
#define RELAY_PROBE_MS     250 /* sidecar health probes while it is unreachable */
#define RELAY_SQL_MAX      1024
#define RELAY_IDS_MAX      (24 * 1024)

struct outbox_relay {
    outbox_config_t cfg;
    char *url, *table, *channel, *pubsub, *host, *token;
    pthread_t thread;
    int wake_rd, wake_wr; /* the stop pipe */
    atomic_bool stopping;
    atomic_llong drain_deadline; /* monotonic ms, set with stopping */
    db_t *db;
    bus_t *bus;
    bool leader;
    unsigned session; /* db_session when the lead was taken */
    char select_sql[RELAY_SQL_MAX], mark_sql[RELAY_SQL_MAX], stats_sql[RELAY_SQL_MAX];
    char prune_sql[RELAY_SQL_MAX];
    int64_t lock_key;
    int64_t next_stats, next_prune;
    /* what /metrics shows */
    atomic_llong backlog, oldest_ms;
    atomic_bool is_leader;
    metrics_counter_t *published, *failed;
};

static int64_t now_ms(void)
{
    return time_mono_usec() / 1000;
}

static double gauge_backlog(void *arg)
{
    outbox_relay_t *r = arg;
    return (double)atomic_load(&r->backlog);
}

static double gauge_oldest(void *arg)
{
    outbox_relay_t *r = arg;
    return (double)atomic_load(&r->oldest_ms) / 1000.0;
}

static double gauge_leader(void *arg)
{
    outbox_relay_t *r = arg;
    return atomic_load(&r->is_leader) ? 1 : 0;
}

static double gauge_zero(void *arg)
{
    return 0;
}

/* The relay's gauges read r, or zero when r is NULL (after the relay stopped). */
static void register_gauges(const char *labels, outbox_relay_t *r)
{
    metrics_gauge_fn("outbox_backlog", "Outbox rows not published yet", labels,
                     r ? gauge_backlog : gauge_zero, r);
    metrics_gauge_fn("outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row",
                     labels, r ? gauge_oldest : gauge_zero, r);
    metrics_gauge_fn("outbox_relay_leader", "1 when this replica's relay is the one publishing",
                     labels, r ? gauge_leader : gauge_zero, r);
}

/* Waits until fd is readable, the stop pipe is, or ms pass. */
static void wait_for(outbox_relay_t *r, int fd, int64_t ms)
{
    struct pollfd p[2] = {{.fd = r->wake_rd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    char b[64];
    if (atomic_load(&r->stopping) || ms <= 0)
        return;
    if (poll(p, fd >= 0 ? 2 : 1, (int)(ms > 60000 ? 60000 : ms)) > 0 && (p[0].revents & POLLIN))
        while (read(r->wake_rd, b, sizeof(b)) > 0) /* outbox_relay_signal's wake-ups */
            ;
}

static void lose_lead(outbox_relay_t *r, const char *why)
{
    if (r->leader && atomic_load(&r->stopping))
        log_info("outbox", "%s: no longer publishing (%s)", r->table, why);
    else if (r->leader)
        log_warn("outbox", "%s: no longer publishing (%s)", r->table, why);
    r->leader = false;
    atomic_store(&r->is_leader, false);
}

/* Takes the lead: the advisory lock of the table, then LISTEN, on one session. */
static bool take_lead(outbox_relay_t *r)
{
    char key[24], sql[160];
    PGresult *res = NULL;
    const char *p[] = {key};
    bool got = false;

    snprintf(key, sizeof(key), "%lld", (long long)r->lock_key);
    if (db_connect(r->db) != 0)
        goto out;
    if (db_query(r->db, "SELECT pg_try_advisory_lock($1::bigint)", 1, p, &res) != 0)
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        goto out;
    snprintf(sql, sizeof(sql), "LISTEN \"%s\"", r->channel);
    if (db_query(r->db, sql, 0, NULL, NULL) != 0)
        goto out; /* the lock goes with the session when it is lost */
    r->session = db_session(r->db);
    r->leader = true;
    atomic_store(&r->is_leader, true);
    log_info("outbox", "%s: publishing (this relay holds the lead)", r->table);
    got = true;
out:
    PQclear(res);
    return got;
}

static bool still_leader(outbox_relay_t *r)
{
    if (r->leader && (!db_connected(r->db) || db_session(r->db) != r->session))
        lose_lead(r, "the database session ended");
    return r->leader;
}

/* Empties the notifications that arrived, those libpq read along with the results of the last
 * queries included (they no longer make the socket readable); returns how many there were. */
static int consume_notifies(outbox_relay_t *r)
{
    PGconn *c = db_conn(r->db);
    PGnotify *n;
    int count = 0;
    if (!c)
        return 0;
    (void)PQconsumeInput(c);
    while ((n = PQnotifies(c)) != NULL) {
        PQfreemem(n);
        count++;
    }
    return count;
}

static void refresh_stats(outbox_relay_t *r)
{
    PGresult *res = NULL;
    if (db_query_prepared(r->db, r->stats_sql, 0, NULL, &res) == 0) {
        atomic_store(&r->backlog, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
        atomic_store(&r->oldest_ms, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    }
    PQclear(res);
    r->next_stats = now_ms() + RELAY_STATS_MS;
}

static void prune(outbox_relay_t *r)
{
    char secs[24];
    const char *p[] = {secs};
    PGresult *res = NULL;
    snprintf(secs, sizeof(secs), "%lld", (long long)r->cfg.retention_s);
    if (db_query_prepared(r->db, r->prune_sql, 1, p, &res) == 0 && atoi(PQcmdTuples(res)) > 0)
        log_info("outbox", "%s: deleted %s rows published more than %s s ago", r->table,
                 PQcmdTuples(res), secs);
    PQclear(res);
    int64_t every = r->cfg.retention_s * 1000 < RELAY_RETENTION_MS ? r->cfg.retention_s * 1000
                                                                   : RELAY_RETENTION_MS;
    r->next_prune = now_ms() + every;
}

/* Marks the accepted rows published: "{1,2,3}". */
static int mark(outbox_relay_t *r, PGresult *rows, const bool *ok, int n, int *marked)
{
    buf_t ids;
    int rc = 0, count = 0;
    buf_init(&ids, 0);
    rc = buf_puts(&ids, "{");
    for (int i = 0; i < n && rc == 0; i++) {
        if (!ok[i])
            continue;
        rc = buf_printf(&ids, "%s%s", count ? "," : "", PQgetvalue(rows, i, 0));
        count++;
    }
    if (rc == 0)
        rc = buf_puts(&ids, "}");
    if (rc == 0 && count > 0) {
        const char *p[] = {ids.data};
        rc = db_query_prepared(r->db, r->mark_sql, 1, p, NULL);
    }
    *marked = rc == 0 ? count : 0;
    buf_dispose(&ids);
    return rc;
}

/* One round: the oldest pending rows to the bus. Returns how many were published, or -1 after
 * a failure (of the bus or the database). */
static int round_trip(outbox_relay_t *r)
{
    PGresult *rows = NULL;
    char limit[16];
    const char *p[] = {limit};
    bus_message_t *msgs = NULL;
    bool *ok = NULL;
    int n, published = -1, marked = 0;

    snprintf(limit, sizeof(limit), "%d", r->cfg.batch);
    if (db_query_prepared(r->db, r->select_sql, 1, p, &rows) != 0)
        goto out;
    n = PQntuples(rows);
    if (n == 0) {
        published = 0;
        goto out;
    }
    msgs = xcalloc((size_t)n, sizeof(*msgs));
    ok = xcalloc((size_t)n, sizeof(*ok));
    for (int i = 0; i < n; i++) {
        msgs[i].topic = PQgetvalue(rows, i, 1);
        msgs[i].key = PQgetisnull(rows, i, 2) ? NULL : PQgetvalue(rows, i, 2);
        msgs[i].event = PQgetvalue(rows, i, 3);
        msgs[i].len = (size_t)PQgetlength(rows, i, 3);
    }
    int brc = bus_publish(r->bus, msgs, (size_t)n, ok, NULL);
    /* Mark what the bus took, even after a partial failure, so that it is not sent again. */
    if (mark(r, rows, ok, n, &marked) != 0) {
        log_warn("outbox", "%s: %d rows published but not marked; they will be sent again",
                 r->table, marked);
        goto out;
    }
    metrics_counter_add(r->published, (uint64_t)marked);
    if (brc != 0) {
        metrics_counter_add(r->failed, (uint64_t)(n - marked));
        log_warn("outbox", "%s: %d of %d events not accepted (%s); retrying with backoff", r->table,
                 n - marked, n, todo_err_code(brc));
        goto out;
    }
    published = n;
out:
    PQclear(rows);
    free(msgs);
    free(ok);
    return published;
}

/* The pause after a failed round. When the sidecar could not be reached at all (no HTTP status),
 * its outbound health is probed every RELAY_PROBE_MS, so that publishing resumes as soon as it is
 * back rather than at the end of the pause; a sidecar that answered (the broker is down, say)
 * gets the whole pause. */
static void backoff_wait(outbox_relay_t *r, int64_t ms)
{
    dapr_t *d = bus_dapr(r->bus);
    if (dapr_status(d) != 0) {
        wait_for(r, -1, ms);
        return;
    }
    for (int64_t waited = 0; waited < ms && !atomic_load(&r->stopping); waited += RELAY_PROBE_MS) {
        wait_for(r, -1, ms - waited < RELAY_PROBE_MS ? ms - waited : RELAY_PROBE_MS);
        if (dapr_outbound_healthy(d) == 0)
            return;
    }
}

static bool draining_done(outbox_relay_t *r)
{
    return atomic_load(&r->stopping) && now_ms() >= atomic_load(&r->drain_deadline);
}

static void *relay_main(void *arg)
{
    outbox_relay_t *r = arg;
    int64_t backoff = 0;

    log_set_trace(NULL);
    while (!draining_done(r)) {
        if (!still_leader(r)) {
            if (atomic_load(&r->stopping))
                break; /* a standby has nothing to drain */
            if (!take_lead(r)) {
                wait_for(r, -1, RELAY_STANDBY_MS);
                continue;
            }
            backoff = 0;
        }
        (void)consume_notifies(r);
        int64_t now = now_ms();
        if (now >= r->next_stats)
            refresh_stats(r);
        if (now >= r->next_prune && r->cfg.retention_s > 0)
            prune(r);
        if (!still_leader(r))
            continue; /* the queries above found the session gone: the lock with it */

        int published = round_trip(r);
        if (published < 0) {
            if (atomic_load(&r->stopping))
                break; /* the bus is down: what is left waits for the next start */
            backoff = backoff ? backoff * 2 : RELAY_BACKOFF_MIN;
            if (backoff > r->cfg.backoff_max_ms)
                backoff = r->cfg.backoff_max_ms;
            backoff_wait(r, backoff);
            continue;
        }
        backoff = 0;
        if (published == r->cfg.batch)
            continue; /* a backlog: straight on */
        if (published > 0)
            refresh_stats(r);
        if (atomic_load(&r->stopping))
            break; /* drained */
        if (consume_notifies(r) > 0)
            continue; /* changes committed while this round ran */
        PGconn *c = db_conn(r->db);
        wait_for(r, c ? PQsocket(c) : -1, r->cfg.poll_ms);
    }
    if (r->leader)
        refresh_stats(r);
    lose_lead(r, "stopping");
    return NULL;
}

outbox_relay_t *outbox_relay_start(const outbox_config_t *cfg)
{
    outbox_relay_t *r = xcalloc(1, sizeof(*r));
    int fds[2];
    char labels[160];

    r->cfg = *cfg;
    r->url = xstrdup(cfg->database_url);
    r->table = xstrdup(cfg->table);
    r->channel = xstrdup(cfg->channel);
    r->pubsub = xstrdup(cfg->bus.pubsub ? cfg->bus.pubsub : "pubsub");
    r->host = cfg->bus.dapr.host ? xstrdup(cfg->bus.dapr.host) : NULL;
    r->token = cfg->bus.dapr.api_token ? xstrdup(cfg->bus.dapr.api_token) : NULL;
    r->cfg.database_url = r->url;
    r->cfg.table = r->table;
    r->cfg.channel = r->channel;
    r->cfg.bus.pubsub = r->pubsub;
    r->cfg.bus.dapr.host = r->host;
    r->cfg.bus.dapr.api_token = r->token;
    if (r->cfg.batch <= 0)
        r->cfg.batch = 200;
    if (r->cfg.poll_ms <= 0)
        r->cfg.poll_ms = 1000;
    if (r->cfg.retention_s == 0)
        r->cfg.retention_s = 86400;
    if (r->cfg.backoff_max_ms <= 0)
        r->cfg.backoff_max_ms = 5000;
    r->wake_rd = r->wake_wr = -1;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error("outbox", "pipe: %s", strerror(errno));
        goto fail;
    }
    r->wake_rd = fds[0];
    r->wake_wr = fds[1];
    r->db = db_new(r->url);
    db_set_application_name(r->db, "todo-outbox-relay");
    r->bus = bus_new(&r->cfg.bus);
    if (!r->bus)
        goto fail;

    /* The lock key: a hash of the table's name, the same in every replica. */
    uint64_t h = 1469598103934665603ull;
    for (const char *c = r->table; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    r->lock_key = (int64_t)(h >> 1);
    /* The traceid attribute is added as a copy of traceparent: a CloudEvent without it gets
     * the publish request's trace context from the sidecar instead of its own (§1.3). */
    snprintf(r->select_sql, sizeof(r->select_sql),
             "SELECT id, topic, partition_key, (CASE WHEN event ? 'traceparent' AND "
             "NOT event ? 'traceid' THEN event || jsonb_build_object('traceid', "
             "event->'traceparent') ELSE event END)::text "
             "FROM %s WHERE published_at IS NULL ORDER BY id LIMIT $1::integer",
             r->table);
    snprintf(r->mark_sql, sizeof(r->mark_sql),
             "UPDATE %s SET published_at = now() WHERE id = ANY ($1::bigint[])", r->table);
    snprintf(r->stats_sql, sizeof(r->stats_sql),
             "SELECT count(*), COALESCE((extract(epoch FROM now() - min(created_at)) * 1000)"
             "::bigint, 0) FROM %s WHERE published_at IS NULL",
             r->table);
    snprintf(r->prune_sql, sizeof(r->prune_sql),
             "DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE published_at < now() - "
             "make_interval(secs => $1::double precision) ORDER BY id LIMIT %d)",
             r->table, r->table, RELAY_PRUNE_ROWS);

    snprintf(labels, sizeof(labels), "table=\"%s\"", r->table);
    r->published = metrics_counter("outbox_published_total",
                                   "Outbox events the bus accepted and marked published", labels);
    r->failed =
        metrics_counter("outbox_failed_total",
                        "Outbox events a publish attempt failed for (retried later)", labels);
    register_gauges(labels, r);

    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        log_error("outbox", "cannot start the relay thread");
        goto fail;
    }
    log_info("outbox", "relay for %s started (batch %d, poll %lld ms)", r->table, r->cfg.batch,
             (long long)r->cfg.poll_ms);
    return r;
fail:
    bus_free(r->bus);
    db_free(r->db);
    if (r->wake_rd >= 0)
        close(r->wake_rd);
    if (r->wake_wr >= 0)
        close(r->wake_wr);
    free(r->url);
    free(r->table);
    free(r->channel);
    free(r->pubsub);
    free(r->host);
    free(r->token);
    free(r);
    return NULL;
}

void outbox_relay_signal(outbox_relay_t *r, db_t *db, const char *channel)
{
    if (r && atomic_load(&r->is_leader) && !atomic_load(&r->stopping)) {
        ssize_t w = write(r->wake_wr, "", 1); /* a full pipe is a wake-up already pending */
        (void)w;
        return;
    }
    /* The leader runs elsewhere (or not yet): the table's NOTIFY wakes it, in a statement of
     * its own after the commit, so that the notification queue's lock is not held through the
     * commit of the change (PostgreSQL serializes the commits of NOTIFYing transactions). */
    const char *p[] = {channel};
    if (db_query(db, "SELECT pg_notify($1, '')", 1, p, NULL) != 0)
        log_debug("outbox", "NOTIFY %s failed; the relay polls", channel);
}

void outbox_relay_stop(outbox_relay_t *r, int64_t drain_ms)
{
    if (!r)
        return;
    atomic_store(&r->drain_deadline, now_ms() + (drain_ms > 0 ? drain_ms : 0));
    atomic_store(&r->stopping, true);
    ssize_t w = write(r->wake_wr, "", 1);
    (void)w;
    pthread_join(r->thread, NULL);
    /* The gauges point at r: they read zero from now on. */
    char labels[160];
    snprintf(labels, sizeof(labels), "table=\"%s\"", r->table);
    register_gauges(labels, NULL);
    log_info("outbox", "relay for %s stopped", r->table);
    bus_free(r->bus);
    db_free(r->db);
    close(r->wake_rd);
    close(r->wake_wr);
    free(r->url);
    free(r->table);
    free(r->channel);
    free(r->pubsub);
    free(r->host);
    free(r->token);
    free(r);
}
