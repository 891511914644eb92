/* A growable byte buffer with a hard size limit; exceeding the limit is an error, never a crash. */
#ifndef TODO_BUF_H
#define TODO_BUF_H
#include <stdarg.h>
#include <stddef.h>
#include "todo/error.h"

typedef struct {
    char *data;   /* always NUL-terminated when len > 0 or after buf_init */
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t cap;   /* bytes allocated */
    size_t limit; /* maximum len; 0 = unlimited */
} buf_t;

/* Caller-owned storage; limit 0 means no limit. */
void buf_init(buf_t *b, size_t limit);
void buf_dispose(buf_t *b);
void buf_reset(buf_t *b);
/* TODO_EPAYLOAD_TOO_LARGE when the limit would be exceeded (buffer unchanged). */
int buf_append(buf_t *b, const void *data, size_t n) TODO_WUR;
int buf_puts(buf_t *b, const char *s) TODO_WUR;
int buf_printf(buf_t *b, const char *fmt, ...) TODO_WUR __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (new; free()), leaving b empty. */
char *buf_steal(buf_t *b);

#endif
