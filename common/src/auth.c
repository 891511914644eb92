/* Bearer-token authentication: the Authorization header is checked for shape, the JWT verified
 * by libjwt with the shared secret, and then held to the project's rules (HS256 only, claims). */
#include "todo/auth.h"

#include <jwt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "todo/json.h"

#define AUTH_TOKEN_MAX 8192

/* Only what a compact JWS can hold: base64url in three parts split by two dots. */
static bool token_shape_ok(const char *t, size_t len)
{
    int dots = 0;
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return false;
    }
    return dots == 2;
}

static bool sub_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > AUTH_SUB_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

/* A NumericDate claim: absent is fine unless required; present must be an integer. */
static bool time_claim(const json_t *claims, const char *key, bool required, int64_t *out,
                       bool *present)
{
    const json_t *v = json_object_get(claims, key);
    *present = v != NULL;
    if (!v)
        return !required;
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* An optional string claim copied into dst (cap bytes and the NUL); null counts as absent. */
static bool string_claim(const json_t *claims, const char *key, char *dst, size_t cap)
{
    const json_t *v = json_object_get(claims, key);
    dst[0] = '\0';
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) > cap)
        return false;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return true;
}

/* Checks the decoded claims against the rules; fills c. Returns NULL or the reason. */
static const char *check_claims(const json_t *claims, int64_t now, auth_claims_t *c)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    bool has;

    if (!time_claim(claims, "exp", true, &exp, &has))
        return has ? "exp is not an integer" : "exp is missing";
    if (now - AUTH_LEEWAY_SECONDS > exp)
        return "token expired";
    if (!time_claim(claims, "nbf", false, &nbf, &has))
        return "nbf is not an integer";
    if (has && nbf > now + AUTH_LEEWAY_SECONDS)
        return "token not yet valid";
    if (!time_claim(claims, "iat", false, &iat, &has))
        return "iat is not an integer";
    if (has && iat > now + AUTH_LEEWAY_SECONDS)
        return "token issued in the future";

    const json_t *sub = json_object_get(claims, "sub");
    if (!sub)
        return "sub is missing";
    if (!json_is_string(sub) || !sub_ok(json_string_value(sub)))
        return "sub is malformed";
    strcpy(c->sub, json_string_value(sub));
    if (!string_claim(claims, "email", c->email, AUTH_EMAIL_MAX))
        return "email is not a string of at most 320 bytes";
    if (!string_claim(claims, "name", c->name, AUTH_NAME_MAX))
        return "name is not a string of at most 200 bytes";
    c->exp = exp;
    return NULL;
}

int auth_verify_bearer(const char *header, const unsigned char *secret, size_t secret_len,
                       int64_t now, auth_claims_t *out, const char **why)
{
    int rc = TODO_EUNAUTHORIZED;
    const char *reason = "invalid token";
    jwt_t *jwt = NULL;
    char *grants = NULL;
    json_t *claims = NULL;
    const char *token = NULL;
    auth_claims_t c;

    memset(&c, 0, sizeof(c));
    memset(out, 0, sizeof(*out));
    if (!secret || secret_len == 0 || secret_len > INT_MAX) {
        reason = "no usable secret configured";
        goto out;
    }
    if (!header || !*header) {
        reason = "missing Authorization header";
        goto out;
    }
    if (strncasecmp(header, "Bearer ", 7) != 0) {
        reason = "Authorization scheme is not Bearer";
        goto out;
    }
    token = header + 7;
    if (!token_shape_ok(token, strnlen(token, AUTH_TOKEN_MAX + 1))) {
        reason = "malformed token";
        goto out;
    }
    if (jwt_decode(&jwt, token, secret, (int)secret_len) != 0) {
        jwt = NULL;
        reason = "token does not verify";
        goto out;
    }
    /* libjwt verifies with whatever algorithm the token names; only HS256 is ours. */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        reason = "token algorithm is not HS256";
        goto out;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    if (!grants || json_parse(grants, strlen(grants), true, &claims) != 0) {
        reason = "token claims are not a JSON object";
        goto out;
    }
    reason = check_claims(claims, now, &c);
    if (reason)
        goto out;

    *out = c;
    rc = 0;
out:
    if (why)
        *why = rc == 0 ? NULL : reason;
    json_decref(claims);
    free(grants);
    jwt_free(jwt);
    return rc;
}

char *auth_sign_hs256(const char *claims_json, const unsigned char *secret, size_t secret_len)
{
    jwt_t *jwt = NULL;
    char *token = NULL;

    if (!claims_json || !secret || secret_len == 0 || secret_len > INT_MAX)
        goto out;
    if (jwt_new(&jwt) != 0) {
        jwt = NULL;
        goto out;
    }
    if (jwt_add_grants_json(jwt, claims_json) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len) != 0)
        goto out;
    token = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    return token;
}
