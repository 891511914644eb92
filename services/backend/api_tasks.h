/* REST routes of tasks: CRUD, list with filters/search/sort/pagination, complete/reopen/toggle,
 * snooze, and tag assignment. */
#ifndef BACKEND_API_TASKS_H
#define BACKEND_API_TASKS_H
#include "todo/http_server.h"

int api_tasks_register(http_server_t *srv) TODO_WUR;

#endif
