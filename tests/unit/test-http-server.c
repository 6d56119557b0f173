/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The HTTP server on loopback: routing errors as problem+json, body limits
 * before the body is read, request ids, one metric per request, and a
 * server that keeps serving after bad input. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "http/cd-http-problem.h"
#include "http/cd-http-server.h"
#include "store/cd-store-error.h"

#include <string.h>

typedef struct {
  CdMetrics *metrics;
  CdHttpServer *server;
  char *base;    /* http://127.0.0.1:PORT */
  char *address; /* 127.0.0.1:PORT */
} Fixture;

static void
handle_echo (CdHttpRequest *request, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (JsonNode) root = NULL;
  CdJsonLimits limits = { 0, 8, FALSE };
  SoupMessageBody *request_body = soup_server_message_get_request_body (request->msg);

  body = soup_message_body_flatten (request_body);
  root = cd_json_parse_bounded (g_bytes_get_data (body, NULL), g_bytes_get_size (body), &limits,
                                &error);
  if (root == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  cd_http_respond_json (request->msg, 200, root);
}

static void
handle_item (CdHttpRequest *request, gpointer user_data)
{
  g_autofree char *text =
      g_strdup_printf ("{\"id\":\"%s\"}", (char *) g_hash_table_lookup (request->params, "id"));
  g_autoptr (JsonNode) node = json_from_string (text, NULL);

  cd_http_respond_json (request->msg, 200, node);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  GSList *uris;
  GUri *uri;

  f->metrics = cd_metrics_new ();
  f->server = cd_http_server_new (f->metrics, 1024);
  g_assert_true (cd_http_server_add_route (f->server, "POST", "/echo", handle_echo, NULL, &error));
  g_assert_true (
      cd_http_server_add_route (f->server, "GET", "/items/{id}", handle_item, NULL, &error));
  g_assert_true (cd_http_server_listen (f->server, "127.0.0.1", 0, &error));
  g_assert_no_error (error);
  uris = cd_http_server_get_uris (f->server);
  uri = uris->data;
  f->base = g_strdup_printf ("http://127.0.0.1:%d", g_uri_get_port (uri));
  f->address = g_strdup_printf ("127.0.0.1:%d", g_uri_get_port (uri));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->server);
  g_assert_finalize_object (f->metrics);
  g_free (f->base);
  g_free (f->address);
}

static JsonObject *
parse_problem (const char *body, guint status, const char *slug)
{
  g_autoptr (GError) error = NULL;
  JsonObject *problem = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_autofree char *type = g_strconcat (CD_PROBLEM_TYPE_PREFIX, slug, NULL);

  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (problem, "type"), ==, type);
  g_assert_cmpint (json_object_get_int_member (problem, "status"), ==, status);
  g_assert_nonnull (json_object_get_string_member (problem, "title"));
  g_assert_nonnull (json_object_get_string_member (problem, "detail"));
  g_assert_nonnull (json_object_get_string_member (problem, "request_id"));
  return problem;
}

static char *
url (Fixture *f, const char *path)
{
  return g_strconcat (f->base, path, NULL);
}

static void
test_routes_and_params (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/items/abc");
  g_autofree char *body = NULL;
  g_autofree char *type = NULL;

  g_assert_cmpuint (cd_test_http_get (u, &body, &type), ==, 200);
  g_assert_cmpstr (type, ==, "application/json");
  g_assert_cmpstr (body, ==, "{\"id\":\"abc\"}");
}

static void
test_not_found_is_problem (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/nowhere");
  g_autofree char *body = NULL;
  g_autofree char *type = NULL;
  g_autoptr (JsonObject) problem = NULL;

  g_assert_cmpuint (cd_test_http_get (u, &body, &type), ==, 404);
  g_assert_cmpstr (type, ==, "application/problem+json");
  problem = parse_problem (body, 404, "not-found");
  g_assert_nonnull (strstr (json_object_get_string_member (problem, "detail"), "/nowhere"));
}

