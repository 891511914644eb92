/* CloudEvent envelopes of the publish path and of rawPayload deliveries, as daprd and
 * components-contrib's pubsub/envelope.go build them (DAPR-CONTRACT §1.2–§1.4, §3.1). */
#include "cloudevent.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cron.h"
#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

bool cloudevent_content_type_is(const char *content_type, const char *expected)
{
    if (!content_type)
        return false;
    size_t n = strcspn(content_type, ";"), elen = strlen(expected);
    return n == elen && strncasecmp(content_type, expected, n) == 0;
}

const char *cloudevent_meta(const broker_header_t *meta, size_t nmeta, const char *key)
{
    for (size_t i = 0; i < nmeta; i++) {
        if (meta[i].name && strcmp(meta[i].name, key) == 0)
            return meta[i].value;
    }
    return NULL;
}

/* cloudevent.* overrides are decoded with mapstructure, whose field matching ignores case. */
static const char *meta_fold(const broker_header_t *meta, size_t nmeta, const char *key)
{
    for (size_t i = 0; i < nmeta; i++) {
        if (meta[i].name && strcasecmp(meta[i].name, key) == 0)
            return meta[i].value;
    }
    return NULL;
}

bool cloudevent_ttl(const broker_header_t *meta, size_t nmeta, int64_t *ttl_usec)
{
    const char *v = cloudevent_meta(meta, nmeta, "ttlInSeconds");
    if (!v || !*v)
        v = cloudevent_meta(meta, nmeta, "ttl");
    if (!v || !*v)
        return false;
    char *end;
    errno = 0;
    long long secs = strtoll(v, &end, 10);
    if (*end == '\0' && end != v) {
        if (errno || secs <= 0 || secs > INT64_MAX / 1000000)
            return false;
        *ttl_usec = (int64_t)secs * 1000000;
        return true;
    }
    int64_t usec;
    if (cron_parse_go_duration(v, &usec) != 0 || usec <= 0)
        return false;
    *ttl_usec = usec;
    return true;
}

void cloudevent_format_local_time(int64_t usec, char out[32])
{
    time_t t = (time_t)(usec >= 0 ? usec / 1000000 : (usec - 999999) / 1000000);
    struct tm tm;
    localtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff;
    if (off == 0) {
        snprintf(out + n, 32 - n, "Z");
    } else {
        char sign = off < 0 ? '-' : '+';
        off = off < 0 ? -off : off;
        snprintf(out + n, 32 - n, "%c%02ld:%02ld", sign, off / 3600, (off / 60) % 60);
    }
}

/* ---- Go-style JSON writing ---------------------------------------------------------------- */

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length, or 0 when invalid (Go
 * then writes U+FFFD for that one byte). */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* Go encodeState.string: HTML-safe escaping, invalid UTF-8 → \ufffd. */
static int put_string(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_append(b, "\"", 1);
    for (size_t i = 0; i < n && rc == 0;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        if (c < 0x80) {
            i++;
            switch (c) {
            case '"':
                rc = buf_puts(b, "\\\"");
                break;
            case '\\':
                rc = buf_puts(b, "\\\\");
                break;
            case '\n':
                rc = buf_puts(b, "\\n");
                break;
            case '\r':
                rc = buf_puts(b, "\\r");
                break;
            case '\t':
                rc = buf_puts(b, "\\t");
                break;
            case '\b':
                rc = buf_puts(b, "\\b");
                break;
            case '\f':
                rc = buf_puts(b, "\\f");
                break;
            default:
                if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                    char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                    rc = buf_puts(b, e);
                } else {
                    rc = buf_append(b, &s[i - 1], 1);
                }
            }
            continue;
        }
        size_t len = utf8_seq((const unsigned char *)s + i, n - i, &cp);
        if (len == 0) {
            rc = buf_puts(b, "\\ufffd");
            i++;
        } else if (cp == 0x2028 || cp == 0x2029) {
            rc = buf_puts(b, cp == 0x2028 ? "\\u2028" : "\\u2029");
            i += len;
        } else {
            rc = buf_append(b, s + i, len);
            i += len;
        }
    }
    if (rc == 0)
        rc = buf_append(b, "\"", 1);
    return rc;
}

/* strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json chooses: shortest digits that
 * read back as f; exponent form below 1e-6 and from 1e21. */
