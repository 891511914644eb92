/* Lookups in the one error table (error.h): HTTP status, machine code and title of an error. */
#include "todo/error.h"

static const struct {
    int status;
    const char *code;
    const char *title;
} errors[TODO_ERROR_COUNT] = {
#define TODO_ERROR_ROW(name, status, code, title) [TODO_E##name] = {status, code, title},
    TODO_ERROR_MAP(TODO_ERROR_ROW)
#undef TODO_ERROR_ROW
};

/* Unknown values (negative, past the table) read as INTERNAL. */
static int index_of(int rc)
{
    return rc >= 0 && rc < TODO_ERROR_COUNT ? rc : TODO_EINTERNAL;
}

int todo_err_status(int rc)
{
    return errors[index_of(rc)].status;
}

const char *todo_err_code(int rc)
{
    return errors[index_of(rc)].code;
}

const char *todo_err_title(int rc)
{
    return errors[index_of(rc)].title;
}
