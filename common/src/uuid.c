/* UUIDs through libuuid: random v4 ids, name-based v5 ids, and strict checking of the text form. */
#include "todo/uuid.h"

#include <string.h>
#include <uuid/uuid.h>

void todo_uuid_v4(char out[TODO_UUID_LEN])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

bool todo_uuid_v5(const char *ns, const char *name, char out[TODO_UUID_LEN])
{
    uuid_t space, u;
    if (!todo_uuid_valid(ns) || uuid_parse(ns, space) != 0)
        return false;
    uuid_generate_sha1(u, space, name ? name : "", name ? strlen(name) : 0);
    uuid_unparse_lower(u, out);
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool todo_uuid_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < TODO_UUID_LEN - 1; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false;
    }
    return s[TODO_UUID_LEN - 1] == '\0';
}
