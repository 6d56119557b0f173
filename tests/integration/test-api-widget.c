/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The widget session against the real daemon: origins, company status,
 * rate limits, CORS, the visitor token (signaling only) and TURN
 * credentials that coturn's use-auth-secret accepts. */

#include "auth/cd-jwt.h"
#include "auth/cd-turn.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <string.h>

#define SECRET "turn-shared-secret"

static char *state;
static CdTestDaemon *daemon_proc;
static char *approved, *pending, *suspended;

static guint
session (const char *origin, const char *json, char **body, GHashTable **headers)
{
  g_autofree char *u = g_strconcat (daemon_proc->base_url, "api/v1/widget/session", NULL);
  const char *h[] = { "Origin", origin, NULL };

  return cd_test_http_request ("POST", u, "application/json", json, strlen (json),
                               origin ? h : NULL, body, headers);
}

static char *
body_for (const char *company)
{
  return g_strdup_printf ("{\"company_id\":\"%s\"}", company);
}

static void
assert_problem (const char *body, const char *slug)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) o = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_autofree char *type = g_strconcat ("urn:calldocker:problem:", slug, NULL);

  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (o, "type"), ==, type);
}

static void
test_session_for_allowed_origin (void)
{
  g_autofree char *json = body_for (approved);
  g_autofree char *body = NULL;
  g_autoptr (GHashTable) headers = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) o = NULL;
  g_autoptr (CdJwtKeys) keys = cd_jwt_keys_new ();
  g_autofree char *key_path = g_build_filename (state, "auth", "jwt-keys", NULL);
  g_autoptr (CdJwtClaims) claims = NULL;
  JsonArray *servers;
  JsonObject *turn;
  g_autofree char *expected_user = NULL;
  g_autofree char *expected_password = NULL;
  gint64 expiry;

  g_assert_cmpuint (session ("https://shop.test", json, &body, &headers), ==, 201);
  g_assert_cmpstr (g_hash_table_lookup (headers, "access-control-allow-origin"), ==,
                   "https://shop.test");
  o = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_object_get_int_member (o, "expires_in"), ==, 900);

  /* the token: a visitor of this company, signed with the daemon's key */
  g_assert_true (cd_jwt_keys_load_file (keys, key_path, FALSE, NULL));
  claims = cd_jwt_verify (keys, json_object_get_string_member (o, "visitor_token"),
                          g_get_real_time () / G_USEC_PER_SEC, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (claims->role, ==, "visitor");
  g_assert_cmpstr (claims->company, ==, approved);
  g_assert_cmpstr (claims->sub, ==, json_object_get_string_member (o, "visitor_id"));

  /* STUN as configured; TURN with credentials coturn can check */
  servers = json_object_get_array_member (o, "ice_servers");
  g_assert_cmpuint (json_array_get_length (servers), ==, 2);
  g_assert_cmpstr (
      json_array_get_string_element (
          json_object_get_array_member (json_array_get_object_element (servers, 0), "urls"), 0),
      ==, "stun:stun.test:3478");
  turn = json_array_get_object_element (servers, 1);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (turn, "urls")), ==, 2);
  expiry = g_ascii_strtoll (json_object_get_string_member (turn, "username"), NULL, 10);
  g_assert_cmpint (expiry, >, g_get_real_time () / G_USEC_PER_SEC + 3500);
  g_assert_cmpint (expiry, <=, g_get_real_time () / G_USEC_PER_SEC + 3600);
  cd_turn_credentials (SECRET, claims->sub, expiry, &expected_user, &expected_password);
  g_assert_cmpstr (json_object_get_string_member (turn, "username"), ==, expected_user);
  g_assert_cmpstr (json_object_get_string_member (turn, "credential"), ==, expected_password);
}

static void
test_visitor_token_is_not_for_the_api (void)
{
  g_autofree char *json = body_for (approved);
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) o = NULL;
  g_autofree char *me = g_strconcat (daemon_proc->base_url, "api/v1/me", NULL);
  g_autofree char *bearer = NULL;
  g_autofree char *answer = NULL;

  g_assert_cmpuint (session ("https://shop.test", json, &body, NULL), ==, 201);
  o = cd_json_parse_object (body, strlen (body), NULL, NULL);
  bearer = g_strconcat ("Bearer ", json_object_get_string_member (o, "visitor_token"), NULL);
  {
    const char *h[] = { "Authorization", bearer, NULL };
    g_assert_cmpuint (cd_test_http_request ("GET", me, NULL, NULL, 0, h, &answer, NULL), ==, 401);
  }
  g_assert_nonnull (strstr (answer, "signaling only"));
}

