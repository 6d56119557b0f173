/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cd-test-seed.h"

#include "auth/cd-password.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <string.h>

char *
cd_test_seed_company (const char *state, const char *slug, const char *origin, guint agents,
                      const char *password)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, password, NULL);
  g_autofree char *count = g_strdup_printf ("%u", agents);
  const char *params[] = { slug, origin, hash, count };
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (
      owner,
      "WITH a AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ($1, $1, 'approved', ARRAY[$2]) RETURNING id),"
      " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
      "  SELECT a.id, 'admin@' || $1 || '.test', $3, 'company_admin', 'Admin' FROM a"
      "  UNION ALL SELECT a.id, 'agent' || n || '@' || $1 || '.test', $3, 'agent', 'Agent ' || n"
      "  FROM a, generate_series(1, $4::int) n RETURNING 1)"
      " SELECT (SELECT id FROM a), (SELECT count(*) FROM u)",
      params, G_N_ELEMENTS (params), NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_ascii_strtoll (PQgetvalue (res, 0, 1), NULL, 10), ==, agents + 1);
  cd_pg_pool_close (owner);
  return g_strdup (PQgetvalue (res, 0, 0));
}

PGresult *
cd_test_state_sql (const char *state, const char *sql, const char *const *params, int n)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  PGresult *res;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (owner, sql, params, n, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (owner);
  return res;
}

char *
cd_test_login (const char *base_url, const char *email, const char *password)
{
  g_autofree char *url = g_strconcat (base_url, "api/v1/auth/login", NULL);
  g_autofree char *json =
      g_strdup_printf ("{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) o = NULL;

  g_assert_cmpuint (cd_test_http_request ("POST", url, "application/json", json, strlen (json),
                                          NULL, &body, NULL),
                    ==, 200);
  o = cd_json_parse_object (body, strlen (body), NULL, NULL);
  g_assert_nonnull (o);
  return g_strdup (json_object_get_string_member (o, "access_token"));
}

char *
cd_test_visitor_token (const char *base_url, const char *company_id, const char *origin)
{
  g_autofree char *url = g_strconcat (base_url, "api/v1/widget/session", NULL);
  g_autofree char *json = g_strdup_printf ("{\"company_id\":\"%s\"}", company_id);
  const char *headers[] = { "Origin", origin, NULL };
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) session = NULL;

  g_assert_cmpuint (cd_test_http_request ("POST", url, "application/json", json, strlen (json),
                                          headers, &body, NULL),
                    ==, 201);
  session = cd_json_parse_object (body, strlen (body), NULL, NULL);
  g_assert_nonnull (session);
  return g_strdup (json_object_get_string_member (session, "visitor_token"));
}

char *
cd_test_user_id (const char *token)
{
  g_auto (GStrv) parts = g_strsplit (token, ".", 3);
  g_autoptr (GString) b64 = NULL;
  g_autofree guchar *raw = NULL;
  gsize length = 0;
  g_autoptr (JsonObject) claims = NULL;

  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  /* base64url without padding, as JWTs carry it */
  b64 = g_string_new (parts[1]);
  g_strdelimit (b64->str, "-", '+');
  g_strdelimit (b64->str, "_", '/');
  while (b64->len % 4)
    g_string_append_c (b64, '=');
  raw = g_base64_decode (b64->str, &length);
  claims = cd_json_parse_object ((const char *) raw, length, NULL, NULL);
  g_assert_nonnull (claims);
  return g_strdup (json_object_get_string_member (claims, "sub"));
}
