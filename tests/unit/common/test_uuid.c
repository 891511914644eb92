/* Unit test of common/src/uuid.c: v4 shape and randomness, v5 against the RFC 4122 namespace
 * vectors, and strict validation of the text form. */
#include <stdbool.h>

#include "check.h"
#include "todo/uuid.h"

#define NS_DNS "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
#define NS_URL "6ba7b811-9dad-11d1-80b4-00c04fd430c8"

int main(void)
{
    char a[TODO_UUID_LEN], b[TODO_UUID_LEN];
    todo_uuid_v4(a);
    todo_uuid_v4(b);
    CHECK_INT(strlen(a), 36);
    CHECK(todo_uuid_valid(a));
    CHECK(todo_uuid_valid(b));
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(a[14], '4');                /* version */
    CHECK(strchr("89ab", a[19]) != NULL); /* RFC 4122 variant */
    for (int i = 0; i < 36; i++)
        CHECK(!(a[i] >= 'A' && a[i] <= 'F')); /* lower case */

    /* Same results as Python's uuid.uuid5. */
    CHECK(todo_uuid_v5(NS_DNS, "python.org", a));
    CHECK_STR(a, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    CHECK(todo_uuid_v5(NS_URL, "", a));
    CHECK_STR(a, "1b4db7eb-4057-5ddf-91e0-36dec72071f5");
    CHECK(todo_uuid_v5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "python.org", b));
    CHECK_STR(b, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    CHECK(todo_uuid_v5(NS_DNS, "python.orh", b));
    CHECK(strcmp(b, "886313e1-3b8a-5372-9b90-0c9aee199e5d") != 0);
    CHECK_INT(b[14], '5');

    strcpy(a, "unchanged");
    CHECK(!todo_uuid_v5("not-a-uuid", "x", a));
    CHECK(!todo_uuid_v5("{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", "x", a));
    CHECK(!todo_uuid_v5(NULL, "x", a));
    CHECK_STR(a, "unchanged");

    CHECK(todo_uuid_valid("00000000-0000-0000-0000-000000000000"));
    CHECK(todo_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c8"));
    CHECK(todo_uuid_valid("6BA7B810-9DAD-11D1-80B4-00C04FD430C8"));
    CHECK(!todo_uuid_valid(NULL));
    CHECK(!todo_uuid_valid(""));
    CHECK(!todo_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c"));   /* 35 */
    CHECK(!todo_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c80")); /* 37 */
    CHECK(!todo_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c8 "));
    CHECK(!todo_uuid_valid(" 6ba7b810-9dad-11d1-80b4-00c04fd430c8"));
    CHECK(!todo_uuid_valid("6ba7b8109dad11d180b400c04fd430c8"));
    CHECK(!todo_uuid_valid("6ba7b810-9dad-11d1-80b400c04fd430c8-"));
    CHECK(!todo_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430cg"));
    CHECK(!todo_uuid_valid("6ba7b810_9dad_11d1_80b4_00c04fd430c8"));
    CHECK(!todo_uuid_valid("{6ba7b810-9dad-11d1-80b4-00c04fd430c8}"));
    CHECK(!todo_uuid_valid("urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"));
    CHECK(!todo_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c\xc3\xa9"));
    return check_exit();
}
