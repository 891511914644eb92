/* Unit tests of broker_kafka.c's component metadata checks (no Kafka needed: building the broker
 * connects to nothing until it publishes or subscribes). */
#include <stdlib.h>
#include <string.h>

#include "broker_impl.h"
#include "check.h"
#include "todo/log.h"

/* broker_kafka_new over pairs of metadata; returns true when it built a broker. The error text
 * (when it failed) must mention want. */
static bool build(const char *const *kv, const char *want)
{
    res_component_t c;
    char *err = NULL;
    broker_t *b;

    memset(&c, 0, sizeof(c));
    c.name = (char *)"pubsub";
    c.type = (char *)"pubsub.kafka";
    for (size_t i = 0; kv[i]; i += 2) {
        c.meta[c.nmeta].name = (char *)kv[i];
        c.meta[c.nmeta++].value = (char *)kv[i + 1];
    }
    b = broker_kafka_new(&c, "app-1", &err);
    if (b) {
        CHECK(err == NULL);
        b->ops->free(b);
        return true;
    }
    CHECK(err != NULL);
    if (want && err && !strstr(err, want)) {
        fprintf(stderr, "error \"%s\" does not mention \"%s\"\n", err, want);
        CHECK(0);
    }
    free(err);
    return false;
}

#define OK(...)                                  \
    do {                                         \
        const char *kv_[] = {__VA_ARGS__, NULL}; \
        CHECK(build(kv_, NULL));                 \
    } while (0)
#define FAILS(want, ...)                         \
    do {                                         \
        const char *kv_[] = {__VA_ARGS__, NULL}; \
        CHECK(!build(kv_, want));                \
    } while (0)

int main(void)
{
    log_init("test_broker_kafka", LOG_LEVEL_ERROR);

    OK("brokers", "127.0.0.1:1");
    OK("brokers", "127.0.0.1:1, 127.0.0.1:2", "consumerGroup", "g", "clientID", "c",
       "initialOffset", "oldest");
    OK("brokers", "127.0.0.1:1", "initialOffset", "newest", "authType", "none");
    FAILS("brokers", "consumerGroup", "g");
    FAILS("initialOffset", "brokers", "127.0.0.1:1", "initialOffset", "earliest");

    /* SASL: authType password with user and password; mechanisms PLAIN, SHA-256, SHA-512. */
    OK("brokers", "127.0.0.1:1", "authType", "password", "saslUsername", "u", "saslPassword", "p",
       "disableTls", "true");
    OK("brokers", "127.0.0.1:1", "authType", "password", "saslUsername", "u", "saslPassword", "p",
       "saslMechanism", "SHA-512", "disableTls", "true");
    OK("brokers", "127.0.0.1:1", "authType", "password", "saslUsername", "u", "saslPassword", "p",
       "saslMechanism", "SHA-256"); /* over TLS */
    FAILS("saslPassword", "brokers", "127.0.0.1:1", "authType", "password", "saslUsername", "u");
    FAILS("saslMechanism", "brokers", "127.0.0.1:1", "authType", "password", "saslUsername", "u",
          "saslPassword", "p", "saslMechanism", "GSSAPI");
    FAILS("authType", "brokers", "127.0.0.1:1", "authType", "mtls");

    /* Retry settings: Go durations or bare milliseconds. */
    OK("brokers", "127.0.0.1:1", "backOffPolicy", "exponential", "backOffInitialInterval", "250ms",
       "backOffMaxInterval", "1m30s", "backOffMaxRetries", "3");
    OK("brokers", "127.0.0.1:1", "backOffDuration", "100", "backOffMaxRetries", "-1",
       "consumeRetryEnabled", "false");
    OK("brokers", "127.0.0.1:1", "backOffDuration", "1.5s");
    FAILS("backOffDuration", "brokers", "127.0.0.1:1", "backOffDuration", "5 s");
    FAILS("backOffDuration", "brokers", "127.0.0.1:1", "backOffDuration", "5x");
    FAILS("backOffDuration", "brokers", "127.0.0.1:1", "backOffDuration", "-5s");
    FAILS("backOffPolicy", "brokers", "127.0.0.1:1", "backOffPolicy", "linear");
    FAILS("backOffMaxRetries", "brokers", "127.0.0.1:1", "backOffMaxRetries", "-2");
    FAILS("consumeRetryEnabled", "brokers", "127.0.0.1:1", "consumeRetryEnabled", "maybe");
    FAILS("sessionTimeout", "brokers", "127.0.0.1:1", "sessionTimeout", "10ms");
    FAILS("excludeHeaderMetaRegex", "brokers", "127.0.0.1:1", "excludeHeaderMetaRegex", "(");
    OK("brokers", "127.0.0.1:1", "excludeHeaderMetaRegex", "^cloudevent\\.", "escapeHeaders",
       "true", "sessionTimeout", "10s", "heartbeatInterval", "3s");
    return check_exit();
}
