/* The load generator of the event-latency benchmark: POSTs tasks to the backend at a fixed rate
 * (open loop: request i is due at start + i / rate whatever happened to the ones before, so a
 * slow answer does not slow the load down; a request that finds every connection busy waits for
 * one and its latency still counts from when it was due), over up to --connections keep-alive
 * connections with libcurl's multi interface. --rate 0 sends as fast as the connections allow.
 * At the end it writes one line per request to --out:
 *
 *     <seq> <due ns> <sent ns> <answered ns> <HTTP status> <task id from Location, or ->
 *
 * (CLOCK_REALTIME, so that the times compare with the events' and the consumer's), and prints a
 * summary on stderr. Build: cc -O2 -o loadgen loadgen.c -lcurl -lm */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct {
    int64_t due, sent, done;
    int status;
    long long task_id;
} record_t;

typedef struct {
    CURL *h;
    long seq; /* -1 when free */
    char body[768];
    long long task_id;
} slot_t;

static volatile sig_atomic_t stop;
static int64_t mono_to_real;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    slot_t *s = arg;
    size_t len = size * n;
    if (len > 9 && strncasecmp(data, "Location:", 9) == 0) {
        char line[512];
        size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
        memcpy(line, data, l);
        line[l] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        char *slash = strrchr(line, '/');
        if (slash)
            s->task_id = strtoll(slash + 1, NULL, 10);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url URL --token JWT --out FILE (--duration S --rate R | --count N "
            "[--rate R])\n"
            "               [--connections N] [--title PREFIX]\n"
            "POSTs tasks at R requests/s (0 = as fast as N connections allow).\n");
}

int main(int argc, char **argv)
{
    const char *url = NULL, *token = NULL, *out_path = NULL, *title = "Latency task";
    double rate = 0, duration = 0;
    long count = 0, connections = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--token") == 0)
            token = v;
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--title") == 0)
            title = v;
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            duration = atof(v);
        else if (strcmp(a, "--count") == 0)
            count = atol(v);
        else if (strcmp(a, "--connections") == 0)
            connections = atol(v);
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!count && rate > 0 && duration > 0)
        count = (long)llround(rate * duration);
    if (!url || !token || !out_path || count <= 0 || connections <= 0 || connections > 1024 ||
        rate < 0) {
        usage();
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
    char auth[4096];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");

    record_t *rec = calloc((size_t)count, sizeof(*rec));
    slot_t *slots = calloc((size_t)connections, sizeof(*slots));
    if (!rec || !slots) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    /* The due time of every task, for a realistic body: tomorrow 09:00 UTC. */
    time_t tomorrow = time(NULL) + 86400;
    struct tm tm;
    gmtime_r(&tomorrow, &tm);
    char due_at[32];
    strftime(due_at, sizeof(due_at), "%Y-%m-%dT09:00:00Z", &tm);

    for (long i = 0; i < connections; i++) {
        slot_t *s = &slots[i];
        s->seq = -1;
        s->h = curl_easy_init();
        curl_easy_setopt(s->h, CURLOPT_URL, url);
        curl_easy_setopt(s->h, CURLOPT_PROXY, "");
        curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(s->h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(s->h, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(s->h, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    }

    int64_t start = mono_ns() + 20000000; /* 20 ms from now */
    mono_to_real = real_ns() - mono_ns();
    double interval = rate > 0 ? 1e9 / rate : 0;
    long next = 0, finished = 0, in_flight = 0, failed = 0;
    while (finished < count && !stop) {
        int64_t now = mono_ns();
        /* Start every request that is due, as long as there is a free connection. */
        while (next < count && in_flight < connections) {
            int64_t due = start + (int64_t)llround((double)next * interval);
            if (due > now)
                break;
            slot_t *s = NULL;
            for (long k = 0; k < connections && !s; k++)
                if (slots[k].seq < 0)
                    s = &slots[k];
            s->seq = next;
            s->task_id = -1;
            snprintf(s->body, sizeof(s->body),
                     "{\"title\":\"%s %ld\",\"description\":\"Created by the event-latency "
                     "benchmark\",\"priority\":\"medium\",\"due_at\":\"%s\"}",
                     title, next, due_at);
            curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
            curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
            rec[next].due = due + mono_to_real;
            rec[next].sent = real_ns();
            curl_multi_add_handle(multi, s->h);
            next++;
            in_flight++;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            slot_t *s;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            record_t *r = &rec[s->seq];
            r->done = real_ns();
            long code = 0;
            if (m->data.result == CURLE_OK)
                curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
            else
                failed++;
            r->status = (int)code;
            r->task_id = s->task_id;
            curl_multi_remove_handle(multi, s->h);
            s->seq = -1;
            in_flight--;
            finished++;
        }
        /* Sleep until the next request is due (rounded up to the millisecond, so that the loop
         * never spins) or a transfer has news. */
        int timeout = 100;
        if (next < count && in_flight < connections) {
            int64_t due = start + (int64_t)llround((double)next * interval);
            int64_t wait = due - mono_ns();
            timeout = wait <= 0 ? 0 : (int)((wait + 999999) / 1000000);
            if (timeout > 100)
                timeout = 100;
        }
        if (timeout > 0 || running > 0)
            curl_multi_poll(multi, NULL, 0, timeout, NULL);
    }
    int64_t end = mono_ns();

    FILE *out = fopen(out_path, "w");
    if (!out) {
        perror(out_path);
        return 1;
    }
    int64_t *lat = calloc((size_t)finished + 1, sizeof(*lat));
    int64_t *wait = calloc((size_t)finished + 1, sizeof(*wait));
    size_t nl = 0;
    long ok = 0;
    for (long i = 0; i < next; i++) {
        record_t *r = &rec[i];
        fprintf(out, "%ld %lld %lld %lld %d ", i, (long long)r->due, (long long)r->sent,
                (long long)r->done, r->status);
        if (r->task_id >= 0 && r->done)
            fprintf(out, "%lld\n", r->task_id);
        else
            fprintf(out, "-\n");
        if (r->done && r->status >= 200 && r->status < 300) {
            ok++;
            lat[nl] = r->done - r->due;
            wait[nl] = r->sent - r->due;
            nl++;
        }
    }
    fclose(out);
    qsort(lat, nl, sizeof(*lat), cmp_i64);
    qsort(wait, nl, sizeof(*wait), cmp_i64);
    double secs = (double)(end - start) / 1e9;
    fprintf(stderr,
            "loadgen: %ld requests in %.2f s (%.1f/s, asked %.1f/s), %ld 2xx, %ld other, %ld "
            "transport errors; latency from due time p50 %.2f ms p99 %.2f ms max %.2f ms; "
            "waiting for a connection p99 %.2f ms%s\n",
            finished, secs, (double)finished / secs, rate, ok, finished - ok - failed, failed,
            pct(lat, nl, 50), pct(lat, nl, 99), nl ? (double)lat[nl - 1] / 1e6 : 0,
            pct(wait, nl, 99), stop ? " (interrupted)" : "");
    for (long i = 0; i < connections; i++)
        curl_easy_cleanup(slots[i].h);
    curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    return stop ? 130 : (failed || ok < finished) ? 1 : 0;
}
