/* Inbound Resiliency for pub/sub deliveries (DAPR-CONTRACT §4, §3.3): the retry schedule of a
 * constant or exponential policy (dapr/kit retry over cenkalti/backoff), maxRetries, and the
 * matching.httpStatusCodes filter. Pure functions: the caller owns the clock and the randomness,
 * so the schedule can be computed without sleeping. */
#ifndef SIDECAR_RESILIENCY_H
#define SIDECAR_RESILIENCY_H
#include <stdbool.h>
#include <stdint.h>

#include "resources.h"

/* cenkalti/backoff ExponentialBackOff defaults that the Resiliency CRD cannot change. */
#define RESILIENCY_EXP_INITIAL_MS     500
#define RESILIENCY_EXP_MULTIPLIER     1.5
#define RESILIENCY_EXP_RANDOMIZATION  0.5
#define RESILIENCY_EXP_MAX_ELAPSED_MS (15 * 60 * 1000)

/* The state of one message's retries (caller-owned storage). */
typedef struct {
    const res_retry_t *policy; /* borrowed; NULL = no policy (one attempt) */
    int64_t retries;           /* retries handed out so far */
    double current_ms;         /* exponential: the current (unrandomised) interval */
} resiliency_backoff_t;

void resiliency_backoff_init(resiliency_backoff_t *b, const res_retry_t *policy);

/* The delay before the next attempt in ms, or -1 when the policy gives up: no policy,
 * maxRetries reached (-1 = unlimited, 0 = none), or (exponential) elapsed_ms since the first
 * attempt plus the delay would pass 15 minutes. rnd in [0, 1) randomises exponential delays by
 * ±50 %: interval × (1 − 0.5) + rnd × (interval × 2 × 0.5 + 1 ns); the interval then grows
 * ×1.5 up to maxInterval. */
int64_t resiliency_backoff_next(resiliency_backoff_t *b, double rnd, int64_t elapsed_ms);

/* matching.httpStatusCodes ("500-599,429"; spaces allowed): 1 when status is listed or spec is
 * NULL/empty, 0 when it is not (a permanent error: no retry), -1 when spec is malformed (codes
 * and ranges must lie within 100–599, low ≤ high). */
int resiliency_http_code_matches(const char *spec, int status);

#endif
