/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The configuration: defaults, key files, environment, refusals that name
 * the key, and redis URLs. */

#include "cd-config.h"

#include <string.h>

static void
test_defaults (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;

  g_assert_cmpstr (config->listen_host, ==, "127.0.0.1");
  g_assert_cmpuint (config->listen_port, ==, 8080);
  g_assert_cmpstr (config->state_dir, ==, ".calldocker");
  g_assert_cmpuint (config->pg_pool_size, ==, 4);
  g_assert_true (cd_config_validate (config, &error));
  g_assert_no_error (error);
  g_assert_true (cd_config_uses_embedded_postgres (config));
  g_assert_true (cd_config_uses_embedded_redis (config));
}

static void
test_file (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;
  const char *text = "# comment\n"
                     "[server]\nlisten = [::1]:9000\nmax_body_bytes = 2048\n"
                     "[postgres]\nconninfo = host=/run/pg dbname=cd\npool_size = 8\n"
                     "[redis]\nurl = redis://:s3cret@10.0.0.5:6380/2\n"
                     "[log]\nlevel = debug\n";
  g_autofree char *summary = NULL;

  g_assert_true (cd_config_load_data (config, text, strlen (text), &error));
  g_assert_no_error (error);
  g_assert_true (cd_config_validate (config, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (config->listen_host, ==, "::1");
  g_assert_cmpuint (config->listen_port, ==, 9000);
  g_assert_cmpuint (config->max_body_bytes, ==, 2048);
  g_assert_cmpuint (config->pg_pool_size, ==, 8);
  g_assert_false (cd_config_uses_embedded_postgres (config));
  g_assert_cmpint (config->redis_address->transport, ==, CD_REDIS_TRANSPORT_TCP);
  g_assert_cmpstr (config->redis_address->host, ==, "10.0.0.5");
  g_assert_cmpuint (config->redis_address->port, ==, 6380);
  g_assert_cmpuint (config->redis_address->db, ==, 2);
  g_assert_cmpstr (config->redis_address->password, ==, "s3cret");

  summary = cd_config_describe (config);
  g_assert_nonnull (strstr (summary, "server.listen = [::1]:9000\n"));
  g_assert_nonnull (strstr (summary, "postgres.conninfo = (set)\n"));
  g_assert_null (strstr (summary, "s3cret"));
}

typedef struct {
  const char *text;
  int code;
  const char *must_mention;
} BadCase;

static void
test_refuses_bad_files (void)
{
  static const BadCase cases[] = {
    { "[server]\nlisten = 127.0.0.1:99999\n", CD_CONFIG_ERROR_INVALID_VALUE, "server.listen" },
    { "[server]\nlisten = somehost:80\n", CD_CONFIG_ERROR_INVALID_VALUE, "server.listen" },
    { "[server]\nlisten = 8080\n", CD_CONFIG_ERROR_INVALID_VALUE, "server.listen" },
    { "[server]\nlistne = 127.0.0.1:1\n", CD_CONFIG_ERROR_UNKNOWN_KEY, "'listne'" },
    { "[sever]\nlisten = 127.0.0.1:1\n", CD_CONFIG_ERROR_UNKNOWN_KEY, "[sever]" },
    { "[postgres]\npool_size = 0\n", CD_CONFIG_ERROR_INVALID_VALUE, "postgres.pool_size" },
    { "[postgres]\npool_size = 65\n", CD_CONFIG_ERROR_INVALID_VALUE, "from 1 to 64" },
    { "[postgres]\npool_size = -1\n", CD_CONFIG_ERROR_INVALID_VALUE, "postgres.pool_size" },
    { "[postgres]\npool_size = 4x\n", CD_CONFIG_ERROR_INVALID_VALUE, "postgres.pool_size" },
    { "[server]\nmax_body_bytes = 10\n", CD_CONFIG_ERROR_INVALID_VALUE, "server.max_body_bytes" },
    { "[log]\nlevel = loud\n", CD_CONFIG_ERROR_INVALID_VALUE, "log.level" },
    { "not a key file", CD_CONFIG_ERROR_SYNTAX, "" },
    { "[server\nlisten=1\n", CD_CONFIG_ERROR_SYNTAX, "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (CdConfig) config = cd_config_new_default ();
    g_autoptr (GError) error = NULL;
    g_autofree char *before = cd_config_describe (config);
    g_autofree char *after = NULL;

    g_test_message ("case %zu: %s", i, cases[i].text);
    g_assert_false (cd_config_load_data (config, cases[i].text, strlen (cases[i].text), &error));
    g_assert_error (error, CD_CONFIG_ERROR, cases[i].code);
    g_assert_nonnull (strstr (error->message, cases[i].must_mention));
    /* nothing changed */
    after = cd_config_describe (config);
    g_assert_cmpstr (before, ==, after);
  }
}

static void
test_bad_file_changes_nothing (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;
  /* the good key comes first: it must not be applied either */
  const char *text = "[postgres]\npool_size = 9\n[log]\nlevel = nope\n";

  g_assert_false (cd_config_load_data (config, text, strlen (text), &error));
  g_assert_cmpuint (config->pg_pool_size, ==, 4);
}

static void
test_contradictions (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;
  const char *text = "[store]\nreconnect_min_ms = 9000\nreconnect_max_ms = 1000\n";

  g_assert_true (cd_config_load_data (config, text, strlen (text), &error));
  g_assert_false (cd_config_validate (config, &error));
  g_assert_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION);
  g_assert_nonnull (strstr (error->message, "store.reconnect_min_ms"));
  g_assert_nonnull (strstr (error->message, "store.reconnect_max_ms"));
}

static void
test_empty_state_dir_with_embedded (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;

  g_assert_true (cd_config_set (config, "state", "dir", "", "test", &error));
  g_assert_false (cd_config_validate (config, &error));
  g_assert_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION);
  g_assert_nonnull (strstr (error->message, "state.dir"));
}

static void
test_bad_conninfo (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;

  g_assert_true (
      cd_config_set (config, "postgres", "conninfo", "host=x nosuchoption=1", "t", &error));
  g_assert_false (cd_config_validate (config, &error));
  g_assert_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE);
  g_assert_nonnull (strstr (error->message, "postgres.conninfo"));
}

