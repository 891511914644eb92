/* The per-thread cache of recorded users; see user_cache.h. */
#include "user_cache.h"

#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"

#define USER_CACHE_SLOTS 1024

typedef struct {
    char sub[AUTH_SUB_MAX + 1];
    char email[AUTH_EMAIL_MAX + 1];
    char name[AUTH_NAME_MAX + 1];
} user_slot_t;

struct user_cache {
    user_slot_t slots[USER_CACHE_SLOTS];
};

user_cache_t *user_cache_new(void)
{
    return xcalloc(1, sizeof(user_cache_t));
}

void user_cache_free(user_cache_t *c)
{
    free(c);
}

void user_cache_clear(user_cache_t *c)
{
    memset(c->slots, 0, sizeof(c->slots));
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % USER_CACHE_SLOTS;
}

int user_cache_record(user_cache_t *c, db_t *db, const auth_claims_t *claims)
{
    user_slot_t *slot = &c->slots[hash(claims->sub)];
    if (strcmp(slot->sub, claims->sub) == 0 && strcmp(slot->email, claims->email) == 0 &&
        strcmp(slot->name, claims->name) == 0)
        return 0;

    const char *params[] = {claims->sub, claims->email, claims->name};
    int rc = db_query(db,
                      "INSERT INTO backend.users (id, email, name) VALUES ($1, $2, $3) "
                      "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, "
                      "name = EXCLUDED.name, updated_at = now() "
                      "WHERE users.email IS DISTINCT FROM EXCLUDED.email "
                      "OR users.name IS DISTINCT FROM EXCLUDED.name",
                      3, params, NULL);
    if (rc != 0)
        return rc;
    memcpy(slot->sub, claims->sub, sizeof(slot->sub));
    memcpy(slot->email, claims->email, sizeof(slot->email));
    memcpy(slot->name, claims->name, sizeof(slot->name));
    return 0;
}