static int put_real(buf_t *b, double f)
{
    char tmp[40], digits[24];
    int exp10 = 0;
    if (!isfinite(f))
        return buf_puts(b, "null"); /* jansson never holds these */
    if (f == 0)
        return buf_puts(b, signbit(f) ? "-0" : "0");
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp = [-]d[.ddd]e±XX */
    const char *q = tmp;
    bool neg = *q == '-';
    if (neg)
        q++;
    size_t nd = 0;
    for (; *q && *q != 'e'; q++) {
        if (*q != '.')
            digits[nd++] = *q;
    }
    digits[nd] = '\0';
    exp10 = atoi(q + 1); /* value = 0.d1d2… × 10^(exp10+1) */
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    double a = fabs(f);
    int rc = neg ? buf_puts(b, "-") : 0;
    if (rc)
        return rc;
    if (a < 1e-6 || a >= 1e21) {
        rc = buf_append(b, digits, 1);
        if (rc == 0 && nd > 1)
            rc = buf_printf(b, ".%s", digits + 1);
        if (rc == 0)
            rc = buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return rc;
    }
    if (exp10 < 0) {
        rc = buf_puts(b, "0.");
        for (int i = 0; rc == 0 && i < -exp10 - 1; i++)
            rc = buf_puts(b, "0");
        return rc ? rc : buf_puts(b, digits);
    }
    size_t ipart = (size_t)exp10 + 1;
    if (nd <= ipart) {
        rc = buf_puts(b, digits);
        for (size_t i = nd; rc == 0 && i < ipart; i++)
            rc = buf_puts(b, "0");
        return rc;
    }
    rc = buf_append(b, digits, ipart);
    return rc ? rc : buf_printf(b, ".%s", digits + ipart);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int put_value(buf_t *b, const json_t *v, int depth)
{
    int rc = 0;
    if (depth > 256)
        return TODO_EBAD_REQUEST;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        rc = buf_puts(b, "{");
        for (i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = buf_puts(b, ",");
            if (rc == 0)
                rc = put_string(b, keys[i], strlen(keys[i]));
            if (rc == 0)
                rc = buf_puts(b, ":");
            if (rc == 0)
                rc = put_value(b, json_object_get(v, keys[i]), depth + 1);
        }
        free(keys);
        return rc ? rc : buf_puts(b, "}");
    }
    case JSON_ARRAY:
        rc = buf_puts(b, "[");
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            if (i)
                rc = buf_puts(b, ",");
            if (rc == 0)
                rc = put_value(b, json_array_get(v, i), depth + 1);
        }
        return rc ? rc : buf_puts(b, "]");
    case JSON_STRING:
        return put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return put_real(b, json_real_value(v));
    case JSON_TRUE:
        return buf_puts(b, "true");
    case JSON_FALSE:
        return buf_puts(b, "false");
    case JSON_NULL:
        return buf_puts(b, "null");
    }
    return TODO_EINTERNAL;
}

char *cloudevent_dump(const json_t *v, size_t *len)
{
    buf_t b;
    buf_init(&b, 0);
    if (put_value(&b, v, 0) != 0 || buf_append(&b, "", 0) != 0) {
        buf_dispose(&b);
        *len = 0;
        return xstrdup("null");
    }
    *len = b.len;
    char *s = buf_steal(&b);
    buf_dispose(&b);
    return s;
}

/* ---- base64 ------------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cloudevent_base64(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        *o++ = b64[(v >> 18) & 63];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

bool cloudevent_base64_decode(const char *s, size_t slen, char **out, size_t *len)
{
    char *clean = xmalloc(slen + 1), *res = NULL;
    size_t n = 0, o = 0;
    bool ok = false;
    for (size_t i = 0; i < slen; i++) {
        if (s[i] != '\r' && s[i] != '\n')
            clean[n++] = s[i];
    }
    if (n % 4 != 0)
        goto out;
    res = xmalloc(n / 4 * 3 + 1);
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = clean[i + j];
            const char *f = c ? strchr(b64, c) : NULL;
            if (c == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (!f || pad)
                goto out;
            v[j] = (int)(f - b64);
        }
        if (pad == 1 && clean[i + 2] == '=')
            goto out;
        unsigned w = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        /* Go's StdEncoding is strict: unused bits must be zero */
        if ((pad == 2 && (w & 0xFFFF)) || (pad == 1 && (w & 0xFF)))
            goto out;
        res[o++] = (char)(w >> 16);
        if (pad < 2)
            res[o++] = (char)(w >> 8);
        if (pad < 1)
            res[o++] = (char)w;
    }
    res[o] = '\0';
    *out = res;
    *len = o;
    res = NULL;
    ok = true;
out:
    free(res);
    free(clean);
    return ok;
}

