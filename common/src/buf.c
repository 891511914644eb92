/* Growable byte buffer with a hard limit: the one place request bodies, responses and log
 * payloads grow, so that input beyond the limit becomes TODO_EPAYLOAD_TOO_LARGE. */
#include "todo/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"

#define BUF_INITIAL 64

void buf_init(buf_t *b, size_t limit)
{
    b->cap = BUF_INITIAL;
    b->data = xmalloc(b->cap);
    b->data[0] = '\0';
    b->len = 0;
    b->limit = limit;
}

void buf_dispose(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes and the NUL, or says why not (buffer unchanged). */
static int reserve(buf_t *b, size_t n)
{
    if (b->limit && (b->len > b->limit || n > b->limit - b->len))
        return TODO_EPAYLOAD_TOO_LARGE;
    if (n >= SIZE_MAX - b->len)
        return TODO_EPAYLOAD_TOO_LARGE;
    size_t need = b->len + n + 1;
    if (b->data && need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : BUF_INITIAL;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const void *data, size_t n)
{
    int rc = reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return TODO_EINTERNAL;
    int rc = reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *buf_steal(buf_t *b)
{
    char *s = b->data ? b->data : xstrdup("");
    buf_init(b, b->limit);
    return s;
}
