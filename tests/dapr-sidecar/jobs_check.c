/* jobs_check: the C half of tests/integration/test_sidecar_jobs.py. Drives jobs_store.c against
 * the real PostgreSQL whose URL is argv[1]: put/get/overwrite/delete, never-early claiming,
 * leases and their expiry, the failure policies, repeats, and exactly-once claiming by
 * concurrent replicas (DAPR-CONTRACT §6.1, §6.3). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jobs_store.h"
#include "todo/alloc.h"
#include "todo/timeutil.h"

#define SEC         INT64_C(1000000)
#define LEASE       (5 * SEC)
#define RACE_JOBS   300
#define RACE_STORES 4

static const char *url;

static jobs_job_t job(const char *name, const char *schedule, int64_t due, int64_t repeats,
                      const char *policy)
{
    jobs_job_t j;
    memset(&j, 0, sizeof(j));
    j.name = xstrdup(name);
    j.schedule = schedule ? xstrdup(schedule) : NULL;
    j.due_time = due ? xstrdup("as-submitted") : NULL;
    j.due_usec = due;
    j.repeats = repeats;
    j.data = xstrdup("{\"a\":1}");
    j.failure_policy =
        xstrdup(policy ? policy : "{\"constant\":{\"interval\":\"1s\",\"maxRetries\":3}}");
    j.created_usec = time_now_usec();
    return j;
}

static int put(jobs_store_t *st, jobs_job_t j, bool overwrite)
{
    int rc = jobs_store_put(st, &j, overwrite);
    jobs_job_dispose(&j);
    return rc;
}

static size_t claim(jobs_store_t *st, int64_t now, jobs_trigger_t *out, size_t max)
{
    size_t n = 0;
    CHECK_INT(jobs_store_claim(st, now, LEASE, out, max, &n), 0);
    return n;
}

static void dispose_all(jobs_trigger_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jobs_trigger_dispose(&t[i]);
}

/* How many triggers are claimable at now (claimed and given back). */
static size_t claimable(jobs_store_t *st, int64_t now)
{
    jobs_trigger_t t[8];
    size_t n = claim(st, now, t, 8);
    for (size_t i = 0; i < n; i++)
        CHECK_INT(jobs_store_release(st, &t[i]), 0);
    dispose_all(t, n);
    return n;
}

static void test_crud(jobs_store_t *st, jobs_store_t *other_app)
{
    jobs_job_t g;
    int64_t due = time_now_usec() + 3600 * SEC;
    CHECK_INT(put(st, job("crud", "@every 1m", due, 5, NULL), false), 0);
    CHECK_INT(put(st, job("crud", "@every 2m", 0, -1, NULL), false), TODO_ECONFLICT);
    CHECK_INT(jobs_store_get(st, "crud", &g), 0);
    CHECK_STR(g.schedule, "@every 1m");
    CHECK_STR(g.due_time, "as-submitted");
    CHECK_INT(g.repeats, 5);
    CHECK_STR(g.data, "{\"a\":1}");
    jobs_job_dispose(&g);
    /* per app id: another app's store sees nothing and may use the same name */
    CHECK_INT(jobs_store_get(other_app, "crud", &g), TODO_ENOT_FOUND);
    CHECK_INT(put(other_app, job("crud", "@every 3m", 0, -1, NULL), false), 0);
    CHECK_INT(put(st, job("crud", "@every 2m", 0, -1, NULL), true), 0);
    CHECK_INT(jobs_store_get(st, "crud", &g), 0);
    CHECK_STR(g.schedule, "@every 2m");
    CHECK(g.due_time == NULL);
    CHECK_INT(g.repeats, -1);
    jobs_job_dispose(&g);
    CHECK_INT(jobs_store_delete(st, "crud"), 0);
    CHECK_INT(jobs_store_get(st, "crud", &g), TODO_ENOT_FOUND);
    CHECK_INT(jobs_store_delete(st, "crud"), 0);
    CHECK_INT(jobs_store_get(other_app, "crud", &g), 0);
    jobs_job_dispose(&g);
    CHECK_INT(jobs_store_delete(other_app, "crud"), 0);
}

