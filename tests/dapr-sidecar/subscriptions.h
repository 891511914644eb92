/* The sidecar's subscriptions (DAPR-CONTRACT §2): parsing the app's reply to GET /dapr/subscribe,
 * checking the routing rules the double can evaluate, merging with the declarative ones, topic
 * scopes, and picking the route of a CloudEvent. The double evaluates only rule matches of the
 * form `event.type == "…"` (or an empty match); any other CEL expression refuses its
 * subscription with a log line, where daprd would evaluate it. */
#ifndef SIDECAR_SUBSCRIPTIONS_H
#define SIDECAR_SUBSCRIPTIONS_H
#include <stdbool.h>
#include <stddef.h>

#include "resources.h"
#include "sidecar.h"
#include "todo/json.h"

/* Parses the body of a 200 reply to GET /dapr/subscribe as Go's json.Decoder reads it into
 * []SubscriptionJSON: the first JSON value (what follows it is ignored), case-insensitive keys,
 * null = zero value, a wrong type anywhere fails the whole reply. Entries without any route are
 * dropped with a warning; entries whose rules the double cannot evaluate are refused with an
 * error log line. *out is new (subscriptions_free_list), *n its length; empty body, `null` and
 * `[]` give none. TODO_EINVALID_JSON with *err (new) when the reply is unusable. */
int subscriptions_parse(const char *body, size_t len, res_subscription_t **out, size_t *n,
                        char **err) TODO_WUR;
void subscriptions_free_list(res_subscription_t *list, size_t n);

/* True when match (trimmed) is empty or `event.type == "<string>"` (single or double quotes;
 * \\ \" \' escapes); then *type is the string (new) or NULL for the empty match. */
bool subscriptions_match_parse(const char *match, char **type);

/* True when the rules of sub can all be evaluated by the double; else *why (new) says why. */
bool subscriptions_supported(const res_subscription_t *sub, char **why);

/* Fills s->subscriptions with the programmatic ones (takes list; kept in s->programmatic) and
 * the declarative ones of s->res: a programmatic subscription wins over a declarative one for
 * the same pubsub+topic (§2); unsupported declarative rules are refused with a log line. */
void subscriptions_merge(sidecar_t *s, res_subscription_t *list, size_t n);
/* Frees s->programmatic and clears s->subscriptions. */
void subscriptions_dispose(sidecar_t *s);

/* True when app_id may subscribe to topic on component c: allowedTopics, protectedTopics and
 * subscriptionScopes (§1.5, dapr pkg/scopes). */
bool subscriptions_topic_allowed(const res_component_t *c, const char *app_id, const char *topic);

/* The path a CloudEvent (a JSON object, borrowed; NULL when the message is no object) is
 * delivered to (borrowed from sub): the first matching rule, else the default path; "" when
 * nothing matches (the message is acked and dropped, §2.1). NULL when a rule cannot be
 * evaluated (CEL "no such key": the event has no `type`), which is a delivery error. */
const char *subscriptions_route(const res_subscription_t *sub, const json_t *event);

#endif
