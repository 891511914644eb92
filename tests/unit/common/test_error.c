/* Unit test of common/src/error.c: every row of the error table reads back, unknown values are
 * INTERNAL. */
#include <stdbool.h>

#include "check.h"
#include "todo/error.h"

int main(void)
{
    CHECK_INT(TODO_OK, 0);
    CHECK_INT(todo_err_status(TODO_OK), 200);
    CHECK_STR(todo_err_code(TODO_OK), "OK");

    CHECK_INT(todo_err_status(TODO_ENOT_FOUND), 404);
    CHECK_STR(todo_err_code(TODO_ENOT_FOUND), "NOT_FOUND");
    CHECK_STR(todo_err_title(TODO_ENOT_FOUND), "The resource was not found");
    CHECK_INT(todo_err_status(TODO_EINVALID_JSON), 400);
    CHECK_INT(todo_err_status(TODO_EUNAUTHORIZED), 401);
    CHECK_INT(todo_err_status(TODO_EPRECONDITION_FAILED), 412);
    CHECK_INT(todo_err_status(TODO_EPAYLOAD_TOO_LARGE), 413);
    CHECK_STR(todo_err_code(TODO_EPAYLOAD_TOO_LARGE), "PAYLOAD_TOO_LARGE");
    CHECK_INT(todo_err_status(TODO_EVALIDATION_ERROR), 422);
    CHECK_STR(todo_err_code(TODO_EVALIDATION_ERROR), "VALIDATION_ERROR");
    CHECK_INT(todo_err_status(TODO_EUNAVAILABLE), 503);
    CHECK_STR(todo_err_title(TODO_EUNAVAILABLE), "The service is temporarily unavailable");

    /* Values outside the table read as INTERNAL, never out of bounds. */
    CHECK_INT(todo_err_status(-1), 500);
    CHECK_INT(todo_err_status(TODO_ERROR_COUNT), 500);
    CHECK_INT(todo_err_status(100000), 500);
    CHECK_STR(todo_err_code(-7), "INTERNAL");
    CHECK_STR(todo_err_title(TODO_ERROR_COUNT), todo_err_title(TODO_EINTERNAL));

    /* Every row is complete, errors are 4xx/5xx, and codes are unique. */
    for (int i = 0; i < TODO_ERROR_COUNT; i++) {
        CHECK(todo_err_code(i)[0] != '\0');
        CHECK(todo_err_title(i)[0] != '\0');
        CHECK(i == TODO_OK || (todo_err_status(i) >= 400 && todo_err_status(i) <= 599));
        for (int j = i + 1; j < TODO_ERROR_COUNT; j++)
            CHECK(strcmp(todo_err_code(i), todo_err_code(j)) != 0);
    }
    return check_exit();
}
