/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdCallStore against a real server: a call's writes land in order, many
 * calls side by side, refused writes are dropped, an unreachable database
 * is waited for (and given up on, bounded), and a server restart loses nothing. */

#include "cd-test-harness.h"
#include "store/cd-call-store.h"
#include "store/cd-pg-migrations.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static CdTestStores *stores;
static CdPgPool *app;
static char *company_a;
static char *company_b;
static char *agent_a;
static char *agent_b;

/* The first column of the first row, read in the platform scope. */
static char *
platform_scalar (const char *sql, const char *param)
{
  g_autoptr (GError) error = NULL;
  const char *params[] = { param };
  g_autoptr (PGresult) res =
      cd_test_pg_scoped (app, NULL, TRUE, sql, params, param ? 1 : 0, &error);

  g_assert_no_error (error);
  g_assert_cmpint (PQntuples (res), ==, 1);
  return g_strdup (PQgetvalue (res, 0, 0));
}

static void
flush (CdCallStore *store, guint timeout_ms)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  cd_call_store_flush_async (store, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, timeout_ms);
  g_assert_true (cd_call_store_flush_finish (store, result, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (cd_call_store_get_pending (store), ==, 0);
}

static char *
new_uuid (void)
{
  return g_uuid_string_random ();
}

static JsonObject *
object_from (const char *json)
{
  g_autoptr (JsonNode) node = json_from_string (json, NULL);

  g_assert_nonnull (node);
  return json_object_ref (json_node_get_object (node));
}

/* Events of a call as "kind detail" lines, in the order they were stored,
 * and whether that is also the order of their times. */
static char *
timeline (const char *call_id, gboolean *in_time_order)
{
  g_autofree char *ordered =
      platform_scalar ("SELECT coalesce(bool_and(at_order = id_order), true) FROM (SELECT"
                       " row_number() OVER (ORDER BY at, id) AS at_order, row_number() OVER (ORDER "
                       "BY id) AS id_order"
                       " FROM call_events WHERE call_id = $1) x",
                       call_id);

  *in_time_order = g_str_equal (ordered, "t");
  return platform_scalar ("SELECT coalesce(string_agg(kind || ' ' || detail::text, E'\\n'"
                          " ORDER BY id), '') FROM call_events WHERE call_id = $1",
                          call_id);
}

static void
test_timeline_in_order (void)
{
  g_autoptr (CdCallStore) store = cd_call_store_new (app);
  g_autofree char *call = new_uuid ();
  g_autoptr (JsonObject) ivr = object_from ("{\"flow\":\"main\"}");
  g_autoptr (JsonObject) queued = object_from ("{\"position\":2,\"state\":\"not this\"}");
  g_autoptr (JsonObject) digit = object_from ("{\"digit\":\"5\"}");
  g_autoptr (JsonObject) chat = object_from ("{\"from\":\"visitor\",\"text\":\"hello\"}");
  g_autoptr (JsonObject) quality = object_from ("{\"mos\":4.25,\"loss_pct\":0.5}");
  g_autofree char *events = NULL;
  g_autofree char *row = NULL;
  g_autofree char *times = NULL;
  g_autofree char *expected_times = NULL;
  gint64 t0 = 1767225600000000; /* 2026-01-01T00:00:00Z */
  gboolean in_time_order = FALSE;
  CdCallStoreStats stats;

  cd_call_store_create (store, call, company_a, "visitor-1", "192.0.2.7",
                        "https://shop.example/help?x=1", t0);
  cd_call_store_set_state (store, call, company_a, "ivr", ivr, t0 + 1000001);
  cd_call_store_add_event (store, call, company_a, "dtmf", digit, t0 + 2000002);
  cd_call_store_set_state (store, call, company_a, "queued", queued, t0 + 3000003);
  cd_call_store_set_agent (store, call, company_a, agent_a, t0 + 4000004);
  cd_call_store_set_state (store, call, company_a, "ringing", NULL, t0 + 4000005);
  cd_call_store_answered (store, call, company_a, t0 + 5000006);
  cd_call_store_set_state (store, call, company_a, "connected", NULL, t0 + 5000007);
  cd_call_store_add_event (store, call, company_a, "chat", chat, t0 + 6000008);
  cd_call_store_end (store, call, company_a, "hangup", quality, t0 + 65500009);
  /* the caller's objects were copied */
  json_object_set_int_member (quality, "mos", 1);
  g_assert_cmpuint (cd_call_store_get_pending (store), ==, 10);
  flush (store, 30000);

  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.written, ==, 10);
  g_assert_cmpuint (stats.dropped, ==, 0);
  g_assert_cmpuint (stats.retried, ==, 0);

  row = platform_scalar (
      "SELECT concat_ws('|', company_id, visitor_id, visitor_address, page, agent_id, state,"
      " (extract(epoch FROM created_at) * 1000000)::bigint,"
      " (extract(epoch FROM answered_at) * 1000000)::bigint,"
      " (extract(epoch FROM ended_at) * 1000000)::bigint, end_reason, quality::text,"
      " queue_id IS NULL) FROM calls WHERE id = $1",
      call);
  {
    g_autofree char *expected = g_strdup_printf (
        "%s|visitor-1|192.0.2.7|https://shop.example/help?x=1|%s|ended|%" G_GINT64_FORMAT
        "|%" G_GINT64_FORMAT "|%" G_GINT64_FORMAT "|hangup|{\"mos\": 4.25, \"loss_pct\": 0.5}|t",
        company_a, agent_a, t0, t0 + 5000006, t0 + 65500009);
    g_assert_cmpstr (row, ==, expected);
  }

  events = timeline (call, &in_time_order);
  {
    g_autofree char *expected =
        g_strdup_printf ("state {\"state\": \"new\"}\n"
                         "state {\"flow\": \"main\", \"state\": \"ivr\"}\n"
                         "dtmf {\"digit\": \"5\"}\n"
                         "state {\"state\": \"queued\", \"position\": 2}\n"
                         "agent {\"agent_id\": \"%s\"}\n"
                         "state {\"state\": \"ringing\"}\n"
                         "state {\"state\": \"connected\"}\n"
                         "chat {\"from\": \"visitor\", \"text\": \"hello\"}\n"
                         "state {\"state\": \"ended\", \"reason\": \"hangup\"}",
                         agent_a);
    g_assert_cmpstr (events, ==, expected);
  }
  g_assert_true (in_time_order);

  /* every event at exactly the microsecond it was recorded */
  times = platform_scalar ("SELECT string_agg(((extract(epoch FROM e.at) - extract(epoch FROM"
                           " c.created_at)) * 1000000)::bigint::text, ',' ORDER BY e.id)"
                           " FROM call_events e JOIN calls c ON c.id = e.call_id WHERE c.id = $1",
                           call);
  expected_times = g_strdup ("0,1000001,2000002,3000003,4000004,4000005,5000007,6000008,65500009");
  g_assert_cmpstr (times, ==, expected_times);
  g_assert_finalize_object (g_steal_pointer (&store));
}