static void
test_method_not_allowed (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/echo");
  g_autofree char *body = NULL;
  g_autoptr (GHashTable) headers = NULL;
  g_autoptr (JsonObject) problem = NULL;

  g_assert_cmpuint (cd_test_http_request ("GET", u, NULL, NULL, 0, NULL, &body, &headers), ==, 405);
  g_assert_cmpstr (g_hash_table_lookup (headers, "allow"), ==, "POST");
  problem = parse_problem (body, 405, "method-not-allowed");
}

static void
test_json_echo_and_bad_json (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/echo");
  g_autofree char *body = NULL;
  g_autofree char *body2 = NULL;
  g_autofree char *body3 = NULL;
  g_autoptr (JsonObject) problem = NULL;
  g_autoptr (JsonObject) problem2 = NULL;
  const char *dup = "{\"role\":\"agent\",\"role\":\"superadmin\"}";

  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", "{\"a\":[1,2]}", 11, NULL, &body, NULL),
      ==, 200);
  g_assert_cmpstr (body, ==, "{\"a\":[1,2]}");

  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", "{\"a\":", 5, NULL, &body2, NULL), ==,
      400);
  problem = parse_problem (body2, 400, "invalid-json");

  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", dup, strlen (dup), NULL, &body3, NULL),
      ==, 400);
  problem2 = parse_problem (body3, 400, "invalid-json");
  g_assert_nonnull (strstr (json_object_get_string_member (problem2, "detail"), "duplicate"));
}

static void
test_body_too_large (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/echo");
  g_autofree char *big = g_strnfill (4096, ' ');
  g_autofree char *body = NULL;
  g_autofree char *after = NULL;
  g_autoptr (JsonObject) problem = NULL;

  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", big, 4096, NULL, &body, NULL), ==, 413);
  problem = parse_problem (body, 413, "payload-too-large");
  g_assert_nonnull (strstr (json_object_get_string_member (problem, "detail"), "1024"));

  /* and the server still serves */
  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", "[]", 2, NULL, &after, NULL), ==, 200);
}

static void
test_huge_declared_length_refused_unread (Fixture *f, gconstpointer data)
{
  /* a client announcing 10 GB gets 413 at once, without sending a byte of it */
  const char *request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 10000000000\r\n\r\n";
  g_autofree char *response = cd_test_http_raw (f->address, request, strlen (request), 5000);

  g_test_message ("response: %s", response);
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 413"));
  g_assert_nonnull (strstr (response, "payload-too-large"));
}

static void
test_chunked_refused (Fixture *f, gconstpointer data)
{
  const char *request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n";
  g_autofree char *response = cd_test_http_raw (f->address, request, strlen (request), 5000);

  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 411"));
  g_assert_nonnull (strstr (response, "length-required"));
}

static void
test_garbage_request (Fixture *f, gconstpointer data)
{
  const char *request = "\x01\x02 NOT HTTP\r\n\r\n";
  g_autofree char *response = cd_test_http_raw (f->address, request, strlen (request), 5000);
  g_autofree char *u = url (f, "/items/x");

  g_test_message ("response: %s", response);
  g_assert_true (g_str_has_prefix (response, "HTTP/1.0 400") ||
                 g_str_has_prefix (response, "HTTP/1.1 400"));
  g_assert_cmpuint (cd_test_http_get (u, NULL, NULL), ==, 200);
}

static void
test_request_ids (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/items/1");
  g_autoptr (GHashTable) h1 = NULL;
  g_autoptr (GHashTable) h2 = NULL;
  const char *good[] = { "X-Request-Id", "abc-123_x.y", NULL };
  const char *bad[] = { "X-Request-Id", "has space<script>", NULL };
  const char *generated;

  g_assert_cmpuint (cd_test_http_request ("GET", u, NULL, NULL, 0, good, NULL, &h1), ==, 200);
  g_assert_cmpstr (g_hash_table_lookup (h1, "x-request-id"), ==, "abc-123_x.y");
  g_assert_cmpuint (cd_test_http_request ("GET", u, NULL, NULL, 0, bad, NULL, &h2), ==, 200);
  generated = g_hash_table_lookup (h2, "x-request-id");
  g_assert_nonnull (generated);
  g_assert_cmpuint (strlen (generated), ==, 16);
}

