/* SPDX-License-Identifier: GPL-3.0-or-later */
/* calldockerd as users run it: options, config refusal, the embedded stores,
 * health, readiness through store restarts, metrics, graceful shutdown, a
 * second daemon on the same state folder, and kill -9 leaving no orphans. */

#include "cd-json.h"
#include "cd-test-harness.h"

#include <signal.h>
#include <string.h>

static char *
proc_comm (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/comm", (int) pid);
  char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return g_strdup ("");
  return g_strstrip (text);
}

/* The embedded servers and all their descendants. */
static GArray *
descendants (GPid pid)
{
  GArray *all = g_array_new (FALSE, FALSE, sizeof (GPid));
  g_autoptr (GArray) queue = cd_test_children_of (pid);

  while (queue->len > 0) {
    GPid p = g_array_index (queue, GPid, queue->len - 1);
    g_autoptr (GArray) more = cd_test_children_of (p);
    g_array_remove_index (queue, queue->len - 1);
    g_array_append_val (all, p);
    g_array_append_vals (queue, more->data, more->len);
  }
  return all;
}

static GPid
child_named (GPid daemon_pid, const char *prefix)
{
  g_autoptr (GArray) children = cd_test_children_of (daemon_pid);

  for (guint i = 0; i < children->len; i++) {
    GPid p = g_array_index (children, GPid, i);
    g_autofree char *comm = proc_comm (p);
    if (g_str_has_prefix (comm, prefix))
      return p;
  }
  return 0;
}

static GPid
daemon_pid (CdTestDaemon *d)
{
  return (GPid) g_ascii_strtoll (g_subprocess_get_identifier (d->process), NULL, 10);
}

static char *
url (CdTestDaemon *d, const char *path)
{
  return g_strconcat (d->base_url, path[0] == '/' ? path + 1 : path, NULL);
}

static guint
get (CdTestDaemon *d, const char *path, char **body)
{
  g_autofree char *u = url (d, path);

  return cd_test_http_get (u, body, NULL);
}

static void
assert_all_gone (GArray *pids, guint timeout_ms)
{
  for (guint i = 0; i < pids->len; i++) {
    GPid p = g_array_index (pids, GPid, i);
    WAIT_UNTIL (!cd_test_pid_alive (p), timeout_ms);
  }
}

static CdTestDaemon *
start_daemon (const char *state_dir)
{
  CdTestDaemon *d = cd_test_daemon_spawn (state_dir, NULL, NULL);

  cd_test_daemon_wait_ready (d, 60000);
  /* both embedded servers run as our children */
  WAIT_UNTIL (child_named (daemon_pid (d), "postgres") && child_named (daemon_pid (d), "redis"),
              10000);
  return d;
}

static void
test_version (void)
{
  const char *args[] = { "--version", NULL };
  CdTestDaemon *d = cd_test_daemon_spawn (NULL, args, NULL);

  cd_test_daemon_wait_exit (d, 10000);
  g_assert_cmpint (d->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (d->out->str, "calldockerd "));
  cd_test_daemon_free (d);
}

static void
test_check_config (void)
{
  g_autofree char *example =
      g_build_filename (g_getenv ("CALLDOCKER_DATADIR"), "calldockerd.conf.example", NULL);
  const char *args[] = { "--config", example, "--check-config", NULL };
  CdTestDaemon *d = cd_test_daemon_spawn (NULL, args, NULL);

  cd_test_daemon_wait_exit (d, 10000);
  g_assert_cmpint (d->exit_status, ==, 0);
  g_assert_nonnull (strstr (d->out->str, "server.listen = 127.0.0.1:0\n"));
  g_assert_nonnull (strstr (d->out->str, "configuration OK\n"));
  cd_test_daemon_free (d);

  /* the GeoIP database it names is opened too */
  {
    const char *missing[] = { "CALLDOCKER_SIGNAL_GEOIP_DATABASE=/nonexistent/country.mmdb", NULL };

    d = cd_test_daemon_spawn (NULL, args, missing);
    cd_test_daemon_wait_exit (d, 10000);
    g_assert_cmpint (d->exit_status, ==, 1);
    g_assert_nonnull (strstr (d->err->str, "signal.geoip_database: GeoIP database "
                                           "/nonexistent/country.mmdb"));
    g_assert_null (strstr (d->out->str, "configuration OK"));
    cd_test_daemon_free (d);
  }
}

