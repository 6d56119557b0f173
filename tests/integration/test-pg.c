/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The PostgreSQL pool against a real server: parameters, errors, leases and
 * transactions, queueing past the pool size, timeouts, and a server restart. */

#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <string.h>

static CdTestStores *stores;

static CdPgPool *
new_pool (guint size, guint timeout_ms)
{
  CdPgPool *pool = cd_pg_pool_new (stores->pg_conninfo, size, timeout_ms, 20, 200);

  cd_pg_pool_start (pool);
  WAIT_UNTIL (cd_pg_pool_is_connected (pool), 10000);
  return pool;
}

static PGresult *
query (CdPgPool *pool, const char *sql, const char *const *params, int n, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_pg_pool_query_async (pool, sql, params, n, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_pg_pool_query_finish (pool, result, error);
}

static PGresult *
lease_query (CdPgLease *lease, const char *sql, const char *const *params, int n, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_pg_lease_query_async (lease, sql, params, n, 0, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_pg_lease_query_finish (lease, result, error);
}

static CdPgLease *
acquire (CdPgPool *pool)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  CdPgLease *lease;

  cd_pg_pool_acquire_async (pool, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  lease = cd_pg_pool_acquire_finish (pool, result, &error);
  g_assert_no_error (error);
  return lease;
}

static void
test_parameters (void)
{
  g_autoptr (CdPgPool) pool = new_pool (2, 5000);
  g_autoptr (GError) error = NULL;
  const char *params[] = { "Robert'); DROP TABLE students;--", NULL, "42" };
  g_autoptr (PGresult) res =
      query (pool, "SELECT $1::text, $2::text IS NULL, $3::int + 1", params, 3, &error);

  g_assert_no_error (error);
  g_assert_cmpint (PQntuples (res), ==, 1);
  g_assert_cmpstr (PQgetvalue (res, 0, 0), ==, params[0]);
  g_assert_cmpstr (PQgetvalue (res, 0, 1), ==, "t");
  g_assert_cmpstr (PQgetvalue (res, 0, 2), ==, "43");
  cd_pg_pool_close (pool);
}

static void
test_errors (void)
{
  g_autoptr (CdPgPool) pool = new_pool (1, 5000);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) bad = query (pool, "SELEC 1", NULL, 0, &error);
  g_autoptr (PGresult) ok = NULL;
  g_autoptr (PGresult) dup = NULL;

  g_assert_null (bad);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY);
  g_assert_nonnull (strstr (error->message, "42601"));
  g_clear_error (&error);

  g_clear_pointer (&ok, PQclear);
  ok = query (pool, "CREATE TEMP TABLE t_err (id int PRIMARY KEY)", NULL, 0, &error);
  g_assert_no_error (error);
  g_clear_pointer (&ok, PQclear);
  ok = query (pool, "INSERT INTO t_err VALUES (1)", NULL, 0, &error);
  g_assert_no_error (error);
  dup = query (pool, "INSERT INTO t_err VALUES (1)", NULL, 0, &error);
  g_assert_null (dup);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT);
  g_clear_error (&error);

  /* the connection is still good after errors */
  g_clear_pointer (&ok, PQclear);
  ok = query (pool, "SELECT count(*) FROM t_err", NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (PQgetvalue (ok, 0, 0), ==, "1");
  cd_pg_pool_close (pool);
}

static void
test_lease_transactions (void)
{
  g_autoptr (CdPgPool) pool = new_pool (2, 5000);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  CdPgLease *lease;

  g_clear_pointer (&res, PQclear);
  res = query (pool, "CREATE TABLE IF NOT EXISTS t_tx (v text)", NULL, 0, &error);
  g_assert_no_error (error);

  /* committed */
  lease = acquire (pool);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "BEGIN", NULL, 0, &error);
  g_assert_no_error (error);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "INSERT INTO t_tx VALUES ('kept')", NULL, 0, &error);
  g_assert_no_error (error);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "COMMIT", NULL, 0, &error);
  g_assert_no_error (error);
  cd_pg_lease_release (lease);

  /* left open: released means rolled back */
  lease = acquire (pool);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "BEGIN", NULL, 0, &error);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "INSERT INTO t_tx VALUES ('dropped')", NULL, 0, &error);
  g_assert_no_error (error);
  cd_pg_lease_release (lease);

  /* failed inside: released means rolled back, and the connection is reused */
  lease = acquire (pool);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "BEGIN", NULL, 0, &error);
  g_clear_pointer (&res, PQclear);
  res = lease_query (lease, "INSERT INTO nonexistent VALUES (1)", NULL, 0, &error);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY);
  g_clear_error (&error);
  cd_pg_lease_release (lease);

  for (int i = 0; i < 4; i++) {
    g_clear_pointer (&res, PQclear);
    res = query (pool, "SELECT string_agg(v, ',') FROM t_tx", NULL, 0, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (PQgetvalue (res, 0, 0), ==, "kept");
  }
  cd_pg_pool_close (pool);
}

typedef struct {
  int done;
  int ok;
} Counter;

static void
on_counted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Counter *counter = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  counter->done++;
  if (res && g_str_equal (PQgetvalue (res, 0, 0), "ok"))
    counter->ok++;
}

