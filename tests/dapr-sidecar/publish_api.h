/* The pure parts of the publish API (publish_api.c): request metadata from the query string
 * (DAPR-CONTRACT §0.2), the rawPayload flag (§1.1) and publishing topic scopes (§1.5). */
#ifndef SIDECAR_PUBLISH_API_H
#define SIDECAR_PUBLISH_API_H
#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "resources.h"

/* Request metadata: one entry per query parameter named `metadata.<key>` (prefix stripped,
 * '+' and %XX decoded as Go's url.ParseQuery does, first value of a key wins, pairs that do not
 * decode or contain ';' skipped), at most max entries (the rest are ignored). Names and values
 * are new (publish_metadata_free). Returns the count. */
size_t publish_query_metadata(const char *query, broker_header_t *out, size_t max);
void publish_metadata_free(broker_header_t *meta, size_t n);

/* strconv.ParseBool of metadata rawPayload (absent or "" = false); false when not a bool. */
bool publish_raw_payload(const broker_header_t *meta, size_t n, bool *raw);

/* dapr pkg/scopes + isOperationAllowed for publishing: allowedTopics, protectedTopics and
 * publishingScopes of component c (§1.5). */
bool publish_topic_allowed(const res_component_t *c, const char *app_id, const char *topic);

#endif
