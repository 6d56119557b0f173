/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The router: patterns, parameters, 404 against 405, precedence. */

#include "http/cd-http-router.h"

static void
handler_a (CdHttpRequest *request, gpointer user_data)
{
}

static void
handler_b (CdHttpRequest *request, gpointer user_data)
{
}

static CdHttpRouter *
make_router (void)
{
  CdHttpRouter *router = cd_http_router_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (cd_http_router_add (router, "GET", "/healthz", handler_a, NULL, &error));
  g_assert_true (
      cd_http_router_add (router, "GET", "/api/v1/companies/{id}", handler_a, NULL, &error));
  g_assert_true (
      cd_http_router_add (router, "PATCH", "/api/v1/companies/{id}", handler_b, NULL, &error));
  g_assert_true (
      cd_http_router_add (router, "GET", "/api/v1/companies/mine", handler_b, NULL, &error));
  g_assert_true (cd_http_router_add (router, "GET", "/api/v1/companies/{id}/queues/{queue}",
                                     handler_b, NULL, &error));
  g_assert_no_error (error);
  return router;
}

static void
test_match_params (void)
{
  g_autoptr (CdHttpRouter) router = make_router ();
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  const char *pattern = NULL;
  CdHttpHandler handler = NULL;
  gpointer data = NULL;

  g_assert_cmpint (cd_http_router_match (router, "GET", "/api/v1/companies/c%20x/queues/q1",
                                         &pattern, &handler, &data, &params, &allowed),
                   ==, CD_ROUTE_FOUND);
  g_assert_cmpstr (pattern, ==, "/api/v1/companies/{id}/queues/{queue}");
  g_assert_true (handler == handler_b);
  g_assert_cmpstr (g_hash_table_lookup (params, "id"), ==, "c x");
  g_assert_cmpstr (g_hash_table_lookup (params, "queue"), ==, "q1");
}

static void
test_literal_wins (void)
{
  g_autoptr (CdHttpRouter) router = make_router ();
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  const char *pattern = NULL;
  CdHttpHandler handler = NULL;
  gpointer data = NULL;

  g_assert_cmpint (cd_http_router_match (router, "GET", "/api/v1/companies/mine", &pattern,
                                         &handler, &data, &params, &allowed),
                   ==, CD_ROUTE_FOUND);
  g_assert_cmpstr (pattern, ==, "/api/v1/companies/mine");
}

static void
test_method_not_allowed (void)
{
  g_autoptr (CdHttpRouter) router = make_router ();
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  const char *pattern = NULL;
  CdHttpHandler handler = NULL;
  gpointer data = NULL;

  g_assert_cmpint (cd_http_router_match (router, "DELETE", "/api/v1/companies/7", &pattern,
                                         &handler, &data, &params, &allowed),
                   ==, CD_ROUTE_NO_METHOD);
  g_assert_cmpstr (allowed, ==, "GET, PATCH");
}

static void
test_head_is_get (void)
{
  g_autoptr (CdHttpRouter) router = make_router ();
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  const char *pattern = NULL;
  CdHttpHandler handler = NULL;
  gpointer data = NULL;

  g_assert_cmpint (cd_http_router_match (router, "HEAD", "/healthz", &pattern, &handler, &data,
                                         &params, &allowed),
                   ==, CD_ROUTE_FOUND);
}

static void
test_not_found (void)
{
  static const char *paths[] = {
    "/nothing",
    "/healthz/",
    "//healthz",
    "/api/v1/companies/",
    "/api/v1/companies//queues/x",
    "/api/v1/companies/a%2Fb",
    "healthz",
    "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
  };
  g_autoptr (CdHttpRouter) router = make_router ();

  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++) {
    g_autoptr (GHashTable) params = NULL;
    g_autofree char *allowed = NULL;
    const char *pattern = NULL;
    CdHttpHandler handler = NULL;
    gpointer data = NULL;
    g_test_message ("%s", paths[i]);
    g_assert_cmpint (cd_http_router_match (router, "GET", paths[i], &pattern, &handler, &data,
                                           &params, &allowed),
                     ==, CD_ROUTE_NO_PATH);
    g_assert_null (params);
  }
}

static void
test_refuses_duplicate_routes (void)
{
  g_autoptr (CdHttpRouter) router = make_router ();
  g_autoptr (GError) error = NULL;

  g_assert_false (cd_http_router_add (router, "GET", "/healthz", handler_b, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (cd_http_router_add (router, "GET", "relative", handler_b, NULL, &error));
  g_assert_nonnull (error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/http/router/params", test_match_params);
  g_test_add_func ("/http/router/literal-wins", test_literal_wins);
  g_test_add_func ("/http/router/method-not-allowed", test_method_not_allowed);
  g_test_add_func ("/http/router/head-is-get", test_head_is_get);
  g_test_add_func ("/http/router/not-found", test_not_found);
  g_test_add_func ("/http/router/refuses-duplicates", test_refuses_duplicate_routes);
  return g_test_run ();
}
