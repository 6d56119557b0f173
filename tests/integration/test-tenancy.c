/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Row-level security on a real server: the daemon's role is neither owner
 * nor BYPASSRLS, and a statement without a tenant, or with another
 * company's, sees and changes nothing of a company's rows. */

#include "cd-test-harness.h"
#include "store/cd-pg-migrations.h"

#include <stdlib.h>
#include <string.h>

static CdTestStores *stores;
static CdPgPool *app;
static char *company_a;
static char *company_b;

static PGresult *
scoped (const char *company, gboolean platform, const char *sql, const char *const *params, int n,
        GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  CdPgScope scope = { company, platform };

  cd_pg_pool_query_scoped_async (app, &scope, sql, params, n, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_pg_pool_query_finish (app, result, error);
}

static PGresult *
plain (const char *sql, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_pg_pool_query_async (app, sql, NULL, 0, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_pg_pool_query_finish (app, result, error);
}

static char *
scalar (const char *company, gboolean platform, const char *sql)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = scoped (company, platform, sql, NULL, 0, &error);

  g_assert_no_error (error);
  return g_strdup (PQgetvalue (res, 0, 0));
}

static void
test_role_is_not_owner (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = plain ("SELECT current_user, r.rolsuper, r.rolbypassrls, "
                                    " (SELECT tableowner FROM pg_tables WHERE tablename = 'users') "
                                    "FROM pg_roles r WHERE r.rolname = current_user",
                                    &error);

  g_assert_no_error (error);
  g_assert_cmpstr (PQgetvalue (res, 0, 0), ==, "calldocker_app");
  g_assert_cmpstr (PQgetvalue (res, 0, 1), ==, "f");
  g_assert_cmpstr (PQgetvalue (res, 0, 2), ==, "f");
  g_assert_cmpstr (PQgetvalue (res, 0, 3), !=, "calldocker_app");
}

static void
test_no_tenant_sees_nothing (void)
{
  static const char *tables[] = { "companies", "users", "refresh_tokens", "audit_log" };

  for (gsize i = 0; i < G_N_ELEMENTS (tables); i++) {
    g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM %s", tables[i]);
    g_autoptr (GError) error = NULL;
    g_autoptr (PGresult) res = plain (sql, &error);
    g_autofree char *in_tx = scalar (NULL, FALSE, sql);
    g_autofree char *all = scalar (NULL, TRUE, sql);

    g_assert_no_error (error);
    g_test_message ("%s: %s rows in all", tables[i], all);
    g_assert_cmpstr (PQgetvalue (res, 0, 0), ==, "0");
    g_assert_cmpstr (in_tx, ==, "0");
    g_assert_cmpint (atoi (all), >, 0);
  }
}

static void
test_company_sees_only_its_own (void)
{
  g_autofree char *a_users = scalar (company_a, FALSE, "SELECT count(*) FROM users");
  g_autofree char *a_companies =
      scalar (company_a, FALSE, "SELECT string_agg(name, ',') FROM companies");
  g_autofree char *a_audit = scalar (company_a, FALSE, "SELECT count(*) FROM audit_log");
  g_autofree char *b_users = scalar (company_b, FALSE, "SELECT string_agg(email, ',') FROM users");

  g_assert_cmpstr (a_users, ==, "2");
  g_assert_cmpstr (a_companies, ==, "Alpha");
  g_assert_cmpstr (a_audit, ==, "1");
  g_assert_cmpstr (b_users, ==, "b1@beta.test");
}

static void
test_cannot_touch_another_company (void)
{
  g_autoptr (GError) error = NULL;
  const char *params[] = { company_b };
  g_autoptr (PGresult) upd =
      scoped (company_a, FALSE, "UPDATE users SET display_name = 'hacked' WHERE company_id = $1",
              params, 1, &error);
  g_autoptr (PGresult) del = NULL;
  g_autoptr (PGresult) ins = NULL;
  g_autofree char *name = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (PQcmdTuples (upd), ==, "0");
  del = scoped (company_a, FALSE, "DELETE FROM companies WHERE id = $1", params, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (PQcmdTuples (del), ==, "0");

  /* writing a row for another company is refused outright */
  ins = scoped (company_a, FALSE,
                "INSERT INTO users (company_id, email, password_hash, role, display_name) "
                "VALUES ($1, 'x@beta.test', 'x', 'agent', 'X')",
                params, 1, &error);
  g_assert_null (ins);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY);
  g_assert_nonnull (strstr (error->message, "42501"));

  name = scalar (NULL, TRUE,
                 "SELECT string_agg(display_name, ',' ORDER BY email) FROM users "
                 "WHERE email LIKE '%beta.test'");
  g_assert_cmpstr (name, ==, "B One");
}

static void
test_audit_log_is_append_only (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = scoped (NULL, TRUE, "DELETE FROM audit_log", NULL, 0, &error);

  g_assert_null (res);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY);
  g_assert_nonnull (strstr (error->message, "42501"));
}