/* Many calls at once on a small pool: each call's writes still in order. */
static void
test_many_calls_side_by_side (void)
{
  g_autoptr (CdCallStore) store = cd_call_store_new (app);
  g_autoptr (GPtrArray) calls = g_ptr_array_new_with_free_func (g_free);
  static const char *steps[] = { "ivr", "queued", "ringing", "connected" };
  gint64 t0 = g_get_real_time ();
  CdCallStoreStats stats;

  for (int i = 0; i < 30; i++)
    g_ptr_array_add (calls, new_uuid ());
  /* interleaved, as calls happen */
  for (int i = 0; i < 30; i++)
    cd_call_store_create (store, calls->pdata[i], i % 2 ? company_b : company_a, "v", NULL, NULL,
                          t0);
  for (gsize s = 0; s < G_N_ELEMENTS (steps); s++) {
    for (int i = 0; i < 30; i++)
      cd_call_store_set_state (store, calls->pdata[i], i % 2 ? company_b : company_a, steps[s],
                               NULL, t0 + (gint64) s + 1);
  }
  for (int i = 0; i < 30; i++)
    cd_call_store_end (store, calls->pdata[i], i % 2 ? company_b : company_a, "done", NULL,
                       t0 + 10);
  g_assert_cmpuint (cd_call_store_get_pending (store), ==, 30 * 6);
  flush (store, 60000);
  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.written, ==, 30 * 6);
  g_assert_cmpuint (stats.dropped, ==, 0);

  for (int i = 0; i < 30; i++) {
    gboolean in_time_order = FALSE;
    g_autofree char *events = timeline (calls->pdata[i], &in_time_order);
    g_autofree char *company = platform_scalar (
        "SELECT company_id || ' ' || state FROM calls WHERE id = $1", calls->pdata[i]);
    g_autofree char *expected_company = g_strdup_printf ("%s ended", i % 2 ? company_b : company_a);

    g_assert_cmpstr (events, ==,
                     "state {\"state\": \"new\"}\nstate {\"state\": \"ivr\"}\n"
                     "state {\"state\": \"queued\"}\nstate {\"state\": \"ringing\"}\n"
                     "state {\"state\": \"connected\"}\n"
                     "state {\"state\": \"ended\", \"reason\": \"done\"}");
    g_assert_true (in_time_order);
    g_assert_cmpstr (company, ==, expected_company);
  }
}

