/* The message bus the services publish to: a small interface over the transport, so that the
 * services never name it. Today the transport is the Dapr sidecar's pub/sub API (dapr.h); the
 * direct-Kafka mode slots in behind the same calls. One bus per thread. */
#ifndef TODO_BUS_H
#define TODO_BUS_H
#include <stdbool.h>
#include <stddef.h>

#include "todo/dapr.h"
#include "todo/error.h"

typedef struct bus bus_t;

typedef struct {
    const char *pubsub; /* the pub/sub component (PUBSUB_NAME) */
    dapr_config_t dapr; /* the sidecar */
} bus_config_t;

/* One message: a CloudEvent's JSON text for topic, with its partition key (NULL = none). */
typedef struct {
    const char *topic;
    const char *key;
    const char *event;
    size_t len;
} bus_message_t;

/* new (settings copied); NULL when the transport cannot be set up. */
bus_t *bus_new(const bus_config_t *cfg);
void bus_free(bus_t *bus);

/* Publishes msgs in order: a run of messages for one topic goes in one bulk request. ok[i] tells
 * which were accepted (ok may be NULL for n == 1). 0 when all were; else the first error
 * (TODO_EUNAVAILABLE when the transport is down). traceparent (may be NULL) goes with single
 * messages. */
int bus_publish(bus_t *bus, const bus_message_t *msgs, size_t n, bool *ok,
                const char *traceparent) TODO_WUR;

/* The Dapr client under the bus (borrowed), for state and jobs. */
dapr_t *bus_dapr(bus_t *bus);

#endif
