/* Unit test of common/src/buf.c: growth, the hard limit (an error that leaves the buffer as it
 * was), printf, binary data, reset and steal. */
#include <stdlib.h>

#include "check.h"
#include "todo/buf.h"

int main(void)
{
    buf_t b;
    buf_init(&b, 0);
    CHECK(b.data != NULL);
    CHECK_STR(b.data, "");
    CHECK_INT(b.len, 0);

    CHECK_INT(buf_puts(&b, "abc"), 0);
    CHECK_INT(buf_append(&b, "defXX", 3), 0);
    CHECK_INT(buf_append(&b, NULL, 0), 0);
    CHECK_STR(b.data, "abcdef");
    CHECK_INT(b.len, 6);
    CHECK_INT(buf_printf(&b, "-%d-%s", 42, "z"), 0);
    CHECK_STR(b.data, "abcdef-42-z");

    /* Growth well past the first allocation keeps every byte. */
    for (int i = 0; i < 10000; i++)
        CHECK_INT(buf_append(&b, "0123456789", 10), 0);
    CHECK_INT(b.len, 11 + 100000);
    CHECK(b.cap > b.len);
    CHECK_INT(b.data[b.len], '\0');
    CHECK(memcmp(b.data + 11 + 99990, "0123456789", 10) == 0);

    /* A long printf (longer than any first guess) is complete. */
    buf_reset(&b);
    CHECK_INT(b.len, 0);
    CHECK_STR(b.data, "");
    CHECK_INT(buf_printf(&b, "%0500d|", 7), 0);
    CHECK_INT(b.len, 501);
    CHECK_INT(b.data[499], '7');
    CHECK_INT(b.data[500], '|');

    /* Binary data with NULs. */
    buf_reset(&b);
    CHECK_INT(buf_append(&b, "a\0b", 3), 0);
    CHECK_INT(b.len, 3);
    CHECK(memcmp(b.data, "a\0b", 4) == 0);

    char *s = buf_steal(&b);
    CHECK(memcmp(s, "a\0b", 4) == 0);
    free(s);
    CHECK_INT(b.len, 0);
    CHECK_STR(b.data, "");
    CHECK_INT(buf_puts(&b, "again"), 0);
    CHECK_STR(b.data, "again");
    buf_dispose(&b);
    CHECK(b.data == NULL);
    buf_dispose(&b); /* twice is harmless */

    /* The limit: filling up to it works, one byte more is refused and changes nothing. */
    buf_init(&b, 10);
    CHECK_INT(buf_puts(&b, "12345"), 0);
    CHECK_INT(buf_puts(&b, "123456"), TODO_EPAYLOAD_TOO_LARGE);
    CHECK_STR(b.data, "12345");
    CHECK_INT(b.len, 5);
    CHECK_INT(buf_printf(&b, "%s", "abcdef"), TODO_EPAYLOAD_TOO_LARGE);
    CHECK_STR(b.data, "12345");
    CHECK_INT(buf_printf(&b, "%d", 67890), 0);
    CHECK_STR(b.data, "1234567890");
    CHECK_INT(b.len, 10);
    CHECK_INT(buf_append(&b, "x", 1), TODO_EPAYLOAD_TOO_LARGE);
    CHECK_INT(buf_append(&b, "", 0), 0);
    CHECK_INT(buf_append(&b, "x", (size_t)-1), TODO_EPAYLOAD_TOO_LARGE);
    CHECK_STR(b.data, "1234567890");
    buf_reset(&b);
    CHECK_INT(buf_puts(&b, "0123456789"), 0);
    s = buf_steal(&b);
    CHECK_STR(s, "0123456789");
    free(s);
    CHECK_INT(b.limit, 10); /* the limit survives steal */
    CHECK_INT(buf_puts(&b, "01234567890"), TODO_EPAYLOAD_TOO_LARGE);
    buf_dispose(&b);

    /* Without a limit, an impossible size is still an error, not a crash. */
    buf_init(&b, 0);
    CHECK_INT(buf_puts(&b, "a"), 0);
    CHECK_INT(buf_append(&b, "x", (size_t)-1), TODO_EPAYLOAD_TOO_LARGE);
    CHECK_STR(b.data, "a");
    buf_dispose(&b);
    return check_exit();
}
