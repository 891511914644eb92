/* Records each user the first time a request of theirs arrives (backend.users), remembering per
 * loop thread who has been recorded with which email so that most requests skip the write. */
#ifndef BACKEND_USER_CACHE_H
#define BACKEND_USER_CACHE_H
#include "todo/auth.h"
#include "todo/db.h"

typedef struct user_cache user_cache_t;

/* new: caller frees with user_cache_free. */
user_cache_t *user_cache_new(void);
void user_cache_free(user_cache_t *c);
/* Makes sure backend.users holds claims' sub with its email and name. */
int user_cache_record(user_cache_t *c, db_t *db, const auth_claims_t *claims) TODO_WUR;
/* Forgets everything (after the database connection was lost the rows may be gone). */
void user_cache_clear(user_cache_t *c);

#endif
