/* kafka-mock: a Kafka-protocol cluster for tests and the local stack, hosted by librdkafka's mock
 * cluster (rdkafka_mock.h): N brokers on 127.0.0.1, topics created with given partition counts,
 * bootstrap servers written to a file; stops on SIGTERM/SIGINT. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/shutdown.h"

#define MODULE         "kafka-mock"
#define MAX_TOPICS     64
#define MAX_BROKERS    16
#define MAX_PARTITIONS 1000

typedef struct {
    char *name;
    int partitions;
} topic_arg_t;

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static int stop_flag;

static void on_signal(void *arg)
{
    pthread_mutex_lock(&stop_lock);
    stop_flag = 1;
    pthread_cond_signal(&stop_cond);
    pthread_mutex_unlock(&stop_lock);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... "
               "[--bootstrap-file PATH] [--log-level debug|info|warn|error]\n"
               "Hosts librdkafka's mock Kafka cluster with N brokers (default 1) on 127.0.0.1,\n"
               "creates the given topics (other topics are created on first use with 4\n"
               "partitions), prints the bootstrap servers and writes them to PATH (atomically,\n"
               "once the cluster is up). Stops on SIGTERM or SIGINT.\n");
}

static int parse_int(const char *s, int min, int max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return TODO_EBAD_REQUEST;
    *out = (int)v;
    return 0;
}

/* "name:partitions" → t (name new). */
static int parse_topic(const char *s, topic_arg_t *t)
{
    const char *colon = strrchr(s, ':');

    if (!colon || colon == s || colon - s > 249)
        return TODO_EBAD_REQUEST;
    if (parse_int(colon + 1, 1, MAX_PARTITIONS, &t->partitions) != 0)
        return TODO_EBAD_REQUEST;
    t->name = xstrndup(s, (size_t)(colon - s));
    return 0;
}

/* Writes text to path through a temporary file and rename(2), so a reader never sees a part. */
static int write_atomically(const char *path, const char *text)
{
    int rc = TODO_EINTERNAL;
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");

    if (!f) {
        log_error(MODULE, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        log_error(MODULE, "cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto out;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        log_error(MODULE, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

static void rk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= LOG_ERR)
        log_warn(MODULE, "librdkafka %s: %s", fac, buf);
    else if (level <= LOG_NOTICE)
        log_info(MODULE, "librdkafka %s: %s", fac, buf);
    else
        log_debug(MODULE, "librdkafka %s: %s", fac, buf);
}

int main(int argc, char **argv)
{
    int rc = 2, brokers = 1;
    const char *bootstrap_file = NULL;
    topic_arg_t topics[MAX_TOPICS];
    size_t ntopics = 0;
    log_level_t level = LOG_LEVEL_INFO;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    char errstr[512];

    log_init(MODULE, LOG_LEVEL_INFO);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--brokers") == 0 && v) {
            if (parse_int(v, 1, MAX_BROKERS, &brokers) != 0) {
                fprintf(stderr, "kafka-mock: --brokers wants 1..%d, got '%s'\n", MAX_BROKERS, v);
                goto out;
            }
            i++;
        } else if (strcmp(a, "--topic") == 0 && v) {
            if (ntopics == MAX_TOPICS) {
                fprintf(stderr, "kafka-mock: at most %d --topic options\n", MAX_TOPICS);
                goto out;
            }
            if (parse_topic(v, &topics[ntopics]) != 0) {
                fprintf(stderr, "kafka-mock: --topic wants NAME:PARTITIONS (1..%d), got '%s'\n",
                        MAX_PARTITIONS, v);
                goto out;
            }
            ntopics++;
            i++;
        } else if (strcmp(a, "--bootstrap-file") == 0 && v) {
            bootstrap_file = v;
            i++;
        } else if (strcmp(a, "--log-level") == 0 && v) {
            if (log_level_parse(v, &level) != 0) {
                fprintf(stderr, "kafka-mock: unknown log level '%s'\n", v);
                goto out;
            }
            i++;
        } else {
            fprintf(stderr, "kafka-mock: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            goto out;
        }
    }
    log_init(MODULE, level);
    rc = 1;
    if (shutdown_start(on_signal, NULL) != 0)
        goto out;

    /* The handle only hosts the cluster (its bookkeeping); it talks to no broker itself. */
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, rk_log);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        log_error(MODULE, "rd_kafka_new: %s", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        log_error(MODULE, "cannot create a mock cluster of %d brokers", brokers);
        goto out;
    }
    for (size_t i = 0; i < ntopics; i++) {
        int replication = brokers < 3 ? brokers : 3;
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, topics[i].name, topics[i].partitions, replication);
        if (err) {
            log_error(MODULE, "cannot create topic %s: %s", topics[i].name, rd_kafka_err2str(err));
            goto out;
        }
        log_info(MODULE, "topic %s with %d partitions", topics[i].name, topics[i].partitions);
    }

    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (bootstrap_file && write_atomically(bootstrap_file, bootstraps) != 0)
        goto out;
    printf("%s\n", bootstraps);
    fflush(stdout);
    log_info(MODULE, "mock cluster of %d broker(s) up at %s", brokers, bootstraps);

    pthread_mutex_lock(&stop_lock);
    while (!stop_flag)
        pthread_cond_wait(&stop_cond, &stop_lock);
    pthread_mutex_unlock(&stop_lock);
    log_info(MODULE, "stopping");
    rc = 0;
out:
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk)
        rd_kafka_destroy(rk);
    for (size_t i = 0; i < ntopics; i++)
        free(topics[i].name);
    return rc;
}