static void
test_failed_statement_leaves_connection_clean (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) bad = scoped (company_a, FALSE, "SELECT 1/0", NULL, 0, &error);
  g_autofree char *after = NULL;

  g_assert_null (bad);
  g_clear_error (&error);
  /* the next statement on that connection starts afresh, without a tenant */
  for (int i = 0; i < 3; i++) {
    g_autoptr (PGresult) res = plain ("SELECT current_setting('calldocker.company_id', true),"
                                      " pg_current_xact_id_if_assigned() IS NULL",
                                      &error);
    g_assert_no_error (error);
    g_assert_cmpstr (PQgetvalue (res, 0, 0), ==, "");
  }
  after = scalar (company_a, FALSE, "SELECT count(*) FROM users");
  g_assert_cmpstr (after, ==, "2");
}

/* Calls and timelines: each company writes and reads its own; the platform
 * reads all and writes none; a row never points at another company's user
 * or call; timelines are append-only. */
static void
test_calls_are_isolated (void)
{
  /* $1: B's company, $2: B's call, $3: B's admin */
  static const struct {
    gboolean platform;
    const char *sql;
    const char *sqlstate;
  } refused[] = {
    { FALSE, "INSERT INTO calls (company_id, visitor_id) SELECT $1, 'x' WHERE $2 <> $3", "42501" },
    { TRUE, "INSERT INTO calls (company_id, visitor_id) SELECT $1, 'x' WHERE $2 <> $3", "42501" },
    { FALSE,
      "INSERT INTO call_events (call_id, company_id, at, kind) SELECT $2, $1, now(), 'dtmf'"
      " WHERE $3::uuid IS NOT NULL",
      "42501" },
    /* A's own company id on B's call */
    { FALSE,
      "INSERT INTO call_events (call_id, company_id, at, kind)"
      " SELECT $2, company_id, now(), 'dtmf' FROM calls WHERE $1 <> $3",
      "23503" },
    /* an agent of another company */
    { FALSE, "UPDATE calls SET agent_id = $3 WHERE $1 <> $2", "23503" },
    /* append-only timelines; calls are never deleted */
    { FALSE, "UPDATE call_events SET kind = 'x' WHERE $1 <> $2 AND $2 <> $3", "42501" },
    { FALSE, "DELETE FROM call_events WHERE $1 <> $2 AND $2 <> $3", "42501" },
    { FALSE, "DELETE FROM calls WHERE $1 <> $2 AND $2 <> $3", "42501" },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) ins_a = NULL;
  g_autoptr (PGresult) ins_b = NULL;
  g_autoptr (PGresult) upd = NULL;
  g_autofree char *b_call = NULL;
  g_autofree char *b_user =
      scalar (NULL, TRUE, "SELECT id FROM users WHERE email = 'b1@beta.test'");
  g_autofree char *a_sees = NULL;
  g_autofree char *b_sees = NULL;
  g_autofree char *nobody_sees = NULL;
  g_autofree char *platform_sees = NULL;
  g_autofree char *after = NULL;
  const char *a[] = { company_a };
  const char *b[] = { company_b };

  ins_a = scoped (company_a, FALSE,
                  "WITH c AS (INSERT INTO calls (company_id, visitor_id, agent_id)"
                  "  SELECT $1, 'v-a', id FROM users WHERE email = 'a2@alpha.test'"
                  "  RETURNING id, company_id)"
                  " INSERT INTO call_events (call_id, company_id, at, kind, detail)"
                  " SELECT id, company_id, now(), 'state', '{\"state\": \"new\"}' FROM c",
                  a, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (PQcmdTuples (ins_a), ==, "1");
  ins_b = scoped (company_b, FALSE,
                  "WITH c AS (INSERT INTO calls (company_id, visitor_id) VALUES ($1, 'v-b')"
                  "  RETURNING id, company_id)"
                  " INSERT INTO call_events (call_id, company_id, at, kind)"
                  " SELECT id, company_id, now(), 'state' FROM c RETURNING call_id",
                  b, 1, &error);
  g_assert_no_error (error);
  b_call = g_strdup (PQgetvalue (ins_b, 0, 0));

  a_sees = scalar (company_a, FALSE,
                   "SELECT string_agg(visitor_id, ',') || '/' || (SELECT count(*) FROM call_events)"
                   " FROM calls");
  b_sees = scalar (company_b, FALSE,
                   "SELECT string_agg(visitor_id, ',') || '/' || (SELECT count(*) FROM call_events)"
                   " FROM calls");
  nobody_sees = scalar (NULL, FALSE,
                        "SELECT (SELECT count(*) FROM calls) + (SELECT count(*) FROM call_events)");
  platform_sees = scalar (NULL, TRUE,
                          "SELECT string_agg(visitor_id, ',' ORDER BY visitor_id) || '/' ||"
                          " (SELECT count(*) FROM call_events) FROM calls");
  g_assert_cmpstr (a_sees, ==, "v-a/1");
  g_assert_cmpstr (b_sees, ==, "v-b/1");
  g_assert_cmpstr (nobody_sees, ==, "0");
  g_assert_cmpstr (platform_sees, ==, "v-a,v-b/2");

  /* another company's call is not there to change */
  upd = scoped (company_a, FALSE, "UPDATE calls SET state = 'ended' WHERE company_id = $1", b, 1,
                &error);
  g_assert_no_error (error);
  g_assert_cmpstr (PQcmdTuples (upd), ==, "0");

  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++) {
    const char *params[] = { company_b, b_call, b_user };
    g_autoptr (PGresult) res = scoped (refused[i].platform ? NULL : company_a, refused[i].platform,
                                       refused[i].sql, params, 3, &error);

    g_test_message ("refused case %zu: %s", i, error ? error->message : "no error");
    g_assert_null (res);
    g_assert_nonnull (error);
    g_assert_nonnull (strstr (error->message, refused[i].sqlstate));
    g_clear_error (&error);
  }
  after = scalar (NULL, TRUE,
                  "SELECT string_agg(visitor_id || ':' || state || ':' || (agent_id IS NOT NULL),"
                  " ',' ORDER BY visitor_id) || '/' || (SELECT count(*) FROM call_events)"
                  " FROM calls");
  g_assert_cmpstr (after, ==, "v-a:new:true,v-b:new:false/2");
}

