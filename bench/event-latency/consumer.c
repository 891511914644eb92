/* The consumer app of the event-latency benchmark: the HTTP server a dapr-sidecar's --app-port
 * points at. It answers GET /dapr/subscribe with one subscription (--pubsub, --topic, --route),
 * and every POST to the route with 200 {"status":"SUCCESS"}, after writing one line per
 * delivery to --out:
 *
 *     <arrival ns> <handled ns> <subject> <type> <time> <id>
 *
 * arrival = CLOCK_REALTIME when the whole request had been read (when a handler would start),
 * handled = nanoseconds from there until the reply was written (this app's own handling time),
 * subject, type, time and id = the CloudEvent's attributes ("-" when missing).
 * Single-threaded, poll(2), HTTP/1.1 keep-alive, so that the app costs next to nothing and
 * measures the sidecar, not itself. Stops on SIGTERM/SIGINT (the file is flushed line by line).
 *
 * Build: cc -O2 -o consumer consumer.c -ljansson */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS   256
#define MAX_REQUEST (16u << 20)

typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
} conn_t;

static volatile sig_atomic_t stop;
static const char *pubsub = "pubsub", *topic = "task-events", *route = "/events/task-events";
static FILE *out;
static unsigned long long deliveries, bad;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void conn_close(conn_t *c)
{
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p1 = {.fd = fd, .events = POLLOUT};
            (void)poll(&p1, 1, 1000);
            continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int reply(int fd, int status, const char *reason, const char *ctype, const char *body)
{
    char head[512];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
                     reason, ctype, blen);
    if (write_all(fd, head, (size_t)n) != 0)
        return -1;
    return blen ? write_all(fd, body, blen) : 0;
}

static const char *attr(json_t *ev, const char *name)
{
    json_t *v = json_object_get(ev, name);
    return json_is_string(v) && *json_string_value(v) ? json_string_value(v) : "-";
}

/* One complete request: method, path, body. */
static int handle(conn_t *c, const char *method, const char *path, const char *body, size_t blen)
{
    if (strcmp(method, "GET") == 0 && strcmp(path, "/dapr/subscribe") == 0) {
        char b[1024];
        snprintf(b, sizeof(b),
                 "[{\"pubsubname\":\"%s\",\"topic\":\"%s\",\"route\":\"%s\","
                 "\"deadLetterTopic\":\"%s-dlq\"}]",
                 pubsub, topic, route, topic);
        return reply(c->fd, 200, "OK", "application/json", b);
    }
    if (strcmp(method, "POST") == 0 && strcmp(path, route) == 0) {
        int64_t arrival = now_ns(CLOCK_REALTIME), t0 = now_ns(CLOCK_MONOTONIC);
        json_error_t err;
        json_t *ev = json_loadb(body, blen, 0, &err);
        int rc = reply(c->fd, 200, "OK", "application/json", "{\"status\":\"SUCCESS\"}");
        int64_t handled = now_ns(CLOCK_MONOTONIC) - t0;
        deliveries++;
        if (!json_is_object(ev)) {
            bad++;
            fprintf(out, "%lld %lld - - - -\n", (long long)arrival, (long long)handled);
        } else {
            fprintf(out, "%lld %lld %s %s %s %s\n", (long long)arrival, (long long)handled,
                    attr(ev, "subject"), attr(ev, "type"), attr(ev, "time"), attr(ev, "id"));
        }
        json_decref(ev);
        return rc;
    }
    if (strcmp(method, "GET") == 0 && strcmp(path, "/healthz") == 0)
        return reply(c->fd, 200, "OK", "text/plain", "ok");
    return reply(c->fd, 404, "Not Found", "text/plain", "");
}

/* Handles every complete request in c's buffer; -1 closes the connection. */
static int process(conn_t *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return c->len > 65536 ? -1 : 0;
        size_t head_len = (size_t)(end - c->buf) + 4;
        size_t content_length = 0;
        char method[16] = "", path[2048] = "";
        *end = '\0';
        if (sscanf(c->buf, "%15s %2047s", method, path) != 2)
            return -1;
        char *q = strchr(path, '?');
        if (q)
            *q = '\0';
        for (char *line = strstr(c->buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
            if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
                content_length = strtoull(line + 17, NULL, 10);
            else if (strncasecmp(line + 2, "Transfer-Encoding:", 18) == 0)
                return -1; /* not used by the sidecar (libcurl sends a length) */
        }
        *end = '\r';
        if (content_length > MAX_REQUEST)
            return -1;
        if (c->len < head_len + content_length)
            return 0; /* the body is still coming */
        if (handle(c, method, path, c->buf + head_len, content_length) != 0)
            return -1;
        size_t used = head_len + content_length;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else if (strcmp(argv[i], "--pubsub") == 0 && i + 1 < argc)
            pubsub = argv[++i];
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            topic = argv[++i];
        else if (strcmp(argv[i], "--route") == 0 && i + 1 < argc)
            route = argv[++i];
        else {
            fprintf(stderr, "usage: consumer --port PORT --out FILE [--pubsub NAME] [--topic NAME] "
                            "[--route PATH]\n");
            return 2;
        }
    }
    if (port <= 0 || !out_path) {
        fprintf(stderr, "consumer: --port and --out are required\n");
        return 2;
    }
    out = fopen(out_path, "w");
    if (!out) {
        perror(out_path);
        return 1;
    }
    setvbuf(out, NULL, _IOLBF, 0);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 128) != 0) {
        perror("consumer: listen");
        return 1;
    }

    conn_t conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS + 1];
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i] = (conn_t){.fd = -1};
    while (!stop) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++)
            pfd[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(pfd, (nfds_t)n, 200) < 0) {
            if (errno == EINTR)
                continue;
            perror("consumer: poll");
            break;
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                int slot = -1;
                for (int i = 0; i < MAX_CONNS && slot < 0; i++)
                    if (conns[i].fd < 0)
                        slot = i;
                if (slot < 0) {
                    close(fd);
                } else {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conns[slot].fd = fd;
                }
            }
        }
        for (int i = 0; i < MAX_CONNS; i++) {
            conn_t *c = &conns[i];
            if (c->fd < 0 || !(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (c->cap - c->len < 65536) {
                size_t cap = c->cap ? c->cap * 2 : 131072;
                if (cap > MAX_REQUEST + 65536) {
                    conn_close(c);
                    continue;
                }
                char *b = realloc(c->buf, cap);
                if (!b) {
                    conn_close(c);
                    continue;
                }
                c->buf = b;
                c->cap = cap;
            }
            ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                conn_close(c);
                continue;
            }
            c->len += (size_t)r;
            if (process(c) != 0)
                conn_close(c);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd >= 0)
            conn_close(&conns[i]);
    close(lfd);
    fclose(out);
    fprintf(stderr, "consumer: %llu deliveries (%llu not a JSON object)\n", deliveries, bad);
    return 0;
}