static void
test_refusals (void)
{
  g_autofree char *ok = body_for (approved);
  g_autofree char *p = body_for (pending);
  g_autofree char *s = body_for (suspended);
  g_autofree char *unknown = body_for ("00000000-0000-4000-8000-000000000000");
  const struct {
    const char *origin;
    const char *json;
    guint status;
    const char *slug;
  } cases[] = {
    { "https://evil.test", ok, 403, "forbidden" },
    { "https://shop.test.evil.test", ok, 403, "forbidden" },
    { "http://shop.test", ok, 403, "forbidden" },
    { NULL, ok, 422, "invalid-field" },
    { "https://shop.test", p, 403, "account-disabled" },
    { "https://shop.test", s, 403, "account-disabled" },
    { "https://shop.test", unknown, 404, "not-found" },
    { "https://shop.test", "{\"company_id\":\"nope\"}", 422, "invalid-field" },
    { "https://shop.test", "{\"company_id\":\"' OR 1=1 --\"}", 422, "invalid-field" },
    { "https://shop.test", "{}", 422, "invalid-field" },
    { "https://shop.test", "{\"company_id\":null}", 422, "invalid-field" },
    { "https://shop.test", "{\"company_id\":", 400, "invalid-json" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *body = NULL;
    g_autoptr (GHashTable) headers = NULL;
    g_test_message ("case %zu", i);
    g_assert_cmpuint (session (cases[i].origin, cases[i].json, &body, &headers), ==,
                      cases[i].status);
    assert_problem (body, cases[i].slug);
    /* nothing readable by a foreign page */
    g_assert_null (g_hash_table_lookup (headers, "access-control-allow-origin"));
  }
}

static void
test_preflight (void)
{
  g_autofree char *u = g_strconcat (daemon_proc->base_url, "api/v1/widget/session", NULL);
  const char *h[] = { "Origin", "https://shop.test", "Access-Control-Request-Method", "POST",
                      NULL };
  g_autoptr (GHashTable) headers = NULL;

  g_assert_cmpuint (cd_test_http_request ("OPTIONS", u, NULL, NULL, 0, h, NULL, &headers), ==, 204);
  g_assert_cmpstr (g_hash_table_lookup (headers, "access-control-allow-origin"), ==,
                   "https://shop.test");
  g_assert_cmpstr (g_hash_table_lookup (headers, "access-control-allow-methods"), ==, "POST");
  g_assert_cmpstr (g_hash_table_lookup (headers, "access-control-allow-headers"), ==,
                   "Content-Type");
}

/* Last: it uses up this address's sessions. */
static void
test_rate_limited (void)
{
  g_autofree char *json = body_for (approved);
  guint status = 0;
  int allowed = 0;

  /* the limit is 10 a minute (set in start()); some were used above */
  for (int i = 0; i < 12 && status != 429; i++) {
    g_autofree char *body = NULL;
    status = session ("https://shop.test", json, &body, NULL);
    if (status == 201)
      allowed++;
    else
      assert_problem (body, "rate-limited");
  }
  g_assert_cmpuint (status, ==, 429);
  g_assert_cmpint (allowed, <=, 10);
}

static void
seed (void)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (
      owner,
      "WITH a AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Shop', 'shop', 'approved', ARRAY['https://shop.test']) RETURNING id),"
      " p AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Pend', 'pend', 'pending', ARRAY['https://shop.test']) RETURNING id),"
      " s AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Susp', 'susp', 'suspended', ARRAY['https://shop.test']) RETURNING id)"
      " SELECT (SELECT id FROM a), (SELECT id FROM p), (SELECT id FROM s)",
      NULL, 0, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  approved = g_strdup (PQgetvalue (res, 0, 0));
  pending = g_strdup (PQgetvalue (res, 0, 1));
  suspended = g_strdup (PQgetvalue (res, 0, 2));
  cd_pg_pool_close (owner);
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_ICE_STUN_URLS=stun:stun.test:3478",
                        "CALLDOCKER_ICE_TURN_URLS=turn:turn.test:3478?transport=udp, "
                        "turns:turn.test:5349",
                        "CALLDOCKER_ICE_TURN_SECRET=" SECRET,
                        "CALLDOCKER_WIDGET_SESSION_LIMIT_PER_ADDRESS=10", NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-widget-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  seed ();
  g_test_add_func ("/api/widget/session-for-allowed-origin", test_session_for_allowed_origin);
  g_test_add_func ("/api/widget/visitor-token-is-not-for-the-api",
                   test_visitor_token_is_not_for_the_api);
  g_test_add_func ("/api/widget/refusals", test_refusals);
  g_test_add_func ("/api/widget/preflight", test_preflight);
  g_test_add_func ("/api/widget/rate-limited", test_rate_limited);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (approved);
  g_free (pending);
  g_free (suspended);
  return status;
}
