/* The one error table of the project: every failure a function reports, its stable
 * machine code, its human title and the HTTP status a client sees. */
#ifndef TODO_ERROR_H
#define TODO_ERROR_H

/* X(name, http status, code string, title) */
#define TODO_ERROR_MAP(X)                                                                          \
    X(OK, 200, "OK", "OK")                                                                         \
    X(INVALID_JSON, 400, "INVALID_JSON", "The request body is not valid JSON")                     \
    X(BAD_REQUEST, 400, "BAD_REQUEST", "The request is malformed")                                 \
    X(UNAUTHORIZED, 401, "UNAUTHORIZED", "Authentication is required")                             \
    X(FORBIDDEN, 403, "FORBIDDEN", "Access to this resource is forbidden")                         \
    X(NOT_FOUND, 404, "NOT_FOUND", "The resource was not found")                                   \
    X(METHOD_NOT_ALLOWED, 405, "METHOD_NOT_ALLOWED", "The method is not allowed on this resource") \
    X(CONFLICT, 409, "CONFLICT", "The request conflicts with the current state")                   \
    X(PRECONDITION_FAILED, 412, "PRECONDITION_FAILED", "The resource has changed")                 \
    X(PAYLOAD_TOO_LARGE, 413, "PAYLOAD_TOO_LARGE", "The request body is too large")                \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "UNSUPPORTED_MEDIA_TYPE", "The content type is not supported")  \
    X(VALIDATION_ERROR, 422, "VALIDATION_ERROR", "The request has invalid fields")                 \
    X(INTERNAL, 500, "INTERNAL", "An internal error occurred")                                     \
    X(UNAVAILABLE, 503, "UNAVAILABLE", "The service is temporarily unavailable")

/* TODO_OK is 0; every other value is an error a function may return. */
typedef enum {
#define TODO_ERROR_ENUM(name, status, code, title) TODO_E##name,
    TODO_ERROR_MAP(TODO_ERROR_ENUM)
#undef TODO_ERROR_ENUM
        TODO_ERROR_COUNT
} todo_err_t;

#define TODO_OK TODO_EOK

/* Mark a function whose int result (0 = ok, else a todo_err_t) must be checked. */
#define TODO_WUR __attribute__((warn_unused_result))

/* HTTP status for rc (500 for an unknown value). */
int todo_err_status(int rc);
/* Stable machine code, e.g. "NOT_FOUND" (borrowed, static). */
const char *todo_err_code(int rc);
/* Human title (borrowed, static). */
const char *todo_err_title(int rc);

#endif