/* What the database refuses is dropped at once; the call's other writes go on. */
static void
test_refused_writes_are_dropped (void)
{
  g_autoptr (CdCallStore) store = cd_call_store_new (app);
  g_autofree char *call = new_uuid ();
  g_autofree char *unknown = new_uuid ();
  g_autofree char *long_page = g_strnfill (5000, 'p');
  g_autofree char *row = NULL;
  g_autofree char *events = NULL;
  gboolean in_time_order = FALSE;
  gint64 t0 = g_get_real_time ();
  CdCallStoreStats stats;

  cd_call_store_create (store, call, company_a, "visitor-2", NULL, long_page, t0);
  cd_call_store_set_state (store, call, company_a, "bogus", NULL, t0 + 1);        /* check */
  cd_call_store_set_agent (store, call, company_a, agent_b, t0 + 2);              /* B's agent */
  cd_call_store_add_event (store, call, company_a, "Not A Kind", NULL, t0 + 3);   /* check */
  cd_call_store_add_event (store, unknown, company_a, "dtmf", NULL, t0 + 4);      /* no call */
  cd_call_store_create (store, call, company_b, "visitor-x", NULL, NULL, t0 + 5); /* B's scope */
  cd_call_store_add_event (store, call, company_a, "media", NULL, t0 + 6);
  cd_call_store_set_state (store, call, company_a, "queued", NULL, t0 + 7);
  cd_call_store_end (store, call, company_a, NULL, NULL, t0 + 8);
  cd_call_store_end (store, call, company_a, "twice", NULL, t0 + 9); /* changes nothing */
  flush (store, 30000);

  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.dropped, ==, 4);
  g_assert_cmpuint (stats.written, ==, 6);
  g_assert_cmpuint (stats.retried, ==, 0);
  row = platform_scalar ("SELECT concat_ws('|', visitor_id, length(page), agent_id IS NULL, state,"
                         " end_reason IS NULL, quality IS NULL, company_id) FROM calls"
                         " WHERE id = $1",
                         call);
  {
    g_autofree char *expected = g_strdup_printf ("visitor-2|2048|t|ended|t|t|%s", company_a);
    g_assert_cmpstr (row, ==, expected);
  }
  events = timeline (call, &in_time_order);
  g_assert_cmpstr (events, ==,
                   "state {\"state\": \"new\"}\nmedia {}\nstate {\"state\": \"queued\"}\n"
                   "state {\"state\": \"ended\"}");
  g_assert_true (in_time_order);
}

