/* Unit test of common/src/auth.c: a good token passes with its claims; every broken header,
 * signature, algorithm, time claim and subject is refused for the right reason. */
#include <jwt.h>
#include <stdlib.h>

#include "check.h"
#include "todo/auth.h"

#define NOW INT64_C(1700000000)

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
#define SECRET_LEN (sizeof(secret) - 1)

/* A token for the claims, signed with alg and key (alg NONE: unsigned). New. */
static char *sign(const char *claims, jwt_alg_t alg, const unsigned char *key, size_t key_len)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, claims) == 0 &&
        (alg == JWT_ALG_NONE || jwt_set_alg(jwt, alg, key, (int)key_len) == 0))
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

/* Verifies "Bearer <token>"; returns the reason (NULL when accepted) and checks rc agrees. */
static const char *verify_token(const char *token, auth_claims_t *c)
{
    char header[20000];
    const char *why = "not set";
    snprintf(header, sizeof(header), "Bearer %s", token ? token : "");
    int rc = auth_verify_bearer(header, secret, SECRET_LEN, NOW, c, &why);
    CHECK(rc == 0 ? why == NULL : (rc == TODO_EUNAUTHORIZED && why != NULL));
    return rc == 0 ? NULL : why;
}

/* Signs claims with our secret and verifies; returns the reason (NULL when accepted). */
static const char *verify_claims(const char *claims)
{
    auth_claims_t c;
    char *token = auth_sign_hs256(claims, secret, SECRET_LEN);
    CHECK(token != NULL);
    const char *why = verify_token(token, &c);
    free(token);
    return why;
}

static const char *verify_header(const char *header)
{
    auth_claims_t c;
    const char *why = "not set";
    int rc = auth_verify_bearer(header, secret, SECRET_LEN, NOW, &c, &why);
    CHECK(rc == 0 ? why == NULL : rc == TODO_EUNAUTHORIZED);
    return rc == 0 ? NULL : why;
}

#define REFUSED(why, expected)                           \
    do {                                                 \
        const char *why_ = (why);                        \
        CHECK_STR(why_ ? why_ : "(accepted)", expected); \
    } while (0)
#define ACCEPTED(why) REFUSED(why, "(accepted)")