static void
seed (void)
{
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (stores->pg_conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (g_getenv ("CALLDOCKER_DATADIR"), "sql", NULL);
  g_autoptr (PGresult) a = NULL;
  g_autoptr (PGresult) b = NULL;
  g_autoptr (PGresult) u = NULL;

  cd_pg_pool_start (owner);
  cd_pg_migrate_async (owner, dir, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 60000);
  g_assert_true (cd_pg_migrate_finish (owner, result, NULL, &error));
  g_assert_no_error (error);
  cd_pg_pool_close (owner);

  app = cd_pg_pool_new (stores->pg_conninfo, 2, 10000, 20, 200);
  cd_pg_pool_set_role (app, "calldocker_app");
  cd_pg_pool_start (app);

  a = scoped (NULL, TRUE,
              "INSERT INTO companies (name, slug) VALUES ('Alpha', 'alpha') RETURNING id", NULL, 0,
              &error);
  g_assert_no_error (error);
  b = scoped (NULL, TRUE, "INSERT INTO companies (name, slug) VALUES ('Beta', 'beta') RETURNING id",
              NULL, 0, &error);
  g_assert_no_error (error);
  company_a = g_strdup (PQgetvalue (a, 0, 0));
  company_b = g_strdup (PQgetvalue (b, 0, 0));
  {
    const char *params[] = { company_a, company_b };
    u = scoped (
        NULL, TRUE,
        "WITH u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
        " VALUES ($1, 'a1@alpha.test', 'x', 'company_admin', 'A One'),"
        "        ($1, 'a2@alpha.test', 'x', 'agent', 'A Two'),"
        "        ($2, 'b1@beta.test', 'x', 'company_admin', 'B One') RETURNING 1)"
        " INSERT INTO audit_log (company_id, action) VALUES ($1, 'seed'), ($2, 'seed')",
        params, 2, &error);
    g_assert_no_error (error);
  }
  {
    g_autoptr (PGresult) t = scoped (
        NULL, TRUE,
        "INSERT INTO refresh_tokens (user_id, company_id, family_id, token_hash, expires_at)"
        " SELECT id, company_id, gen_random_uuid(), '\\x01', now() + interval '1 day'"
        " FROM users WHERE email = 'a1@alpha.test'",
        NULL, 0, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (PQcmdTuples (t), ==, "1");
  }
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
  seed ();
  g_test_add_func ("/tenancy/role-is-not-owner", test_role_is_not_owner);
  g_test_add_func ("/tenancy/no-tenant-sees-nothing", test_no_tenant_sees_nothing);
  g_test_add_func ("/tenancy/company-sees-only-its-own", test_company_sees_only_its_own);
  g_test_add_func ("/tenancy/cannot-touch-another-company", test_cannot_touch_another_company);
  g_test_add_func ("/tenancy/audit-log-is-append-only", test_audit_log_is_append_only);
  g_test_add_func ("/tenancy/failed-statement-leaves-connection-clean",
                   test_failed_statement_leaves_connection_clean);
  g_test_add_func ("/tenancy/calls-are-isolated", test_calls_are_isolated);
  status = g_test_run ();
  cd_pg_pool_close (app);
  g_clear_object (&app);
  g_free (company_a);
  g_free (company_b);
  cd_test_stores_stop (stores);
  return status;
}