static void
test_bad_config_refused (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-cfg-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "bad.conf", NULL);
  g_autofree char *state = g_build_filename (dir, "state", NULL);
  const char *args[] = { "--config", path, NULL };
  const char *env[] = { "CALLDOCKER_POSTGRES_POOL_SIZE=0", NULL };
  CdTestDaemon *d;

  g_assert_true (g_file_set_contents (path, "[postgres]\npool_size = lots\n", -1, NULL));
  d = cd_test_daemon_spawn (state, args, NULL);
  cd_test_daemon_wait_exit (d, 10000);
  g_assert_cmpint (d->exit_status, ==, 1);
  g_assert_nonnull (strstr (d->err->str, "postgres.pool_size = 'lots'"));
  g_assert_false (g_file_test (state, G_FILE_TEST_EXISTS)); /* nothing was started */
  cd_test_daemon_free (d);

  d = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_exit (d, 10000);
  g_assert_cmpint (d->exit_status, ==, 1);
  g_assert_nonnull (strstr (d->err->str, "CALLDOCKER_POSTGRES_POOL_SIZE"));
  cd_test_daemon_free (d);

  /* a GeoIP database it cannot read: it says which and why, starts nothing */
  {
    g_autofree char *not_mmdb = g_build_filename (dir, "country.mmdb", NULL);
    g_autofree char *geoip_env = g_strconcat ("CALLDOCKER_SIGNAL_GEOIP_DATABASE=", not_mmdb, NULL);
    const char *geoip[] = { geoip_env, NULL };

    g_assert_true (g_file_set_contents (not_mmdb, "no database here\n", -1, NULL));
    d = cd_test_daemon_spawn (state, NULL, geoip);
    cd_test_daemon_wait_exit (d, 10000);
    g_assert_cmpint (d->exit_status, ==, 1);
    g_assert_nonnull (strstr (d->err->str, "signal.geoip_database: GeoIP database"));
    g_assert_nonnull (strstr (d->err->str, not_mmdb));
    g_assert_false (g_file_test (state, G_FILE_TEST_EXISTS));
    cd_test_daemon_free (d);
  }

  {
    const char *unknown[] = { "--nonsense", NULL };
    d = cd_test_daemon_spawn (state, unknown, NULL);
    cd_test_daemon_wait_exit (d, 10000);
    g_assert_cmpint (d->exit_status, ==, 2);
    g_assert_nonnull (strstr (d->err->str, "--nonsense"));
    cd_test_daemon_free (d);
  }
  cd_test_remove_tree (dir);
}

