/* REST routes of categories and tags: list (with task counts), create, get, rename/recolour,
 * delete. */
#ifndef BACKEND_API_LABELS_H
#define BACKEND_API_LABELS_H
#include "todo/http_server.h"

int api_labels_register(http_server_t *srv) TODO_WUR;

#endif