static void test_never_early_and_lease(jobs_store_t *st, jobs_store_t *replica)
{
    jobs_trigger_t t[4];
    int64_t now = time_now_usec(), due = now + 10 * SEC;
    CHECK_INT(put(st, job("oneshot", NULL, due, -1, NULL), false), 0);
    CHECK_INT(claimable(st, due - 1), 0); /* one microsecond early: not yet */
    size_t n = claim(st, due, t, 4);
    CHECK_INT(n, 1);
    if (n != 1)
        return;
    CHECK_INT(t[0].tick_usec, due);
    CHECK_INT(t[0].attempt, 0);
    /* leased: no other replica gets it until the lease expires */
    CHECK_INT(claimable(replica, due + LEASE - 1), 0);
    /* a renewed lease holds longer */
    CHECK_INT(jobs_store_renew(st, t[0].lease_token, due + 2 * LEASE), 0);
    CHECK_INT(claimable(replica, due + LEASE + 1), 0);
    /* the holder died: after the lease another replica fires it (at-least-once) */
    size_t m = claim(replica, due + 2 * LEASE + 1, t + 1, 3);
    CHECK_INT(m, 1);
    /* the dead holder's late outcome is ignored (its lease is gone) */
    CHECK_INT(jobs_store_finish(st, &t[0], true, due + 2 * LEASE + 2), 0);
    jobs_job_t g;
    CHECK_INT(jobs_store_get(st, "oneshot", &g), 0);
    jobs_job_dispose(&g);
    if (m == 1) {
        CHECK_INT(jobs_store_finish(replica, &t[1], true, due + 2 * LEASE + 3), 0);
        CHECK_INT(jobs_store_get(st, "oneshot", &g), TODO_ENOT_FOUND); /* one-shot: gone */
    }
    dispose_all(t, 1 + m);
}

static void test_failure_policies(jobs_store_t *st)
{
    jobs_trigger_t t[2];
    int64_t due = time_now_usec() / SEC * SEC, now = due; /* @every counts whole seconds */
    int calls = 0;
    jobs_job_t g;
    /* default constant 1 s × 3: four attempts of the occurrence, then the next one */
    CHECK_INT(put(st, job("retry", "@every 1h", due, -1, NULL), false), 0);
    for (int i = 0; i < 6; i++) {
        size_t n = claim(st, now, t, 2);
        if (n == 0)
            break;
        calls++;
        CHECK_INT(t[0].tick_usec, due);
        CHECK_INT(t[0].attempt, i);
        CHECK_INT(jobs_store_finish(st, &t[0], false, now), 0);
        dispose_all(t, n);
        CHECK_INT(claimable(st, now + SEC - 1), 0); /* the retry waits its interval */
        now += SEC;
    }
    CHECK_INT(calls, 4);
    CHECK_INT(jobs_store_get(st, "retry", &g), 0); /* next tick: due + 1 h */
    jobs_job_dispose(&g);
    CHECK_INT(claimable(st, due + 3600 * SEC - 1), 0);
    size_t n = claim(st, due + 3600 * SEC, t, 2);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_INT(t[0].attempt, 0);
        CHECK_INT(t[0].fired_count, 1);
    }
    dispose_all(t, n);
    CHECK_INT(jobs_store_delete(st, "retry"), 0);

    /* drop: one attempt */
    CHECK_INT(put(st, job("drop", NULL, due, -1, "{\"drop\":{}}"), false), 0);
    n = claim(st, due, t, 2);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(jobs_store_finish(st, &t[0], false, due), 0);
    dispose_all(t, n);
    CHECK_INT(jobs_store_get(st, "drop", &g), TODO_ENOT_FOUND);

    /* constant with maxRetries 1 and a 2 s interval */
    CHECK_INT(
        put(st, job("two", NULL, due, -1, "{\"constant\":{\"interval\":\"2s\",\"maxRetries\":1}}"),
            false),
        0);
    n = claim(st, due, t, 2);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(jobs_store_finish(st, &t[0], false, due), 0);
    dispose_all(t, n);
    CHECK_INT(claimable(st, due + 2 * SEC - 1), 0);
    n = claim(st, due + 2 * SEC, t, 2);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(jobs_store_finish(st, &t[0], false, due + 2 * SEC), 0);
    dispose_all(t, n);
    CHECK_INT(jobs_store_get(st, "two", &g), TODO_ENOT_FOUND);
}

