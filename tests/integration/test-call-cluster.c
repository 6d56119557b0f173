/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Two daemons on one PostgreSQL and one Redis: an agent signed in to both
 * is reserved by one daemon at a time (never two calls at once), and a
 * daemon that dies loses its reservation when the lease runs out, so the
 * other daemon's waiting call reaches the agent. */

#include "auth/cd-password.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://shop.test"

static CdTestStores *stores;
static char *dir;
static char *company;
static char *password_file;
static guint agent_count;

/* ---- the database, as its owner ---- */

static PGresult *
sql (const char *query, const char *const *params, int n_params)
{
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (stores->pg_conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  PGresult *res;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (owner, query, params, n_params, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (owner);
  return res;
}

static char *
new_agent (void)
{
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
  g_autofree char *email = g_strdup_printf ("agent%u@shop.test", ++agent_count);
  const char *params[] = { company, email, hash };
  PGresult *res = sql ("INSERT INTO users (company_id, email, password_hash, role, display_name)"
                       " VALUES ($1, $2, $3, 'agent', 'Agent') RETURNING id",
                       params, 3);

  PQclear (res);
  return g_steal_pointer (&email);
}

/* The call's timeline kinds, in order, joined by spaces. */
static char *
timeline (const char *call_id)
{
  const char *params[] = { call_id };
  g_autoptr (PGresult) res = sql (
      "SELECT string_agg(kind || coalesce(':' || (detail->>'reason'), ''), ' ' ORDER BY at, id)"
      " FROM call_events WHERE call_id = $1",
      params, 1);

  return g_strdup (PQgetisnull (res, 0, 0) ? "" : PQgetvalue (res, 0, 0));
}

/* The call's @column (a timestamp) in seconds since the epoch, once the
 * daemon has written it (the call store writes behind). */
static double
epoch_of (const char *call_id, const char *column)
{
  g_autofree char *query =
      g_strdup_printf ("SELECT extract(epoch FROM %s) FROM calls WHERE id = $1", column);
  const char *params[] = { call_id };
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  for (;;) {
    g_autoptr (PGresult) res = sql (query, params, 1);

    if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 0))
      return g_ascii_strtod (PQgetvalue (res, 0, 0), NULL);
    if (g_get_monotonic_time () > deadline)
      g_error ("call %s has no %s", call_id, column);
    cd_test_iterate (200);
  }
}

/* ---- daemons and peers ---- */

static CdTestDaemon *
daemon_start (const char *name)
{
  g_autofree char *config = g_strdup_printf ("%s/%s.conf", dir, name);
  g_autofree char *state = g_strdup_printf ("%s/%s", dir, name);
  g_autofree char *text = g_strdup_printf ("[postgres]\nconninfo = %s\n[redis]\nurl = unix:%s\n",
                                           stores->pg_conninfo, stores->redis_address->path);
  const char *args[] = { "--config", config, NULL };
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1",
                        "CALLDOCKER_CALLS_RESERVATION_LEASE_S=2",
                        "CALLDOCKER_SIGNAL_RESUME_GRACE_S=1",
                        "CALLDOCKER_WIDGET_SESSION_LIMIT_PER_ADDRESS=1000", NULL };
  CdTestDaemon *d;

  g_assert_true (g_file_set_contents (config, text, -1, NULL));
  d = cd_test_daemon_spawn (state, args, env);
  cd_test_daemon_wait_ready (d, 60000);
  return d;
}

static void
daemon_stop (CdTestDaemon *d, int sig)
{
  if (!d->exited) {
    kill (g_ascii_strtoll (g_subprocess_get_identifier (d->process), NULL, 10), sig);
    cd_test_daemon_wait_exit (d, 30000);
  }
  cd_test_daemon_free (d);
}

static CdTestPeer *
peer_start (CdTestDaemon *d, const char *name, ...)
{
  CdTestPeer *p;
  va_list args;

  va_start (args, name);
  p = cd_test_peer_start_va (name, d->base_url, NULL, args);
  va_end (args);
  return p;
}

