/* One declarative configuration table per service, filled from the environment with bounded
 * parsing, plus the --help, --version and --check-config command line every executable has. */
#ifndef TODO_CONFIG_H
#define TODO_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CONFIG_STRING, /* dest: const char ** (borrowed from the environment or the default) */
    CONFIG_SECRET, /* like CONFIG_STRING, masked when printed */
    CONFIG_INT,    /* dest: int64_t *, within [min, max] */
    CONFIG_BOOL,   /* dest: bool *; true/false/1/0/yes/no/on/off */
} config_type_t;

typedef struct {
    const char *name; /* environment variable, e.g. "PORT" */
    config_type_t type;
    const char *def;  /* default text, or NULL (then required or left NULL/0) */
    bool required;    /* missing and no default → error */
    int64_t min, max; /* CONFIG_INT: value range; strings: length range (max 0 = none) */
    const char *help; /* one line for --help */
    void *dest;
    /* Optional extra check; returns NULL when fine, else a static reason. */
    const char *(*check)(const char *value);
} config_entry_t;

/* Parses argv and the environment into the table. Returns -1 when the service should go on,
 * otherwise the exit code to exit with: 0 after --help, --version or a good --check-config,
 * 2 after a bad value or an unknown argument (with a clear message on stderr naming the
 * variable, never a secret's value). An empty variable counts as unset. */
int config_main(const char *service, const config_entry_t *tab, size_t n, int argc, char **argv);

/* Logs the effective configuration, one line, secrets masked. */
void config_log(const char *service, const config_entry_t *tab, size_t n);

#endif