static void
test_flush_when_idle_and_cancelled (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-nopg-XXXXXX");
  g_autofree char *conninfo = g_strdup_printf ("host='%s' dbname=calldocker user=x", dir);
  g_autoptr (CdPgPool) nowhere = cd_pg_pool_new (conninfo, 1, 200, 20, 100);
  g_autoptr (CdCallStore) store = cd_call_store_new (nowhere);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult) idle = NULL;
  g_autoptr (GAsyncResult) waiting = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *call = new_uuid ();
  CdCallStoreStats stats;

  cd_pg_pool_start (nowhere);
  cd_call_store_set_retry_limits (store, 20, 100, 60000);
  /* nothing pending: done at once */
  cd_call_store_flush_async (store, NULL, cd_test_capture, &idle);
  cd_test_wait_result (&idle, 1000);
  g_assert_true (cd_call_store_flush_finish (store, idle, &error));

  cd_call_store_create (store, call, company_a, "v", NULL, NULL, g_get_real_time ());
  cd_call_store_flush_async (store, cancellable, cd_test_capture, &waiting);
  cd_test_sleep (300);
  g_assert_null (waiting);
  g_assert_cmpuint (cd_call_store_get_pending (store), ==, 1);
  g_cancellable_cancel (cancellable);
  cd_test_wait_result (&waiting, 1000);
  g_assert_false (cd_call_store_flush_finish (store, waiting, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  /* a closed pool is final: the write is dropped, not retried */
  cd_pg_pool_close (nowhere);
  WAIT_UNTIL (cd_call_store_get_pending (store) == 0, 5000);
  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.dropped, ==, 1);
  g_assert_cmpuint (stats.written, ==, 0);
  g_clear_object (&idle);
  g_clear_object (&waiting);
  g_assert_finalize_object (g_steal_pointer (&store));
  cd_test_remove_tree (dir);
}

/* Never reachable: retried with backoff, then given up, bounded. */
static void
test_gives_up_when_unreachable (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-nopg-XXXXXX");
  g_autofree char *conninfo = g_strdup_printf ("host='%s' dbname=calldocker user=x", dir);
  g_autoptr (CdPgPool) nowhere = cd_pg_pool_new (conninfo, 1, 100, 20, 50);
  g_autoptr (CdCallStore) store = cd_call_store_new (nowhere);
  g_autofree char *call = new_uuid ();
  gint64 started = g_get_monotonic_time ();
  CdCallStoreStats stats;

  cd_pg_pool_start (nowhere);
  cd_call_store_set_retry_limits (store, 20, 100, 1000);
  cd_call_store_create (store, call, company_a, "v", NULL, NULL, g_get_real_time ());
  cd_call_store_add_event (store, call, company_a, "dtmf", NULL, g_get_real_time ());
  cd_call_store_set_state (store, call, company_a, "queued", NULL, g_get_real_time ());
  cd_call_store_end (store, call, company_a, "abandoned", NULL, g_get_real_time ());
  flush (store, 10000);
  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.dropped, ==, 4);
  g_assert_cmpuint (stats.written, ==, 0);
  g_assert_cmpuint (stats.retried, >=, 4);
  /* tried for the give-up time, then the call's writes went together */
  g_assert_cmpint (g_get_monotonic_time () - started, >=, 1000 * 1000);
  g_assert_cmpint (g_get_monotonic_time () - started, <, 3500 * 1000);
  cd_pg_pool_close (nowhere);
  cd_test_remove_tree (dir);
}

