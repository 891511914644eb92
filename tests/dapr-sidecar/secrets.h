/* The secret stores of the double: secretstores.local.env (secret name = environment variable) and
 * secretstores.local.file (a JSON file, nested objects flattened with nestedSeparator). Used to
 * resolve secretKeyRef at load (DAPR-CONTRACT §9.2) and by a secrets API (§8.1). */
#ifndef SIDECAR_SECRETS_H
#define SIDECAR_SECRETS_H
#include <stdbool.h>

#include "resources.h"
#include "todo/error.h"
#include "todo/json.h"

#define SECRETS_MAX_FILE (4u * 1024u * 1024u) /* largest secretsFile read */

/* True when c is a component of a supported secret store type. */
bool secrets_is_store(const res_component_t *c);

/* Secret `name` of store as a JSON object {key: string value} (new). local.env answers
 * {name: value of $prefix+name} ("" when unset or when the variable is APP_API_TOKEN or DAPR_*,
 * as Dapr's env store); local.file answers {name: value} or, with multiValued "true", the
 * flattened keys below the top-level key name. TODO_ENOT_FOUND when the file has no such secret;
 * other errors with a message in *err (new). */
int secrets_get(const res_component_t *store, const char *name, json_t **out, char **err) TODO_WUR;

/* Every secret of store as {name: {key: value}} (new); errors as secrets_get. */
int secrets_bulk(const res_component_t *store, json_t **out, char **err) TODO_WUR;

#endif
