/* Bearer-token authentication: JWT HS256 verification with libjwt and the project's claim rules. */
#ifndef TODO_AUTH_H
#define TODO_AUTH_H
#include <stddef.h>
#include <stdint.h>
#include "todo/error.h"

#define AUTH_SUB_MAX        128
#define AUTH_EMAIL_MAX      320
#define AUTH_NAME_MAX       200
#define AUTH_LEEWAY_SECONDS 60

typedef struct {
    char sub[AUTH_SUB_MAX + 1];     /* 1–128 chars of [A-Za-z0-9._@-] */
    char email[AUTH_EMAIL_MAX + 1]; /* "" when absent */
    char name[AUTH_NAME_MAX + 1];   /* "" when absent */
    int64_t exp;                    /* seconds since the epoch */
} auth_claims_t;

/* Verifies the value of an Authorization header ("Bearer <jwt>") against secret at time now
 * (seconds): algorithm HS256 only, valid signature, exp required and not past (leeway 60 s),
 * nbf and iat not in the future (leeway 60 s), sub well-formed, email and name strings if present.
 * Any failure → TODO_EUNAUTHORIZED, *why set to a static reason safe to log (never the token). */
int auth_verify_bearer(const char *header, const unsigned char *secret, size_t secret_len,
                       int64_t now, auth_claims_t *out, const char **why) TODO_WUR;

/* Signs claims as HS256 (for tests and local tooling). Returns a new string or NULL. */
char *auth_sign_hs256(const char *claims_json, const unsigned char *secret, size_t secret_len);

#endif