static void
test_queue_beyond_size (void)
{
  g_autoptr (CdPgPool) pool = new_pool (2, 10000);
  Counter counter = { 0, 0 };
  CdPgPoolStats stats;

  for (int i = 0; i < 20; i++)
    cd_pg_pool_query_async (pool, "SELECT 'ok' FROM pg_sleep(0.01)", NULL, 0, NULL, on_counted,
                            &counter);
  cd_pg_pool_get_stats (pool, &stats);
  g_assert_cmpuint (stats.waiting, >=, 18);
  WAIT_UNTIL (counter.done == 20, 30000);
  g_assert_cmpint (counter.ok, ==, 20);
  cd_pg_pool_close (pool);
}

static void
test_timeout (void)
{
  g_autoptr (CdPgPool) pool = new_pool (1, 300);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) slow = query (pool, "SELECT pg_sleep(5)", NULL, 0, &error);
  g_autoptr (PGresult) after = NULL;

  /* the server's statement_timeout (57014) or our own deadline */
  g_assert_null (slow);
  g_assert_true (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY) ||
                 g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT));
  if (error->code == CD_STORE_ERROR_QUERY)
    g_assert_nonnull (strstr (error->message, "57014"));
  g_clear_error (&error);

  WAIT_UNTIL (cd_pg_pool_is_connected (pool), 10000);
  after = query (pool, "SELECT 1", NULL, 0, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (pool);
}

static void
test_close_fails_pending (void)
{
  g_autoptr (CdPgPool) pool = new_pool (1, 10000);
  g_autoptr (GAsyncResult) r1 = NULL;
  g_autoptr (GAsyncResult) r2 = NULL;
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  g_autoptr (PGresult) p1 = NULL;
  g_autoptr (PGresult) p2 = NULL;

  cd_pg_pool_query_async (pool, "SELECT pg_sleep(2)", NULL, 0, NULL, cd_test_capture, &r1);
  cd_pg_pool_query_async (pool, "SELECT 1", NULL, 0, NULL, cd_test_capture, &r2);
  cd_pg_pool_close (pool);
  cd_test_wait_result (&r1, 5000);
  cd_test_wait_result (&r2, 5000);
  p1 = cd_pg_pool_query_finish (pool, r1, &e1);
  p2 = cd_pg_pool_query_finish (pool, r2, &e2);
  g_assert_error (e1, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED);
  g_assert_error (e2, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED);
}

static void
test_unreachable (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-nopg-XXXXXX");
  g_autofree char *conninfo = g_strdup_printf ("host=%s dbname=x user=x", dir);
  g_autoptr (CdPgPool) pool = cd_pg_pool_new (conninfo, 1, 300, 20, 100);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  CdPgPoolStats stats;

  cd_pg_pool_start (pool);
  res = query (pool, "SELECT 1", NULL, 0, &error);
  g_assert_null (res);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT);
  g_assert_false (cd_pg_pool_is_connected (pool));
  cd_pg_pool_get_stats (pool, &stats);
  g_assert_cmpuint (stats.reconnects, >, 0);
  cd_pg_pool_close (pool);
  cd_test_remove_tree (dir);
}

/* Last: the server goes away and comes back; the pool follows. */
static void
test_server_restart (void)
{
  g_autoptr (CdPgPool) pool = new_pool (2, 1000);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  CdPgPoolStats before, after;
  gboolean failed = FALSE;

  cd_pg_pool_get_stats (pool, &before);
  /* a fast shutdown: the embedded supervisor starts it again */
  cd_test_stores_kill_server (stores, CD_EMBEDDED_POSTGRES, SIGINT);
  WAIT_UNTIL (!cd_pg_pool_is_connected (pool), 10000);

  /* while it is down, queries fail with a clear error instead of hanging */
  res = query (pool, "SELECT 1", NULL, 0, &error);
  if (res == NULL) {
    failed = TRUE;
    g_assert_true (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE) ||
                   g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT));
  }
  g_clear_error (&error);
  g_clear_pointer (&res, PQclear);

  WAIT_UNTIL (cd_pg_pool_is_connected (pool), 30000);
  res = query (pool, "SELECT 'back'", NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (PQgetvalue (res, 0, 0), ==, "back");
  cd_pg_pool_get_stats (pool, &after);
  g_assert_cmpuint (after.reconnects, >, before.reconnects);
  g_test_message ("query while down failed: %s", failed ? "yes" : "no (server was back)");
  cd_pg_pool_close (pool);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
  g_test_add_func ("/store/pg/parameters", test_parameters);
  g_test_add_func ("/store/pg/errors", test_errors);
  g_test_add_func ("/store/pg/lease-transactions", test_lease_transactions);
  g_test_add_func ("/store/pg/queue-beyond-size", test_queue_beyond_size);
  g_test_add_func ("/store/pg/timeout", test_timeout);
  g_test_add_func ("/store/pg/close-fails-pending", test_close_fails_pending);
  g_test_add_func ("/store/pg/unreachable-fails-clearly", test_unreachable);
  g_test_add_func ("/store/pg/server-restart", test_server_restart);
  status = g_test_run ();
  cd_test_stores_stop (stores);
  return status;
}
