/* Delivery of one broker message to the app for one subscription (DAPR-CONTRACT §3): route by the
 * subscription's rules, POST the broker bytes as application/cloudevents+json with the message
 * metadata as headers, judge the reply by the table of §3.2, retry per the component's inbound
 * Resiliency policy (§4), then dead-letter to deadLetterTopic (§3.3) or hand the error back to
 * the component. Bounded by --app-max-concurrency. */
#ifndef SIDECAR_DELIVERY_H
#define SIDECAR_DELIVERY_H
#include <stddef.h>

#include "app_channel.h"
#include "broker.h"
#include "sidecar.h"

/* Handler for broker_subscribe; arg is a delivery_target_t. */
typedef struct {
    sidecar_t *sidecar;
    sidecar_pubsub_t *pubsub;
    const res_subscription_t *subscription;
} delivery_target_t;

broker_result_t delivery_handle(const broker_msg_t *msg, void *arg);

/* Publishes bytes to a topic of a pub/sub exactly as received (dead-lettering). */
int delivery_dead_letter(sidecar_t *s, sidecar_pubsub_t *ps, const char *topic,
                         const broker_msg_t *msg) TODO_WUR;

/* What the app's reply means (DAPR-CONTRACT §3.2, postman Deliver). */
typedef enum {
    DELIVERY_SUCCESS, /* ack */
    DELIVERY_RETRY,   /* retriable error: resiliency retry, then DLQ or the component */
    DELIVERY_DROP,    /* non-retriable: ack, to the DLQ when configured */
} delivery_verdict_t;

/* Judges one reply by the table of §3.2: 2xx with an empty, non-JSON or non-object body, {},
 * no/empty status or "SUCCESS" → SUCCESS; "RETRY" or any other status string (case-sensitive)
 * → RETRY; "DROP" → DROP; 404 → DROP; any other status → RETRY with *code = the status (for
 * matching.httpStatusCodes); a transport error → RETRY. *code is 0 when the error carries no
 * HTTP status. */
delivery_verdict_t delivery_judge(const app_response_t *r, int *code);

/* Header name of a message metadata key as daprd sends it: lower-cased, then Go's
 * CanonicalMIMEHeaderKey ("partitionKey" → "Partitionkey", "x-my-key" → "X-My-Key"; names
 * with bytes outside the token set stay lower-case). Written into out (size bytes). */
void delivery_header_name(const char *name, char *out, size_t size);

#endif