/* ---- envelopes ---------------------------------------------------------------------------- */

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD (Go's string → JSON). */
static json_t *bytes_string(const void *data, size_t len)
{
    const unsigned char *s = data;
    buf_t b;
    buf_init(&b, 0);
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t n = utf8_seq(s + i, len - i, &cp);
        if (buf_append(&b, n ? (const char *)s + i : "\xEF\xBF\xBD", n ? n : 3) != 0)
            break;
        i += n ? n : 1;
    }
    json_t *v = json_stringn(b.data ? b.data : "", b.len);
    buf_dispose(&b);
    return v ? v : json_string("");
}

static void set_str(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, bytes_string(v, strlen(v)));
}

/* envelope.go NewCloudEventsEnvelope (§1.2). */
static json_t *wrap(const cloudevent_req_t *r)
{
    const broker_header_t *m = r->meta;
    size_t nm = r->nmeta;
    /* cloudevent.* overrides (dapr pkg/runtime/pubsub/cloudevents.go) */
    const char *id = meta_fold(m, nm, "cloudevent.id");
    const char *source = meta_fold(m, nm, "cloudevent.source");
    const char *type = meta_fold(m, nm, "cloudevent.type");
    const char *subject = meta_fold(m, nm, "cloudevent.subject");
    const char *traceid = meta_fold(m, nm, "cloudevent.traceid");
    const char *traceparent = meta_fold(m, nm, "cloudevent.traceparent");
    const char *tracestate = meta_fold(m, nm, "cloudevent.tracestate");
    char uuid[TODO_UUID_LEN], now[32];

    if (!source)
        source = r->app_id;
    if (!traceid || !*traceid)
        traceid = r->traceparent ? r->traceparent : "";
    if (traceparent && *traceparent)
        traceid = traceparent;
    if (!tracestate)
        tracestate = r->tracestate ? r->tracestate : "";
    if (!id || !*id) {
        todo_uuid_v4(uuid);
        id = uuid;
    }
    const char *ct = r->content_type && *r->content_type ? r->content_type : "text/plain";

    json_t *ce = json_object();
    set_str(ce, "id", id);
    set_str(ce, "specversion", "1.0");
    set_str(ce, "source", source && *source ? source : CLOUDEVENT_DEFAULT_SOURCE);
    set_str(ce, "type", type && *type ? type : CLOUDEVENT_DEFAULT_TYPE);
    set_str(ce, "datacontenttype", ct);
    set_str(ce, "topic", r->topic);
    set_str(ce, "pubsubname", r->pubsubname);
    set_str(ce, "traceid", traceid);
    set_str(ce, "traceparent", traceid);
    set_str(ce, "tracestate", tracestate);
    if (subject && *subject)
        set_str(ce, "subject", subject);
    cloudevent_format_local_time(r->now_usec, now);
    set_str(ce, "time", now);

    if (cloudevent_content_type_is(ct, "application/json")) {
        /* parsed into data; not JSON → the body as a string */
        json_error_t jerr;
        json_t *d =
            r->len ? json_loadb(r->data, r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr) : NULL;
        json_object_set_new(ce, "data", d ? d : bytes_string(r->data, r->len));
    } else if (cloudevent_content_type_is(ct, "application/octet-stream") ||
               cloudevent_content_type_is(ct, "application/cloudevents+protobuf")) {
        char *b = cloudevent_base64(r->data, r->len);
        set_str(ce, "data_base64", b);
        free(b);
    } else {
        json_object_set_new(ce, "data", bytes_string(r->data, r->len));
    }
    return ce;
}

