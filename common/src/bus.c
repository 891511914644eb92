/* The bus over the Dapr sidecar's pub/sub API; see bus.h. */
#include "todo/bus.h"

#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"

#define BUS_BULK_MAX 256 /* entries per bulk request */

struct bus {
    char *pubsub;
    dapr_t *dapr;
};

bus_t *bus_new(const bus_config_t *cfg)
{
    bus_t *bus = xcalloc(1, sizeof(*bus));
    bus->pubsub = xstrdup(cfg->pubsub && *cfg->pubsub ? cfg->pubsub : "pubsub");
    bus->dapr = dapr_new(&cfg->dapr);
    if (!bus->dapr) {
        bus_free(bus);
        return NULL;
    }
    return bus;
}

void bus_free(bus_t *bus)
{
    if (!bus)
        return;
    dapr_free(bus->dapr);
    free(bus->pubsub);
    free(bus);
}

dapr_t *bus_dapr(bus_t *bus)
{
    return bus->dapr;
}

int bus_publish(bus_t *bus, const bus_message_t *msgs, size_t n, bool *ok, const char *traceparent)
{
    dapr_bulk_entry_t entries[BUS_BULK_MAX];
    int first_rc = 0;
    size_t i = 0;

    while (i < n) {
        size_t run = 1;
        while (i + run < n && run < BUS_BULK_MAX && strcmp(msgs[i + run].topic, msgs[i].topic) == 0)
            run++;
        int rc;
        if (run == 1) {
            rc = dapr_publish(bus->dapr, bus->pubsub, msgs[i].topic, msgs[i].event, msgs[i].len,
                              msgs[i].key, traceparent);
            if (ok)
                ok[i] = rc == 0;
        } else {
            for (size_t k = 0; k < run; k++)
                entries[k] =
                    (dapr_bulk_entry_t){msgs[i + k].event, msgs[i + k].len, msgs[i + k].key};
            rc = dapr_publish_bulk(bus->dapr, bus->pubsub, msgs[i].topic, entries, run, ok + i);
        }
        if (rc != 0 && first_rc == 0)
            first_rc = rc;
        if (rc == TODO_EUNAVAILABLE && ok && !ok[i]) {
            /* The sidecar or broker is down: the rest would fail the same way. */
            for (size_t k = i + run; k < n; k++)
                ok[k] = false;
            break;
        }
        i += run;
    }
    return first_rc;
}
