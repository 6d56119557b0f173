/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: request paths through the router (method on the first line). */

#include "http/cd-http-router.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
handler (CdHttpRequest *request, gpointer user_data)
{
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static CdHttpRouter *router;
  g_autofree char *text = g_strndup ((const char *) data, size);
  char *newline = strchr (text, '\n');
  const char *method = "GET";
  const char *path = text;
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  const char *pattern = NULL;
  CdHttpHandler h = NULL;
  gpointer user_data = NULL;

  if (router == NULL) {
    router = cd_http_router_new ();
    cd_http_router_add (router, "GET", "/healthz", handler, NULL, NULL);
    cd_http_router_add (router, "GET", "/api/v1/companies/{id}", handler, NULL, NULL);
    cd_http_router_add (router, "POST", "/api/v1/companies/{id}/queues", handler, NULL, NULL);
    cd_http_router_add (router, "GET", "/api/v1/companies/{id}/queues/{queue}", handler, NULL,
                        NULL);
  }
  if (newline) {
    *newline = '\0';
    method = text;
    path = newline + 1;
  }
  switch (
      cd_http_router_match (router, method, path, &pattern, &h, &user_data, &params, &allowed)) {
  case CD_ROUTE_FOUND:
    g_assert_nonnull (params);
    g_assert_true (h == handler);
    break;
  case CD_ROUTE_NO_METHOD:
    g_assert_nonnull (allowed);
    break;
  case CD_ROUTE_NO_PATH:
  default:
    g_assert_null (params);
    break;
  }
  return 0;
}