static void
test_serves_then_stops_gracefully (void)
{
  g_autofree char *state = cd_test_make_tmp_dir ("cd-d-XXXXXX");
  CdTestDaemon *d = start_daemon (state);
  g_autofree char *health = NULL;
  g_autofree char *ready = NULL;
  g_autofree char *metrics = NULL;
  g_autofree char *missing = NULL;
  g_autoptr (JsonObject) ready_json = NULL;
  g_autoptr (GArray) servers = descendants (daemon_pid (d));
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (servers->len, >=, 2);
  g_assert_cmpuint (get (d, "/healthz", &health), ==, 200);
  g_assert_cmpstr (health, ==, "{\"status\":\"ok\"}");
  g_assert_cmpuint (get (d, "/readyz", &ready), ==, 200);
  ready_json = cd_json_parse_object (ready, strlen (ready), NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (ready_json, "status"), ==, "ready");
  g_assert_cmpuint (get (d, "/no/such/thing", &missing), ==, 404);
  g_assert_nonnull (strstr (missing, "urn:calldocker:problem:not-found"));

  g_assert_cmpuint (get (d, "/metrics", &metrics), ==, 200);
  cd_test_assert_prometheus_text (metrics);
  g_assert_nonnull (strstr (metrics, "calldocker_build_info{version=\""));
  g_assert_nonnull (strstr (metrics, "calldocker_http_requests_total{route=\"/healthz\","
                                     "method=\"GET\",status=\"200\"} 1\n"));
  g_assert_nonnull (strstr (metrics, "calldocker_http_request_duration_seconds_bucket{route="
                                     "\"/readyz\",le=\"+Inf\"} 1\n"));
  g_assert_nonnull (strstr (metrics, "calldocker_pg_pool_size 4\n"));
  g_assert_nonnull (strstr (metrics, "calldocker_redis_connected 1\n"));
  g_assert_nonnull (strstr (metrics, "# TYPE calldocker_redis_commands_total counter\n"));
  g_assert_nonnull (strstr (metrics, "calldocker_pg_reconnects_total "));

  /* one log line per request, with its request id */
  WAIT_UNTIL (strstr (d->err->str, "GET /healthz 200 request_id=") != NULL, 5000);

  g_assert_cmpint (kill (daemon_pid (d), SIGTERM), ==, 0);
  cd_test_daemon_wait_exit (d, 30000);
  g_assert_cmpint (d->exit_status, ==, 0);
  assert_all_gone (servers, 10000);
  g_assert_nonnull (strstr (d->err->str, "shutting down"));
  g_assert_nonnull (strstr (d->err->str, "embedded PostgreSQL stopped"));
  g_assert_nonnull (strstr (d->err->str, "embedded Redis stopped"));
  cd_test_daemon_free (d);

  /* a second start on the same folder reuses the database: no initdb, no migration */
  d = start_daemon (state);
  g_assert_null (strstr (d->err->str, "first start"));
  g_assert_nonnull (strstr (d->err->str, "database ready (0 migrations applied)"));
  g_assert_cmpint (kill (daemon_pid (d), SIGINT), ==, 0);
  cd_test_daemon_wait_exit (d, 30000);
  g_assert_cmpint (d->exit_status, ==, 0);
  cd_test_daemon_free (d);
  cd_test_remove_tree (state);
}

static void
test_second_daemon_refused (void)
{
  g_autofree char *state = cd_test_make_tmp_dir ("cd-d-XXXXXX");
  CdTestDaemon *first = start_daemon (state);
  CdTestDaemon *second = cd_test_daemon_spawn (state, NULL, NULL);
  g_autofree char *expected = g_strdup_printf ("another calldockerd (pid %d) is using the state "
                                               "folder",
                                               (int) daemon_pid (first));

  cd_test_daemon_wait_exit (second, 30000);
  g_assert_cmpint (second->exit_status, ==, 1);
  g_assert_nonnull (strstr (second->err->str, expected));
  /* the first one is untouched */
  g_assert_cmpuint (get (first, "/readyz", NULL), ==, 200);
  cd_test_daemon_free (second);

  g_assert_cmpint (kill (daemon_pid (first), SIGTERM), ==, 0);
  cd_test_daemon_wait_exit (first, 30000);
  g_assert_cmpint (first->exit_status, ==, 0);
  cd_test_daemon_free (first);
  cd_test_remove_tree (state);
}

static gboolean
readyz_is (CdTestDaemon *d, guint status, const char *needle)
{
  g_autofree char *body = NULL;

  if (get (d, "/readyz", &body) != status)
    return FALSE;
  return needle == NULL || (body && strstr (body, needle));
}

static void
test_readyz_follows_store_restarts (void)
{
  g_autofree char *state = cd_test_make_tmp_dir ("cd-d-XXXXXX");
  CdTestDaemon *d = start_daemon (state);
  GPid redis = child_named (daemon_pid (d), "redis");
  GPid postgres = child_named (daemon_pid (d), "postgres");

  g_assert_true (readyz_is (d, 200, "\"redis\":\"ok\""));

  g_assert_cmpint (kill (redis, SIGKILL), ==, 0);
  WAIT_UNTIL (readyz_is (d, 503, "\"redis\":\"not connected\""), 10000);
  WAIT_UNTIL (readyz_is (d, 200, NULL), 30000);
  g_assert_cmpint (child_named (daemon_pid (d), "redis"), !=, redis);

  g_assert_cmpint (kill (postgres, SIGKILL), ==, 0);
  WAIT_UNTIL (readyz_is (d, 503, "\"postgres\":\"not connected\""), 10000);
  WAIT_UNTIL (readyz_is (d, 200, NULL), 60000);

  g_assert_cmpint (kill (daemon_pid (d), SIGTERM), ==, 0);
  cd_test_daemon_wait_exit (d, 30000);
  g_assert_cmpint (d->exit_status, ==, 0);
  cd_test_daemon_free (d);
  cd_test_remove_tree (state);
}