/* envelope.go FromCloudEvent (§1.3); NULL when the body is not a JSON object or null. */
static json_t *complete(const cloudevent_req_t *r, char **err)
{
    json_error_t jerr;
    json_t *ce = json_loadb(r->data, r->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    char now[32];
    if (!ce) {
        *err = xasprintf("%s", jerr.text);
        return NULL;
    }
    if (json_is_null(ce)) {
        json_decref(ce);
        ce = json_object();
    }
    if (!json_is_object(ce)) {
        *err = xstrdup("the cloud event is not a JSON object");
        json_decref(ce);
        return NULL;
    }
    set_str(ce, "topic", r->topic);
    set_str(ce, "pubsubname", r->pubsubname);
    if (!json_object_get(ce, "source"))
        set_str(ce, "source", CLOUDEVENT_DEFAULT_SOURCE);
    if (!json_object_get(ce, "type"))
        set_str(ce, "type", CLOUDEVENT_DEFAULT_TYPE);
    if (!json_object_get(ce, "specversion"))
        set_str(ce, "specversion", "1.0");
    if (!json_object_get(ce, "traceid")) {
        set_str(ce, "traceid", r->traceparent ? r->traceparent : "");
        set_str(ce, "traceparent", r->traceparent ? r->traceparent : "");
    }
    if (!json_object_get(ce, "tracestate"))
        set_str(ce, "tracestate", r->tracestate ? r->tracestate : "");
    if (!json_object_get(ce, "time")) {
        cloudevent_format_local_time(r->now_usec, now);
        set_str(ce, "time", now);
    }
    return ce;
}

int cloudevent_envelope(const cloudevent_req_t *r, char **out, size_t *len, char **err)
{
    int rc = TODO_EINVALID_JSON;
    json_t *ce = NULL;
    int64_t ttl;
    char exp[TIME_RFC3339_LEN];

    *out = NULL;
    *len = 0;
    *err = NULL;
    if (cloudevent_content_type_is(r->content_type, CLOUDEVENT_CONTENT_TYPE))
        ce = complete(r, err);
    else
        ce = wrap(r);
    if (!ce)
        goto out;
    /* envelope.go ApplyMetadata: the component lacks the TTL feature → `expiration` (UTC,
     * seconds); an invalid TTL is ignored */
    if (cloudevent_ttl(r->meta, r->nmeta, &ttl)) {
        int64_t t = r->now_usec + ttl;
        time_format_rfc3339(t - ((t % 1000000) + 1000000) % 1000000, exp);
        set_str(ce, "expiration", exp);
    }
    *out = cloudevent_dump(ce, len);
    rc = 0;
out:
    json_decref(ce);
    return rc;
}

int cloudevent_bulk_event_bytes(const json_t *event, const char *content_type, char **out,
                                size_t *len, char **err)
{
    const char *ct = content_type ? content_type : "";
    *out = NULL;
    *len = 0;
    *err = NULL;
    if (cloudevent_content_type_is(ct, "application/octet-stream")) {
        if (!json_is_string(event)) {
            *err = xasprintf("error: expected event to be a base64 string for content type %s", ct);
            return TODO_EBAD_REQUEST;
        }
        if (!cloudevent_base64_decode(json_string_value(event), json_string_length(event), out,
                                      len)) {
            *err = xasprintf("error: failed to decode base64 event for content type %s", ct);
            return TODO_EBAD_REQUEST;
        }
        return 0;
    }
    if (strncasecmp(ct, "text/", 5) == 0 || cloudevent_content_type_is(ct, "application/xml")) {
        if (!json_is_string(event)) {
            *err = xasprintf("error: expected event to be a string for content type %s", ct);
            return TODO_EBAD_REQUEST;
        }
        *len = json_string_length(event);
        *out = xmalloc(*len + 1);
        memcpy(*out, json_string_value(event), *len + 1);
        return 0;
    }
    if (cloudevent_content_type_is(ct, "application/json") ||
        cloudevent_content_type_is(ct, CLOUDEVENT_CONTENT_TYPE)) {
        *out = cloudevent_dump(event, len);
        return 0;
    }
    *err = xasprintf("error: content type %s not supported", ct);
    return TODO_EBAD_REQUEST;
}

char *cloudevent_from_raw_payload(const void *data, size_t len, const char *topic,
                                  const char *pubsubname, const char *traceparent,
                                  const char *tracestate, size_t *out_len)
{
    char uuid[TODO_UUID_LEN];
    json_t *ce = json_object();
    todo_uuid_v4(uuid);
    set_str(ce, "id", uuid);
    set_str(ce, "specversion", "1.0");
    set_str(ce, "datacontenttype", "application/octet-stream");
    set_str(ce, "source", CLOUDEVENT_DEFAULT_SOURCE);
    set_str(ce, "type", CLOUDEVENT_DEFAULT_TYPE);
    set_str(ce, "topic", topic);
    set_str(ce, "pubsubname", pubsubname);
    char *b = cloudevent_base64(data, len);
    set_str(ce, "data_base64", b);
    free(b);
    if (traceparent) {
        set_str(ce, "traceid", traceparent);
        set_str(ce, "traceparent", traceparent);
    }
    if (tracestate)
        set_str(ce, "tracestate", tracestate);
    char *s = cloudevent_dump(ce, out_len);
    json_decref(ce);
    return s;
}

bool cloudevent_expired(const json_t *event, int64_t now_usec)
{
    const json_t *e = json_is_object(event) ? json_object_get(event, "expiration") : NULL;
    int64_t t;
    if (!json_is_string(e) || time_parse_rfc3339(json_string_value(e), &t) != 0)
        return false;
    return t < now_usec;
}
