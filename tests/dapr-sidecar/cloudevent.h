/* CloudEvent envelopes as daprd builds them: wrapping a published body (DAPR-CONTRACT §1.2),
 * completing an app's own CloudEvent (§1.3), converting bulk entries (§1.4), wrapping a
 * rawPayload delivery (§3.1) and reading `expiration`. Pure functions; JSON is written the way
 * Go's encoding/json writes a map (keys sorted, <, > and & escaped). */
#ifndef SIDECAR_CLOUDEVENT_H
#define SIDECAR_CLOUDEVENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "todo/error.h"
#include "todo/json.h"

#define CLOUDEVENT_DEFAULT_SOURCE "Dapr"
#define CLOUDEVENT_DEFAULT_TYPE   "com.dapr.event.sent"
#define CLOUDEVENT_CONTENT_TYPE   "application/cloudevents+json"

/* What one publish hands to the envelope (all borrowed). */
typedef struct {
    const char *app_id; /* source; NULL or "" → "Dapr" */
    const char *pubsubname;
    const char *topic;
    const char
        *content_type;       /* request Content-Type (bulk: the entry's contentType); NULL = none */
    const char *traceparent; /* W3C traceparent of the request span, "" when none */
    const char *tracestate;  /* "" when none */
    const void *data;
    size_t len;
    const broker_header_t *meta; /* request metadata (cloudevent.*, ttlInSeconds, …) */
    size_t nmeta;
    int64_t now_usec; /* wall clock for `time` and `expiration` */
} cloudevent_req_t;

/* cc contenttype.isContentType: content_type lower-cased equals expected, or does up to its
 * first ';' (no trimming). NULL is no match. */
bool cloudevent_content_type_is(const char *content_type, const char *expected);

/* The value of a metadata key (exact match, first entry wins; borrowed) or NULL. */
const char *cloudevent_meta(const broker_header_t *meta, size_t nmeta, const char *key);

/* TTL of the request metadata (`ttlInSeconds`, else `ttl`): integer seconds (> 0) or a Go
 * duration ("20s", > 0). Returns true with *ttl_usec set, false when absent or invalid (daprd
 * ignores an invalid TTL when it adds `expiration`). */
bool cloudevent_ttl(const broker_header_t *meta, size_t nmeta, int64_t *ttl_usec);

/* time.Now().Format(time.RFC3339) in the local zone: "2026-11-22T09:04:05+01:00" or "…Z". */
void cloudevent_format_local_time(int64_t usec, char out[32]);

/* The JSON bytes published for r (new in *out, length *len): §1.2 wrapping when the content type
 * is not application/cloudevents+json, else §1.3 completion of the app's event; then
 * `expiration` when r's metadata has a TTL (Kafka and Redis lack the TTL feature). §1.3 with a
 * body that is not a JSON object (or null) → TODO_EINVALID_JSON and *err (new) says why. */
int cloudevent_envelope(const cloudevent_req_t *r, char **out, size_t *len, char **err) TODO_WUR;

/* DAPR-CONTRACT §1.4 (ConvertEventToBytes): the bytes of a bulk entry's event (borrowed) for its
 * contentType: application/octet-stream → base64 string decoded; text/... and application/xml →
 * the string itself; application/json and application/cloudevents+json → JSON-marshalled; any
 * other (or NULL) → error. TODO_EBAD_REQUEST with *err (new) on failure. */
int cloudevent_bulk_event_bytes(const json_t *event, const char *content_type, char **out,
                                size_t *len, char **err) TODO_WUR;

/* §3.1 rawPayload subscription: the CE delivered for broker bytes (new, *len), with a new id,
 * data_base64 and traceid/traceparent/tracestate only when given (NULL = absent). */
char *cloudevent_from_raw_payload(const void *data, size_t len, const char *topic,
                                  const char *pubsubname, const char *traceparent,
                                  const char *tracestate, size_t *out_len);

/* True when the event (an object) has an `expiration` string that parses as RFC 3339 and lies
 * before now_usec (§3.1: expired messages are dropped). */
bool cloudevent_expired(const json_t *event, int64_t now_usec);

/* Go encoding/json style compact dump of v (new, *len): object keys sorted, '<' '>' '&' and
 * U+2028/U+2029 escaped as \u003c…, other escapes in lower-case hex. */
char *cloudevent_dump(const json_t *v, size_t *len);

/* Base64 (standard alphabet, padded) of len bytes (new, NUL-terminated). */
char *cloudevent_base64(const void *data, size_t len);
/* Strict decoding as Go's base64.StdEncoding (padding required; '\r' and '\n' skipped): false
 * when s is not valid base64; *out is new. */
bool cloudevent_base64_decode(const char *s, size_t slen, char **out, size_t *len);

#endif
