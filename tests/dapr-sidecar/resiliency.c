/* Retry schedules and status-code matching of inbound pub/sub Resiliency policies
 * (DAPR-CONTRACT §4): dapr/kit retry.Config over cenkalti/backoff, computed without a clock. */
#include "resiliency.h"

#include <stdlib.h>
#include <string.h>

void resiliency_backoff_init(resiliency_backoff_t *b, const res_retry_t *policy)
{
    b->policy = policy;
    b->retries = 0;
    b->current_ms = RESILIENCY_EXP_INITIAL_MS;
}

int64_t resiliency_backoff_next(resiliency_backoff_t *b, double rnd, int64_t elapsed_ms)
{
    const res_retry_t *p = b->policy;
    if (!p)
        return -1; /* DAPR-CONTRACT §3.3: no policy ⇒ exactly one attempt */
    /* backoff.WithMaxRetries when maxRetries ≥ 0 */
    if (p->max_retries >= 0 && b->retries >= p->max_retries)
        return -1;
    int64_t delay;
    if (p->policy == RES_RETRY_CONSTANT) {
        delay = p->duration_ms;
    } else {
        /* ExponentialBackOff.NextBackOff: randomise the current interval, then grow it */
        double cur = b->current_ms, max = (double)p->max_interval_ms;
        double delta = RESILIENCY_EXP_RANDOMIZATION * cur;
        double lo = cur - delta, hi = cur + delta;
        double next = lo + rnd * (hi - lo + 1e-6); /* cenkalti adds one nanosecond */
        if (cur >= max / RESILIENCY_EXP_MULTIPLIER)
            b->current_ms = max;
        else
            b->current_ms = cur * RESILIENCY_EXP_MULTIPLIER;
        delay = (int64_t)next;
        if (elapsed_ms + delay > RESILIENCY_EXP_MAX_ELAPSED_MS)
            return -1;
    }
    b->retries++;
    return delay < 0 ? 0 : delay;
}

/* Reads a status code of 3 digits in [100, 599] at *p (spaces around skipped). */
static bool read_code(const char **p, long *out)
{
    while (**p == ' ')
        (*p)++;
    char *end;
    long v = strtol(*p, &end, 10);
    if (end == *p || v < 100 || v > 599)
        return false;
    *p = end;
    while (**p == ' ')
        (*p)++;
    *out = v;
    return true;
}

int resiliency_http_code_matches(const char *spec, int status)
{
    if (!spec || !*spec || strspn(spec, " ") == strlen(spec))
        return 1;
    bool listed = false;
    for (const char *p = spec;;) {
        long lo, hi;
        if (!read_code(&p, &lo))
            return -1;
        hi = lo;
        if (*p == '-') {
            p++;
            if (!read_code(&p, &hi) || hi < lo)
                return -1;
        }
        if (status >= lo && status <= hi)
            listed = true;
        if (*p == '\0')
            break;
        if (*p != ',')
            return -1;
        p++;
    }
    return listed ? 1 : 0;
}
