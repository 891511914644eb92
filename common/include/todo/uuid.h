/* UUIDs through libuuid: random (v4) ids, name-based (v5) deterministic ids, validation. */
#ifndef TODO_UUID_H
#define TODO_UUID_H
#include <stdbool.h>

#define TODO_UUID_LEN 37 /* 36 characters and the NUL */

/* Random UUID, lower-case text. */
void todo_uuid_v4(char out[TODO_UUID_LEN]);
/* Name-based UUID (SHA-1, version 5) of name in namespace ns (a UUID text); false when ns is not
 * a UUID. */
bool todo_uuid_v5(const char *ns, const char *name, char out[TODO_UUID_LEN]);
/* True for the canonical 8-4-4-4-12 hex form (hex digits of either case, nothing around it). */
bool todo_uuid_valid(const char *s);

#endif