static JsonObject *
peer_finish (CdTestPeer *p, gboolean *good)
{
  gboolean exited_0 = cd_test_peer_wait (p, 90000);
  JsonObject *report;

  g_printerr ("peer report: %s\n%s", p->out, p->err);
  report = cd_json_parse_object (p->out, strlen (p->out), NULL, NULL);
  g_assert_nonnull (report);
  if (good)
    *good = exited_0;
  cd_test_peer_free (p);
  return report;
}

static JsonObject *
only_call (JsonObject *report)
{
  JsonArray *calls = json_object_get_array_member (report, "calls");

  g_assert_cmpuint (json_array_get_length (calls), ==, 1);
  return json_array_get_object_element (calls, 0);
}

static const char *
call_id_of (JsonObject *report)
{
  return json_object_get_string_member (only_call (report), "call_id");
}

/* ---- tests ---- */

/* One agent, signed in to both daemons; a visitor calls each at the same
 * moment. Only one daemon wins the agent's reservation: the other call
 * waits, its timeline says why, and reaches the agent once the first
 * ends. Without the shared reservation both would ring at once and the
 * agent (who takes whatever is offered) would hold two calls. */
static void
test_one_agent_two_daemons (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autofree char *email = new_agent ();
  CdTestPeer *agent_a = peer_start (a, "calldocker-agent", "--email", email, "--password-file",
                                    password_file, "--calls", "1", "--timeout", "40", NULL);
  CdTestPeer *agent_b = peer_start (b, "calldocker-agent", "--email", email, "--password-file",
                                    password_file, "--calls", "1", "--timeout", "40", NULL);
  CdTestPeer *visitor_a, *visitor_b;
  g_autoptr (JsonObject) report_a = NULL;
  g_autoptr (JsonObject) report_b = NULL;
  g_autoptr (JsonObject) agent_report_a = NULL;
  g_autoptr (JsonObject) agent_report_b = NULL;
  g_autofree char *first_timeline = NULL;
  g_autofree char *second_timeline = NULL;
  const char *first, *second;
  double after_end;
  gboolean good_a, good_b;

  cd_test_sleep (1500); /* both sessions sign in and say available */
  visitor_a = peer_start (a, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "3", "--expect-hz", "880", "--timeout", "40", NULL);
  visitor_b = peer_start (b, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "3", "--expect-hz", "880", "--timeout", "40", NULL);
  report_a = peer_finish (visitor_a, &good_a);
  report_b = peer_finish (visitor_b, &good_b);
  agent_report_a = peer_finish (agent_a, NULL);
  agent_report_b = peer_finish (agent_b, NULL);
  /* both visitors talked to the agent and heard its tone */
  g_assert_true (good_a);
  g_assert_true (good_b);
  g_assert_cmpstr (json_object_get_string_member (only_call (report_a), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpstr (json_object_get_string_member (only_call (report_b), "end_reason"), ==,
                   "visitor-hangup");
  /* each daemon's agent session took its own daemon's call */
  g_assert_cmpstr (call_id_of (agent_report_a), ==, call_id_of (report_a));
  g_assert_cmpstr (call_id_of (agent_report_b), ==, call_id_of (report_b));

  /* one after the other: whichever was answered first ended before the
   * other was answered */
  if (epoch_of (call_id_of (report_a), "answered_at") <=
      epoch_of (call_id_of (report_b), "answered_at")) {
    first = call_id_of (report_a);
    second = call_id_of (report_b);
  } else {
    first = call_id_of (report_b);
    second = call_id_of (report_a);
  }
  after_end = epoch_of (second, "answered_at") - epoch_of (first, "ended_at");
  g_test_message ("the second call was answered %.2f s after the first ended", after_end);
  g_assert_cmpfloat (after_end, >=, 0);
  first_timeline = timeline (first);
  second_timeline = timeline (second);
  g_test_message ("first: %s", first_timeline);
  g_test_message ("second: %s", second_timeline);
  g_assert_null (strstr (first_timeline, "agent.held"));
  g_assert_nonnull (strstr (second_timeline, "agent.held:reserved-elsewhere"));
  g_assert_true (strstr (second_timeline, "agent.held") <
                 strstr (second_timeline, "agent.offered"));

  daemon_stop (a, SIGTERM);
  daemon_stop (b, SIGTERM);
}

/* The agent is on a call through daemon A when A is killed: its
 * reservation is no longer renewed, lapses after the lease (2 s here), and
 * daemon B's waiting call is offered to the agent's session on B. */
static void
test_dead_daemon_releases_agent (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autofree char *email = new_agent ();
  CdTestPeer *agent_a = peer_start (a, "calldocker-agent", "--email", email, "--password-file",
                                    password_file, "--calls", "1", "--timeout", "60", NULL);
  CdTestPeer *visitor_a, *agent_b, *visitor_b;
  g_autoptr (JsonObject) report_b = NULL;
  g_autoptr (JsonObject) agent_report_b = NULL;
  g_autofree char *held_timeline = NULL;
  gboolean good_b;
  gint64 deadline;
  guint connected = 0;

  cd_test_sleep (1000);
  visitor_a = peer_start (a, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "60", "--timeout", "60", NULL);
  /* the agent talks through A */
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (connected == 0 && g_get_monotonic_time () < deadline) {
    g_autoptr (PGresult) res = sql (
        "SELECT count(*) FROM calls WHERE answered_at IS NOT NULL AND ended_at IS NULL", NULL, 0);
    connected = (guint) g_ascii_strtoull (PQgetvalue (res, 0, 0), NULL, 10);
    if (connected == 0)
      cd_test_iterate (200);
  }
  g_assert_cmpuint (connected, ==, 1);

  /* the same agent on B; a visitor calls B and waits: A holds the agent */
  agent_b = peer_start (b, "calldocker-agent", "--email", email, "--password-file", password_file,
                        "--calls", "1", "--timeout", "60", NULL);
  cd_test_sleep (1000);
  visitor_b = peer_start (b, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "3", "--expect-hz", "880", "--timeout", "60", NULL);
  cd_test_sleep (3000);
  {
    g_autoptr (PGresult) res = sql ("SELECT id FROM calls WHERE answered_at IS NULL"
                                    " AND ended_at IS NULL",
                                    NULL, 0);
    g_assert_cmpint (PQntuples (res), ==, 1);
    held_timeline = timeline (PQgetvalue (res, 0, 0));
    g_test_message ("waiting on B: %s", held_timeline);
    g_assert_nonnull (strstr (held_timeline, "agent.held:reserved-elsewhere"));
    g_assert_null (strstr (held_timeline, "agent.offered"));
  }

  /* A dies without a word */
  daemon_stop (a, SIGKILL);
  report_b = peer_finish (visitor_b, &good_b);
  agent_report_b = peer_finish (agent_b, NULL);
  g_assert_true (good_b);
  g_assert_cmpstr (json_object_get_string_member (only_call (report_b), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpstr (call_id_of (agent_report_b), ==, call_id_of (report_b));
  json_object_unref (peer_finish (visitor_a, NULL));
  json_object_unref (peer_finish (agent_a, NULL));
  daemon_stop (b, SIGTERM);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
  dir = cd_test_make_tmp_dir ("cd-cluster-XXXXXX");
  {
    /* the first daemon creates the schema */
    CdTestDaemon *first = daemon_start ("a");
    g_autoptr (PGresult) res = NULL;

    daemon_stop (first, SIGTERM);
    res = sql ("INSERT INTO companies (name, slug, status, allowed_origins)"
               " VALUES ('Shop', 'shop', 'approved', ARRAY['" ORIGIN "']) RETURNING id",
               NULL, 0);
    company = g_strdup (PQgetvalue (res, 0, 0));
  }
  password_file = g_build_filename (dir, "agent-password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
  g_test_add_func ("/cluster/one-agent-two-daemons", test_one_agent_two_daemons);
  g_test_add_func ("/cluster/dead-daemon-releases-agent", test_dead_daemon_releases_agent);
  status = g_test_run ();
  cd_test_stores_stop (stores);
  cd_test_remove_tree (dir);
  g_free (company);
  g_free (password_file);
  return status;
}