static void
test_environment (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) env = NULL;

  env = g_environ_setenv (NULL, "CALLDOCKER_SERVER_LISTEN", "0.0.0.0:7000", TRUE);
  env = g_environ_setenv (env, "CALLDOCKER_POSTGRES_POOL_SIZE", "2", TRUE);
  env = g_environ_setenv (env, "CALLDOCKER_REDIS_URL", "unix:/run/redis.sock", TRUE);
  g_assert_true (cd_config_apply_environment (config, env, &error));
  g_assert_no_error (error);
  g_assert_true (cd_config_validate (config, &error));
  g_assert_cmpstr (config->listen_host, ==, "0.0.0.0");
  g_assert_cmpuint (config->listen_port, ==, 7000);
  g_assert_cmpuint (config->pg_pool_size, ==, 2);
  g_assert_cmpint (config->redis_address->transport, ==, CD_REDIS_TRANSPORT_UNIX);
  g_assert_cmpstr (config->redis_address->path, ==, "/run/redis.sock");

  g_strfreev (env);
  env = g_environ_setenv (NULL, "CALLDOCKER_SHUTDOWN_TIMEOUT_S", "forever", TRUE);
  g_assert_false (cd_config_apply_environment (config, env, &error));
  g_assert_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE);
  g_assert_nonnull (strstr (error->message, "CALLDOCKER_SHUTDOWN_TIMEOUT_S"));
}

static void
test_redis_urls (void)
{
  static const char *bad[] = {
    "http://x:1",         "redis://",           "redis://host:1/abc",
    "redis://host/99999", "unix:relative.sock", "just text",
  };
  g_autoptr (CdRedisAddress) a = NULL;
  g_autoptr (GError) error = NULL;

  a = cd_redis_address_parse ("redis://127.0.0.1", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (a->port, ==, 6379);
  g_assert_null (a->password);

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (CdRedisAddress) b = cd_redis_address_parse (bad[i], &error);
    g_test_message ("url %s", bad[i]);
    g_assert_null (b);
    g_assert_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE);
    g_clear_error (&error);
  }
}

static void
test_example_file_is_valid (void)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;
  g_autofree char *path =
      g_test_build_filename (G_TEST_DIST, "..", "data", "calldockerd.conf.example", NULL);

  g_assert_true (cd_config_load_file (config, path, &error));
  g_assert_no_error (error);
  g_assert_true (cd_config_validate (config, &error));
  g_assert_no_error (error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/defaults", test_defaults);
  g_test_add_func ("/config/file", test_file);
  g_test_add_func ("/config/refuses-bad-files", test_refuses_bad_files);
  g_test_add_func ("/config/bad-file-changes-nothing", test_bad_file_changes_nothing);
  g_test_add_func ("/config/refuses-contradictions", test_contradictions);
  g_test_add_func ("/config/refuses-empty-state-dir", test_empty_state_dir_with_embedded);
  g_test_add_func ("/config/refuses-bad-conninfo", test_bad_conninfo);
  g_test_add_func ("/config/environment", test_environment);
  g_test_add_func ("/config/redis-urls", test_redis_urls);
  g_test_add_func ("/config/example-file-is-valid", test_example_file_is_valid);
  return g_test_run ();
}
