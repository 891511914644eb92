/* The inside of a broker_t: each implementation (broker_kafka.c, broker_redis.c) embeds struct
 * broker as its first member and fills in its operations; broker.c dispatches through them. */
#ifndef SIDECAR_BROKER_IMPL_H
#define SIDECAR_BROKER_IMPL_H
#include "broker.h"

struct broker_ops {
    /* Stops consuming (as stop) and frees everything; b is never NULL. */
    void (*free)(broker_t *b);
    int (*publish)(broker_t *b, const broker_msg_t *msg) TODO_WUR;
    int (*subscribe)(broker_t *b, const char *topic, broker_handler_fn fn, void *arg) TODO_WUR;
    /* NULL when consuming starts at subscribe. */
    int (*start)(broker_t *b) TODO_WUR;
    void (*stop)(broker_t *b);
};

struct broker {
    const struct broker_ops *ops; /* borrowed, static */
};

/* Constructors per component type; NULL with *err (new) set on a configuration error. */
broker_t *broker_kafka_new(const res_component_t *c, const char *app_id, char **err);
broker_t *broker_redis_new(const res_component_t *c, const char *app_id, char **err);

#endif