static char *
pg_socket_dir (void)
{
  PQconninfoOption *options = PQconninfoParse (stores->pg_conninfo, NULL);
  char *host = NULL;

  g_assert_nonnull (options);
  for (PQconninfoOption *o = options; o->keyword; o++) {
    if (g_str_equal (o->keyword, "host"))
      host = g_strdup (o->val);
  }
  PQconninfoFree (options);
  g_assert_nonnull (host);
  return host;
}

static guint64
retried (CdCallStore *store)
{
  CdCallStoreStats stats;

  cd_call_store_get_stats (store, &stats);
  return stats.retried;
}

/* The database cannot be reached at first (its socket is not where the pool
 * looks), then can: the writes wait, are retried, and land in order. */
static void
test_retried_until_reachable (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-sock-XXXXXX");
  g_autofree char *conninfo = g_strdup_printf ("host='%s' dbname=calldocker user=calldocker", dir);
  g_autoptr (CdPgPool) later = cd_pg_pool_new (conninfo, 2, 300, 20, 100);
  g_autoptr (CdCallStore) store = cd_call_store_new (later);
  g_autofree char *call = new_uuid ();
  g_autofree char *socket_dir = pg_socket_dir ();
  g_autofree char *target = g_build_filename (socket_dir, ".s.PGSQL.5432", NULL);
  g_autofree char *link = g_build_filename (dir, ".s.PGSQL.5432", NULL);
  g_autofree char *events = NULL;
  g_autofree char *state = NULL;
  gboolean in_time_order = FALSE;
  gint64 t0 = g_get_real_time ();
  CdCallStoreStats stats;

  cd_pg_pool_set_role (later, "calldocker_app");
  cd_pg_pool_start (later);
  cd_call_store_set_retry_limits (store, 50, 200, 60000);
  cd_call_store_create (store, call, company_a, "visitor-3", NULL, NULL, t0);
  cd_call_store_set_state (store, call, company_a, "queued", NULL, t0 + 1);
  cd_call_store_end (store, call, company_a, "abandoned", NULL, t0 + 2);
  WAIT_UNTIL (retried (store) >= 2, 10000);
  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (cd_call_store_get_pending (store), ==, 3);
  g_assert_cmpuint (stats.written, ==, 0);
  g_assert_cmpuint (stats.dropped, ==, 0);

  /* the database comes within reach */
  g_assert_cmpint (symlink (target, link), ==, 0);
  flush (store, 30000);
  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.written, ==, 3);
  g_assert_cmpuint (stats.dropped, ==, 0);
  state = platform_scalar ("SELECT state || ' ' || end_reason FROM calls WHERE id = $1", call);
  g_assert_cmpstr (state, ==, "ended abandoned");
  events = timeline (call, &in_time_order);
  g_assert_cmpstr (events, ==,
                   "state {\"state\": \"new\"}\nstate {\"state\": \"queued\"}\n"
                   "state {\"state\": \"ended\", \"reason\": \"abandoned\"}");
  g_assert_true (in_time_order);
  cd_pg_pool_close (later);
  g_assert_finalize_object (g_steal_pointer (&store));
  cd_test_remove_tree (dir);
}

