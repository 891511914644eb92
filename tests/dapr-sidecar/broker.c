/* broker_t: built from a pub/sub component by its type (pubsub.kafka, pubsub.redis) and used
 * through the implementation's operations (broker_impl.h). */
#include <stdlib.h>
#include <string.h>

#include "broker_impl.h"
#include "todo/alloc.h"

broker_t *broker_new(const res_component_t *c, const char *app_id, char **err)
{
    if (!c || !c->type) {
        *err = xstrdup("pub/sub component without a type");
        return NULL;
    }
    if (strcmp(c->type, "pubsub.kafka") == 0)
        return broker_kafka_new(c, app_id, err);
    if (strcmp(c->type, "pubsub.redis") == 0)
        return broker_redis_new(c, app_id, err);
    *err = xasprintf("component %s: pub/sub type %s is not supported (pubsub.kafka, pubsub.redis)",
                     c->name ? c->name : "?", c->type);
    return NULL;
}

void broker_free(broker_t *b)
{
    if (b)
        b->ops->free(b);
}

int broker_publish(broker_t *b, const broker_msg_t *msg)
{
    return b->ops->publish(b, msg);
}

int broker_subscribe(broker_t *b, const char *topic, broker_handler_fn fn, void *arg)
{
    return b->ops->subscribe(b, topic, fn, arg);
}

int broker_start(broker_t *b)
{
    return b->ops->start ? b->ops->start(b) : 0;
}

void broker_stop(broker_t *b)
{
    if (b)
        b->ops->stop(b);
}