static void
test_metrics_count_requests (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/items/1");
  g_autofree char *missing = url (f, "/missing");

  g_assert_cmpuint (cd_test_http_get (u, NULL, NULL), ==, 200);
  g_assert_cmpuint (cd_test_http_get (u, NULL, NULL), ==, 200);
  g_assert_cmpuint (cd_test_http_get (missing, NULL, NULL), ==, 404);
  WAIT_UNTIL (cd_http_server_get_in_flight (f->server) == 0, 5000);
  g_assert_cmpfloat (cd_metrics_get (f->metrics, "calldocker_http_requests_total",
                                     "route=\"/items/{id}\",method=\"GET\",status=\"200\""),
                     ==, 2);
  g_assert_cmpfloat (cd_metrics_get (f->metrics, "calldocker_http_requests_total",
                                     "route=\"unmatched\",method=\"GET\",status=\"404\""),
                     ==, 1);
  g_assert_cmpfloat (cd_metrics_get (f->metrics, "calldocker_http_request_duration_seconds",
                                     "route=\"/items/{id}\""),
                     ==, 2);
}

static void
test_stop_refuses_connections (Fixture *f, gconstpointer data)
{
  g_autofree char *u = url (f, "/items/1");

  g_assert_cmpuint (cd_test_http_get (u, NULL, NULL), ==, 200);
  cd_http_server_stop (f->server);
  g_assert_true (cd_http_server_is_stopped (f->server));
  g_assert_cmpuint (cd_test_http_get (u, NULL, NULL), ==, 0);
}

static void
test_problem_mapping (void)
{
  static const struct {
    GQuark domain;
    int code;
    guint status;
    const char *slug;
    gboolean exposed;
  } rows[] = {
    { 0, CD_HTTP_ERROR_NOT_FOUND, 404, "not-found", TRUE },
    { 0, CD_HTTP_ERROR_PAYLOAD_TOO_LARGE, 413, "payload-too-large", TRUE },
    { 1, CD_JSON_ERROR_SYNTAX, 400, "invalid-json", TRUE },
    { 1, CD_JSON_ERROR_TOO_LARGE, 413, "payload-too-large", TRUE },
    { 2, CD_STORE_ERROR_UNAVAILABLE, 503, "store-unavailable", FALSE },
    { 2, CD_STORE_ERROR_CONSTRAINT, 409, "conflict", FALSE },
    { 2, CD_STORE_ERROR_QUERY, 500, "internal", FALSE },
    { 3, 0, 500, "internal", FALSE },
  };
  GQuark domains[] = { CD_HTTP_ERROR, CD_JSON_ERROR, CD_STORE_ERROR, G_IO_ERROR };

  for (gsize i = 0; i < G_N_ELEMENTS (rows); i++) {
    g_autoptr (GError) error = g_error_new_literal (domains[rows[i].domain], rows[i].code,
                                                    "SQLSTATE 42P01: secret detail");
    const CdProblemInfo *info = cd_problem_info_for_error (error);
    g_assert_cmpuint (info->status, ==, rows[i].status);
    g_assert_cmpstr (info->slug, ==, rows[i].slug);
    g_assert_cmpint (info->expose_detail, ==, rows[i].exposed);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/http/problem/mapping", test_problem_mapping);
#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/http/server/routes-and-params", test_routes_and_params);
  ADD ("/http/server/not-found-is-problem", test_not_found_is_problem);
  ADD ("/http/server/method-not-allowed", test_method_not_allowed);
  ADD ("/http/server/json-echo-and-bad-json", test_json_echo_and_bad_json);
  ADD ("/http/server/body-too-large", test_body_too_large);
  ADD ("/http/server/huge-declared-length-refused-unread",
       test_huge_declared_length_refused_unread);
  ADD ("/http/server/chunked-refused", test_chunked_refused);
  ADD ("/http/server/garbage-request", test_garbage_request);
  ADD ("/http/server/request-ids", test_request_ids);
  ADD ("/http/server/metrics-count-requests", test_metrics_count_requests);
  ADD ("/http/server/stop-refuses-connections", test_stop_refuses_connections);
#undef ADD
  return g_test_run ();
}