/* Last: PostgreSQL restarts while a call is written; nothing is lost. */
static void
test_server_restart (void)
{
  /* a short deadline: writes while the server is away fail and are retried */
  g_autoptr (CdPgPool) pool = cd_pg_pool_new (stores->pg_conninfo, 2, 150, 20, 200);
  g_autoptr (CdCallStore) store = NULL;
  g_autofree char *call = new_uuid ();
  g_autofree char *events = NULL;
  gboolean in_time_order = FALSE;
  gint64 t0 = g_get_real_time ();
  CdCallStoreStats stats;

  cd_pg_pool_set_role (pool, "calldocker_app");
  cd_pg_pool_start (pool);
  WAIT_UNTIL (cd_pg_pool_is_connected (pool), 10000);
  store = cd_call_store_new (pool);
  cd_call_store_set_retry_limits (store, 50, 500, 60000);

  cd_test_stores_kill_server (stores, CD_EMBEDDED_POSTGRES, SIGINT);
  WAIT_UNTIL (!cd_pg_pool_is_connected (pool), 10000);
  cd_call_store_create (store, call, company_a, "visitor-4", NULL, NULL, t0);
  cd_call_store_set_state (store, call, company_a, "ivr", NULL, t0 + 1);
  cd_call_store_add_event (store, call, company_a, "dtmf", NULL, t0 + 2);
  cd_call_store_end (store, call, company_a, "hangup", NULL, t0 + 3);
  flush (store, 60000);
  cd_call_store_get_stats (store, &stats);
  g_test_message ("attempts retried across the restart: %" G_GUINT64_FORMAT, stats.retried);
  g_assert_cmpuint (stats.written, ==, 4);
  g_assert_cmpuint (stats.dropped, ==, 0);

  cd_test_stores_wait_postgres (stores, 30000);
  WAIT_UNTIL (cd_pg_pool_is_connected (app), 30000);
  events = timeline (call, &in_time_order);
  g_assert_cmpstr (events, ==,
                   "state {\"state\": \"new\"}\nstate {\"state\": \"ivr\"}\ndtmf {}\n"
                   "state {\"state\": \"ended\", \"reason\": \"hangup\"}");
  g_assert_true (in_time_order);
  cd_pg_pool_close (pool);
}

static void
seed (void)
{
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (stores->pg_conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (g_getenv ("CALLDOCKER_DATADIR"), "sql", NULL);
  g_autoptr (PGresult) res = NULL;

  cd_pg_pool_start (owner);
  cd_pg_migrate_async (owner, dir, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 60000);
  g_assert_true (cd_pg_migrate_finish (owner, result, NULL, &error));
  g_assert_no_error (error);
  cd_pg_pool_close (owner);

  app = cd_pg_pool_new (stores->pg_conninfo, 4, 10000, 20, 200);
  cd_pg_pool_set_role (app, "calldocker_app");
  cd_pg_pool_start (app);
  res = cd_test_pg_scoped (
      app, NULL, TRUE,
      "WITH c AS (INSERT INTO companies (name, slug) VALUES ('Alpha', 'alpha'),"
      "  ('Beta', 'beta') RETURNING id, slug),"
      " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
      "  SELECT id, 'agent@' || slug || '.test', 'x', 'agent', 'Agent' FROM c"
      "  RETURNING id, company_id)"
      " SELECT c.id, u.id FROM c JOIN u ON u.company_id = c.id ORDER BY c.slug",
      NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (PQntuples (res), ==, 2);
  company_a = g_strdup (PQgetvalue (res, 0, 0));
  agent_a = g_strdup (PQgetvalue (res, 0, 1));
  company_b = g_strdup (PQgetvalue (res, 1, 0));
  agent_b = g_strdup (PQgetvalue (res, 1, 1));
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
  seed ();
  g_test_add_func ("/store/calls/timeline-in-order", test_timeline_in_order);
  g_test_add_func ("/store/calls/many-calls-side-by-side", test_many_calls_side_by_side);
  g_test_add_func ("/store/calls/refused-writes-are-dropped", test_refused_writes_are_dropped);
  g_test_add_func ("/store/calls/flush-when-idle-and-cancelled",
                   test_flush_when_idle_and_cancelled);
  g_test_add_func ("/store/calls/gives-up-when-unreachable", test_gives_up_when_unreachable);
  g_test_add_func ("/store/calls/retried-until-reachable", test_retried_until_reachable);
  g_test_add_func ("/store/calls/server-restart", test_server_restart);
  status = g_test_run ();
  cd_pg_pool_close (app);
  g_clear_object (&app);
  g_free (company_a);
  g_free (company_b);
  g_free (agent_a);
  g_free (agent_b);
  cd_test_stores_stop (stores);
  return status;
}