static void
test_kill_9_leaves_no_orphans (void)
{
  g_autofree char *state = cd_test_make_tmp_dir ("cd-d-XXXXXX");
  CdTestDaemon *d = start_daemon (state);
  g_autoptr (GArray) servers = descendants (daemon_pid (d));
  CdTestDaemon *again;

  /* postgres, its background processes and backends, and redis */
  g_assert_cmpuint (servers->len, >=, 4);
  g_assert_cmpint (kill (daemon_pid (d), SIGKILL), ==, 0);
  cd_test_daemon_wait_exit (d, 10000);
  assert_all_gone (servers, 20000);
  cd_test_daemon_free (d);

  /* and the folder is usable again at once: the lock died with the process */
  again = start_daemon (state);
  g_assert_cmpint (kill (daemon_pid (again), SIGTERM), ==, 0);
  cd_test_daemon_wait_exit (again, 30000);
  g_assert_cmpint (again->exit_status, ==, 0);
  cd_test_daemon_free (again);
  cd_test_remove_tree (state);
}

static void
test_external_stores (void)
{
  CdTestStores *stores = cd_test_stores_start ();
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-ext-XXXXXX");
  g_autofree char *config = g_build_filename (dir, "calldockerd.conf", NULL);
  g_autofree char *state = g_build_filename (dir, "state", NULL);
  g_autofree char *text = g_strdup_printf ("[postgres]\nconninfo = %s\n[redis]\nurl = unix:%s\n",
                                           stores->pg_conninfo, stores->redis_address->path);
  const char *args[] = { "--config", config, NULL };
  CdTestDaemon *d;
  g_autoptr (GArray) children = NULL;

  g_assert_true (g_file_set_contents (config, text, -1, NULL));
  d = cd_test_daemon_spawn (state, args, NULL);
  cd_test_daemon_wait_ready (d, 60000);
  g_assert_cmpuint (get (d, "/readyz", NULL), ==, 200);
  /* nothing embedded was started; the state folder holds only the JWT key */
  children = cd_test_children_of (daemon_pid (d));
  g_assert_cmpuint (children->len, ==, 0);
  {
    g_autofree char *pg = g_build_filename (state, "postgres", NULL);
    g_autofree char *redis = g_build_filename (state, "redis", NULL);
    g_autofree char *keys = g_build_filename (state, "auth", "jwt-keys", NULL);
    g_assert_false (g_file_test (pg, G_FILE_TEST_EXISTS));
    g_assert_false (g_file_test (redis, G_FILE_TEST_EXISTS));
    g_assert_true (g_file_test (keys, G_FILE_TEST_IS_REGULAR));
  }
  g_assert_cmpint (kill (daemon_pid (d), SIGTERM), ==, 0);
  cd_test_daemon_wait_exit (d, 30000);
  g_assert_cmpint (d->exit_status, ==, 0);
  cd_test_daemon_free (d);
  cd_test_remove_tree (dir);
  cd_test_stores_stop (stores);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/daemon/version", test_version);
  g_test_add_func ("/daemon/check-config", test_check_config);
  g_test_add_func ("/daemon/bad-config-refused", test_bad_config_refused);
  g_test_add_func ("/daemon/serves-then-stops-gracefully", test_serves_then_stops_gracefully);
  g_test_add_func ("/daemon/second-daemon-refused", test_second_daemon_refused);
  g_test_add_func ("/daemon/readyz-follows-store-restarts", test_readyz_follows_store_restarts);
  g_test_add_func ("/daemon/kill-9-leaves-no-orphans", test_kill_9_leaves_no_orphans);
  g_test_add_func ("/daemon/external-stores", test_external_stores);
  return g_test_run ();
}
