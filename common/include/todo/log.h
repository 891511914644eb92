/* JSON log lines to stderr: one line per event with time, level, service, module, message and the
 * trace id of the current thread's request. The level is checked before arguments are evaluated. */
#ifndef TODO_LOG_H
#define TODO_LOG_H
#include "todo/error.h"

typedef enum { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level_t;

extern log_level_t log_min_level;

/* Sets the service name (borrowed, must outlive logging) and minimum level. */
void log_init(const char *service, log_level_t level);
/* "debug" | "info" | "warn" | "error" → level; TODO_EBAD_REQUEST otherwise. */
int log_level_parse(const char *s, log_level_t *out) TODO_WUR;
/* Trace id for this thread's log lines (copied, at most 128 bytes kept; NULL clears). */
void log_set_trace(const char *trace_id);
/* This thread's trace id (borrowed, until the next log_set_trace); "" when none. */
const char *log_get_trace(void);

void log_write(log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(level, module, ...)                     \
    do {                                               \
        if ((level) >= log_min_level)                  \
            log_write((level), (module), __VA_ARGS__); \
    } while (0)
#define log_debug(module, ...) log_at(LOG_LEVEL_DEBUG, module, __VA_ARGS__)
#define log_info(module, ...)  log_at(LOG_LEVEL_INFO, module, __VA_ARGS__)
#define log_warn(module, ...)  log_at(LOG_LEVEL_WARN, module, __VA_ARGS__)
#define log_error(module, ...) log_at(LOG_LEVEL_ERROR, module, __VA_ARGS__)

#endif
