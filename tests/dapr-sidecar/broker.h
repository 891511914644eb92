/* A pub/sub broker behind one interface: Kafka (librdkafka) or Redis Streams (hiredis), built from
 * a Component. Publishing is synchronous (returns once the broker accepted the record). Consuming
 * calls a handler per message on the broker's own threads with the component's delivery
 * semantics (DAPR-CONTRACT §3.3, §3.4, §3.6): Kafka hands one partition's messages over one at a
 * time and retries a failed one every backOffDuration (5 s) forever by default; Redis uses
 * `concurrency` workers and XACKs a failed message unless it overran processingTimeout. */
#ifndef SIDECAR_BROKER_H
#define SIDECAR_BROKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resources.h"
#include "todo/error.h"

#define BROKER_MAX_HEADERS 64

typedef struct {
    const char *name;
    const char *value;
} broker_header_t;

typedef struct {
    const char *topic;
    const char *key; /* record key (partitionKey), may be NULL */
    const void *value;
    size_t len;
    broker_header_t headers[BROKER_MAX_HEADERS]; /* record headers / message metadata */
    size_t nheaders;
    /* Consuming only: time_mono_usec() by which the component expects the handler's answer,
     * 0 = none. Redis sets it to start + processingTimeout (Dapr's handler context deadline,
     * DAPR-CONTRACT §3.3); a handler past it should give up and return BROKER_FAIL. */
    int64_t deadline_usec;
} broker_msg_t;

/* What a handler decided about a message. */
typedef enum {
    BROKER_ACK,  /* done (delivered, dropped or dead-lettered): commit / XACK */
    BROKER_FAIL, /* error returned to the component: its own retry/redelivery applies */
} broker_result_t;

typedef broker_result_t (*broker_handler_fn)(const broker_msg_t *msg, void *arg);

typedef struct broker broker_t;

/* new: from a pubsub.kafka or pubsub.redis component for app_id (consumer group default). */
broker_t *broker_new(const res_component_t *c, const char *app_id, char **err);
void broker_free(broker_t *b);
int broker_publish(broker_t *b, const broker_msg_t *msg) TODO_WUR;
/* Subscribes topic in the component's consumer group; handler (borrowed, as arg) runs on broker
 * threads. Redis consumes from here on. Kafka consumes the topics subscribed before broker_start
 * from broker_start on, with one join of the group (one member per component, as daprd's Kafka
 * component); a topic subscribed after it is consumed at once (the group rebalances). */
int broker_subscribe(broker_t *b, const char *topic, broker_handler_fn fn, void *arg) TODO_WUR;
/* Consumes every topic subscribed so far (see broker_subscribe). */
int broker_start(broker_t *b) TODO_WUR;
/* Stops consuming: in-flight handlers finish first. */
void broker_stop(broker_t *b);

#endif
