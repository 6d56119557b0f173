/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routes: a method and a path pattern with {name} segments to a handler. */
#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct {
  SoupServerMessage *msg;
  const char *request_id;
  const char *route;  /* the matched pattern, e.g. /api/v1/companies/{id} */
  GHashTable *params; /* name -> decoded segment */
  GHashTable *query;  /* name -> decoded value; may be NULL */
} CdHttpRequest;

typedef void (*CdHttpHandler) (CdHttpRequest *request, gpointer user_data);

typedef struct _CdHttpRouter CdHttpRouter;

typedef enum {
  CD_ROUTE_FOUND,
  CD_ROUTE_NO_PATH,
  CD_ROUTE_NO_METHOD,
} CdRouteResult;

CdHttpRouter *cd_http_router_new (void);
void cd_http_router_free (CdHttpRouter *router);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdHttpRouter, cd_http_router_free)

gboolean cd_http_router_add (CdHttpRouter *router, const char *method, const char *pattern,
                             CdHttpHandler handler, gpointer user_data, GError **error);
GStrv cd_http_router_list (CdHttpRouter *router);
CdRouteResult cd_http_router_match (CdHttpRouter *router, const char *method, const char *path,
                                    const char **pattern, CdHttpHandler *handler,
                                    gpointer *user_data, GHashTable **params, char **allowed);

G_END_DECLS
