/* PostgreSQL access through libpq: one connection per loop thread, reconnection after the server
 * restarts, parameterized queries only, a transaction helper, and migrations applied at start-up
 * under an advisory lock. */
#ifndef TODO_DB_H
#define TODO_DB_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include "todo/error.h"

typedef struct db db_t;

/* new: does not connect yet. url is copied. */
db_t *db_new(const char *url);
void db_free(db_t *db);
/* Session settings applied at every (re)connection: statement_timeout in milliseconds (default
 * 10000, 0 disables) and the application_name used unless the URL names one (default "todo";
 * copied). They take effect at the next connection. */
void db_set_statement_timeout(db_t *db, int ms);
void db_set_application_name(db_t *db, const char *name);

/* Connects (or reconnects when the connection is bad); bounded by a connect timeout.
 * TODO_EUNAVAILABLE when the server cannot be reached. Reconnection attempts are spaced at least
 * 250 ms apart; a call within that window fails at once with TODO_EUNAVAILABLE. */
int db_connect(db_t *db) TODO_WUR;
/* True when the connection is up (no round trip). */
bool db_connected(const db_t *db);
/* A number that changes with every new connection: session state (LISTEN, advisory locks) set
 * up under one number is gone once it differs. */
unsigned db_session(const db_t *db);
/* SELECT 1 round trip; TODO_EUNAVAILABLE when the database does not answer. */
int db_ping(db_t *db) TODO_WUR;

/* Runs sql with text parameters (NULL entries are SQL NULL). On success *out (new, PQclear) holds
 * the result (may be NULL when out is NULL). Errors: TODO_EUNAVAILABLE (connection lost, server
 * shutting down, timeout), TODO_ECONFLICT (unique violation), TODO_EINTERNAL (anything else); the
 * SQLSTATE and constraint of the last error are kept for db_sqlstate/db_constraint. Reconnects
 * first if the connection is bad and not inside a transaction. */
int db_query(db_t *db, const char *sql, int nparams, const char *const *params,
             PGresult **out) TODO_WUR;
/* db_query for the statements run all the time: sql is prepared (parsed and planned) once per
 * connection, on first use and again after a reconnection, and then only executed. Statements
 * are told apart by their text; past the first 32 distinct ones, sql runs as with db_query. */
int db_query_prepared(db_t *db, const char *sql, int nparams, const char *const *params,
                      PGresult **out) TODO_WUR;
/* SQLSTATE ("23505") and constraint name of the last failed query, "" when none (borrowed). */
const char *db_sqlstate(const db_t *db);
const char *db_constraint(const db_t *db);

/* Runs fn inside BEGIN … COMMIT. fn returns 0 to commit or an error to roll back (that error is
 * returned). Serialization failures and deadlocks are retried up to 3 times. BEGIN travels with
 * fn's first statement (one round trip for both), and a transaction that ran no statement sends
 * nothing. */
typedef int (*db_tx_fn)(db_t *db, void *arg);
int db_tx(db_t *db, db_tx_fn fn, void *arg) TODO_WUR;
/* True inside db_tx. */
bool db_in_tx(const db_t *db);

/* LISTEN support: the raw connection for notifications (borrowed; NULL when not connected).
 * Inside db_tx the transaction has begun on it. */
PGconn *db_conn(db_t *db);

/* One migration: its number, name and SQL text (may hold several statements). */
typedef struct {
    int version;
    const char *name;
    const char *sql;
} db_migration_t;

/* Applies, in order, every migration not yet recorded in <schema>.schema_migrations, each in its
 * own transaction, all under pg_advisory_lock on the schema name so that concurrent replicas
 * migrate once. Creates the schema and the table when missing. */
int db_migrate(db_t *db, const char *schema, const db_migration_t *migrations, size_t n) TODO_WUR;

#endif