int main(void)
{
    char claims[12000];
    auth_claims_t c;

    /* The good token, and its claims. */
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"user-1@example.com\",\"email\":\"ann@example.com\",\"name\":\"Ann\","
             "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
             (long long)NOW - 10, (long long)NOW - 10, (long long)NOW + 3600);
    char *good = auth_sign_hs256(claims, secret, SECRET_LEN);
    CHECK(good != NULL);
    ACCEPTED(verify_token(good, &c));
    CHECK_STR(c.sub, "user-1@example.com");
    CHECK_STR(c.email, "ann@example.com");
    CHECK_STR(c.name, "Ann");
    CHECK_INT(c.exp, NOW + 3600);
    char header[9000];
    snprintf(header, sizeof(header), "bearer %s", good);
    ACCEPTED(verify_header(header)); /* the scheme is case-insensitive */
    snprintf(header, sizeof(header), "BEARER %s", good);
    ACCEPTED(verify_header(header));
    CHECK_INT(auth_verify_bearer(header, secret, SECRET_LEN, NOW, &c, NULL), 0); /* why optional */

    /* The header itself. */
    REFUSED(verify_header(NULL), "missing Authorization header");
    REFUSED(verify_header(""), "missing Authorization header");
    snprintf(header, sizeof(header), "Basic %s", good);
    REFUSED(verify_header(header), "Authorization scheme is not Bearer");
    REFUSED(verify_header("Bearer"), "Authorization scheme is not Bearer");
    snprintf(header, sizeof(header), "Bearer%s", good);
    REFUSED(verify_header(header), "Authorization scheme is not Bearer");
    snprintf(header, sizeof(header), "Bearer  %s", good);
    REFUSED(verify_header(header), "malformed token");
    snprintf(header, sizeof(header), "Bearer %s ", good);
    REFUSED(verify_header(header), "malformed token");
    snprintf(header, sizeof(header), "Bearer\t%s", good);
    REFUSED(verify_header(header), "Authorization scheme is not Bearer");
    REFUSED(verify_header("Bearer "), "malformed token");
    REFUSED(verify_header("Bearer abc"), "malformed token");
    REFUSED(verify_header("Bearer a.b"), "malformed token");
    REFUSED(verify_header("Bearer a.b.c.d"), "malformed token");
    REFUSED(verify_header("Bearer a+b.c/d.e="), "malformed token");
    REFUSED(verify_header("Bearer a.b.c"), "token does not verify");
    REFUSED(verify_header("Bearer .."), "token does not verify");

    /* A wrong key, or a changed payload or signature. */
    char *other = auth_sign_hs256(claims, (const unsigned char *)"another secret", 14);
    REFUSED(verify_token(other, &c), "token does not verify");
    CHECK_STR(c.sub, ""); /* nothing is filled on failure */
    free(other);
    char *tampered = strdup(good);
    char *dot = strchr(tampered, '.');
    dot[1] = dot[1] == 'e' ? 'f' : 'e';
    REFUSED(verify_token(tampered, &c), "token does not verify");
    strcpy(tampered, good);
    char *last = tampered + strlen(tampered) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    REFUSED(verify_token(tampered, &c), "token does not verify");
    free(tampered);
    CHECK_INT(auth_verify_bearer("Bearer x.y.z", NULL, 0, NOW, &c, NULL), TODO_EUNAUTHORIZED);
    snprintf(header, sizeof(header), "Bearer %s", good);
    const char *why = NULL;
    CHECK_INT(auth_verify_bearer(header, secret, 0, NOW, &c, &why), TODO_EUNAUTHORIZED);
    CHECK_STR(why, "no usable secret configured");

    /* Other algorithms: unsigned, and HMAC variants that verify with the same secret. */
    char *none = sign(claims, JWT_ALG_NONE, NULL, 0);
    CHECK(none != NULL);
    why = verify_token(none, &c);
    CHECK(why != NULL); /* refused, whether by libjwt or by the algorithm check */
    free(none);
    /* {"alg":"none","typ":"JWT"} with the good payload and signature. */
    snprintf(header, sizeof(header), "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%s",
             strchr(good, '.'));
    CHECK(verify_header(header) != NULL);
    char *hs512 = sign(claims, JWT_ALG_HS512, secret, SECRET_LEN);
    CHECK(hs512 != NULL);
    REFUSED(verify_token(hs512, &c), "token algorithm is not HS256");
    free(hs512);
    char *hs384 = sign(claims, JWT_ALG_HS384, secret, SECRET_LEN);
    REFUSED(verify_token(hs384, &c), "token algorithm is not HS256");
    free(hs384);
    char *hs256 = sign(claims, JWT_ALG_HS256, secret, SECRET_LEN);
    ACCEPTED(verify_token(hs256, &c));
    free(hs256);

    /* Expiry, with 60 seconds of leeway. */
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW - 60);
    ACCEPTED(verify_claims(claims));
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW - 61);
    REFUSED(verify_claims(claims), "token expired");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW - 86400);
    REFUSED(verify_claims(claims), "token expired");
    REFUSED(verify_claims("{\"sub\":\"u\"}"), "exp is missing");
    REFUSED(verify_claims("{\"sub\":\"u\",\"exp\":\"1800000000\"}"), "exp is not an integer");
    REFUSED(verify_claims("{\"sub\":\"u\",\"exp\":1800000000.5}"), "exp is not an integer");
    REFUSED(verify_claims("{\"sub\":\"u\",\"exp\":null}"), "exp is not an integer");
    REFUSED(verify_claims("{\"sub\":\"u\",\"exp\":-9223372036854775808}"), "token expired");
    ACCEPTED(verify_claims("{\"sub\":\"u\",\"exp\":9223372036854775807}"));

    /* Not before and issued at: not in the future beyond the leeway. */
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)NOW + 3600, (long long)NOW + 60);
    ACCEPTED(verify_claims(claims));
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)NOW + 3600, (long long)NOW + 61);
    REFUSED(verify_claims(claims), "token not yet valid");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":\"soon\"}",
             (long long)NOW + 3600);
    REFUSED(verify_claims(claims), "nbf is not an integer");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"iat\":%lld}",
             (long long)NOW + 3600, (long long)NOW + 3000);
    REFUSED(verify_claims(claims), "token issued in the future");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"iat\":1.5}",
             (long long)NOW + 3600);
    REFUSED(verify_claims(claims), "iat is not an integer");

    /* The subject. */
    const char *bad_subs[] = {
        "\"\"",      "\"user 1\"",   "\"us/er\"", "\"us:er\"", "\"j\\u00fcrgen\"",
        "\"a\\nb\"", "\"<script>\"", "42",        "null",      "[\"u\"]",
        "{}"};
    for (size_t i = 0; i < sizeof(bad_subs) / sizeof(bad_subs[0]); i++) {
        snprintf(claims, sizeof(claims), "{\"sub\":%s,\"exp\":%lld}", bad_subs[i],
                 (long long)NOW + 3600);
        REFUSED(verify_claims(claims), "sub is malformed");
    }
    snprintf(claims, sizeof(claims), "{\"exp\":%lld}", (long long)NOW + 3600);
    REFUSED(verify_claims(claims), "sub is missing");
    char sub[200];
    memset(sub, 'a', sizeof(sub));
    snprintf(claims, sizeof(claims), "{\"sub\":\"%.*s\",\"exp\":%lld}", AUTH_SUB_MAX, sub,
             (long long)NOW + 3600);
    ACCEPTED(verify_claims(claims));
    snprintf(claims, sizeof(claims), "{\"sub\":\"%.*s\",\"exp\":%lld}", AUTH_SUB_MAX + 1, sub,
             (long long)NOW + 3600);
    REFUSED(verify_claims(claims), "sub is malformed");
    snprintf(claims, sizeof(claims), "{\"sub\":\"A.b_c-d@e.f0\",\"exp\":%lld}",
             (long long)NOW + 3600);
    ACCEPTED(verify_claims(claims));

    /* Optional email and name: strings within their caps; null counts as absent. */
    char longer[400];
    memset(longer, 'x', sizeof(longer));
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"email\":null,\"name\":null}",
             (long long)NOW + 3600);
    ACCEPTED(verify_claims(claims));
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"email\":\"%.*s\"}",
             (long long)NOW + 3600, AUTH_EMAIL_MAX, longer);
    ACCEPTED(verify_claims(claims));
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"email\":\"%.*s\"}",
             (long long)NOW + 3600, AUTH_EMAIL_MAX + 1, longer);
    REFUSED(verify_claims(claims), "email is not a string of at most 320 bytes");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"email\":7}",
             (long long)NOW + 3600);
    REFUSED(verify_claims(claims), "email is not a string of at most 320 bytes");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"name\":\"%.*s\"}",
             (long long)NOW + 3600, AUTH_NAME_MAX + 1, longer);
    REFUSED(verify_claims(claims), "name is not a string of at most 200 bytes");
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"name\":[\"Ann\"]}",
             (long long)NOW + 3600);
    REFUSED(verify_claims(claims), "name is not a string of at most 200 bytes");

    /* A token longer than the cap is refused before it is decoded. */
    char pad[9000];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"pad\":\"%s\"}",
             (long long)NOW + 3600, pad);
    REFUSED(verify_claims(claims), "malformed token");

    /* Signing refuses what it cannot sign. */
    CHECK(auth_sign_hs256("{\"sub\":\"u\"}", secret, 0) == NULL);
    CHECK(auth_sign_hs256("not json", secret, SECRET_LEN) == NULL);
    CHECK(auth_sign_hs256(NULL, secret, SECRET_LEN) == NULL);
    free(good);
    return check_exit();
}