static void test_repeats_and_overwrite(jobs_store_t *st)
{
    jobs_trigger_t t[2];
    int64_t due = time_now_usec();
    jobs_job_t g;
    /* repeats 2 with @every 1s: two occurrences, 1 s apart, then the job is gone */
    CHECK_INT(put(st, job("rep", "@every 1s", due, 2, NULL), false), 0);
    size_t n = claim(st, due, t, 2);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_INT(jobs_store_finish(st, &t[0], true, due), 0);
    dispose_all(t, n);
    n = claim(st, due + SEC, t, 2);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_INT(t[0].tick_usec, (due / SEC + 1) * SEC); /* whole seconds after dueTime */
        CHECK_INT(jobs_store_finish(st, &t[0], true, due + SEC), 0);
    }
    dispose_all(t, n);
    CHECK_INT(jobs_store_get(st, "rep", &g), TODO_ENOT_FOUND);

    /* overwritten while in delivery: the old delivery's outcome does not touch the new job */
    CHECK_INT(put(st, job("ow", NULL, due, -1, NULL), false), 0);
    n = claim(st, due, t, 2);
    CHECK_INT(n, 1);
    CHECK_INT(put(st, job("ow", NULL, due + 100 * SEC, -1, NULL), true), 0);
    if (n == 1)
        CHECK_INT(jobs_store_finish(st, &t[0], true, due), 0);
    dispose_all(t, n);
    CHECK_INT(jobs_store_get(st, "ow", &g), 0);
    jobs_job_dispose(&g);
    CHECK_INT(jobs_store_delete(st, "ow"), 0);
}

/* ---- replicas racing for the same due triggers ---- */

typedef struct {
    jobs_store_t *st;
    int64_t now;
    int claimed[RACE_JOBS];
    int errors;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    jobs_trigger_t t[8];
    for (int rounds = 0; rounds < 1000; rounds++) {
        size_t n = 0;
        if (jobs_store_claim(r->st, r->now, LEASE, t, 8, &n) != 0) {
            r->errors++;
            break;
        }
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            int k = atoi(t[i].job.name + 5);
            if (k >= 0 && k < RACE_JOBS)
                r->claimed[k]++;
            if (jobs_store_finish(r->st, &t[i], true, r->now) != 0)
                r->errors++;
            jobs_trigger_dispose(&t[i]);
        }
    }
    return NULL;
}

static void test_exactly_once(jobs_store_t *st)
{
    static racer_t racers[RACE_STORES];
    pthread_t th[RACE_STORES];
    char name[32];
    int64_t due = time_now_usec();
    for (int i = 0; i < RACE_JOBS; i++) {
        snprintf(name, sizeof(name), "race-%d", i);
        CHECK_INT(put(st, job(name, NULL, due, -1, NULL), false), 0);
    }
    for (int i = 0; i < RACE_STORES; i++) {
        char owner[16];
        snprintf(owner, sizeof(owner), "replica-%d", i);
        racers[i].st = jobs_store_new(url, "app1", "default", owner);
        racers[i].now = due;
        CHECK_INT(jobs_store_open(racers[i].st), 0);
    }
    for (int i = 0; i < RACE_STORES; i++)
        pthread_create(&th[i], NULL, race, &racers[i]);
    for (int i = 0; i < RACE_STORES; i++)
        pthread_join(th[i], NULL);
    int once = 0, busy = 0, mine;
    for (int k = 0; k < RACE_JOBS; k++) {
        int total = 0;
        for (int i = 0; i < RACE_STORES; i++)
            total += racers[i].claimed[k];
        once += total == 1;
    }
    for (int i = 0; i < RACE_STORES; i++) {
        CHECK_INT(racers[i].errors, 0);
        mine = 0;
        for (int k = 0; k < RACE_JOBS; k++)
            mine += racers[i].claimed[k];
        busy += mine > 0;
        jobs_store_free(racers[i].st);
    }
    CHECK_INT(once, RACE_JOBS);
    printf("exactly-once: %d of %d triggers claimed once; %d replicas claimed some\n", once,
           RACE_JOBS, busy);
}

int main(int argc, char **argv)
{
    jobs_store_t *st, *replica, *other;
    if (argc != 2) {
        fprintf(stderr, "usage: jobs_check <postgresql url>\n");
        return 2;
    }
    url = argv[1];
    unsetenv("TZ");
    st = jobs_store_new(url, "app1", "default", "check");
    replica = jobs_store_new(url, "app1", "default", "replica");
    other = jobs_store_new(url, "app2", "default", "other");
    CHECK_INT(jobs_store_open(st), 0);
    CHECK_INT(jobs_store_open(replica), 0);
    CHECK_INT(jobs_store_open(other), 0);
    test_crud(st, other);
    test_never_early_and_lease(st, replica);
    test_failure_policies(st);
    test_repeats_and_overwrite(st);
    test_exactly_once(st);
    jobs_store_free(st);
    jobs_store_free(replica);
    jobs_store_free(other);
    return check_exit();
}
