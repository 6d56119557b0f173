/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Start: lock the state folder, listen, start the embedded servers, connect,
 * migrate. Stop: stop accepting, end calls, flush, close stores, stop servers. */

#define G_LOG_DOMAIN "calldocker"

#include "cd-daemon.h"

#include "cd-build-config.h"
#include "cd-demo-seed.h"
#include "auth/cd-auth-error.h"
#include "events/cd-mailer.h"
#include "events/cd-metrics.h"
#include "http/cd-api.h"
#include "signal/cd-signal-server.h"
#include "http/cd-http-health.h"
#include "http/cd-http-server.h"
#include "store/cd-call-store.h"
#include "store/cd-embedded-stores.h"
#include "store/cd-pg-migrations.h"
#include "store/cd-pg-pool.h"
#include "store/cd-redis.h"
#include "store/cd-retention.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

typedef enum {
  STATE_NEW,
  STATE_STARTING,
  STATE_RUNNING,
  STATE_STOPPING,
  STATE_STOPPED,
} DaemonState;

enum {
  SIGNAL_READY,
  SIGNAL_STOPPED,
  N_SIGNALS,
};

static guint signals[N_SIGNALS];

/* Everything here belongs to the main thread. */
struct _CdDaemon {
  GObject parent_instance;

  CdConfig *config;
  DaemonState state;
  GCancellable *cancellable; /* cancelled when shutdown starts */
  int lock_fd;
  char *lock_path;
  CdMetrics *metrics;
  CdEmbeddedStores *embedded;
  CdPgPool *pool;         /* as postgres.app_role: what requests use */
  CdPgPool *migrate_pool; /* as the owner, during start-up only */
  CdRedis *redis;
  CdHttpServer *http;
  CdHttpHealth *health;
  CdApi api;
  CdMailer *mailer;
  CdSignalServer *signal;
  CdGeoip *geoip;         /* nullable: no GeoIP database configured */
  CdRetention *retention; /* once the database is ready */
  gboolean migrated;
  int exit_code;
  char *superadmin_email; /* --create-superadmin: do that, then stop */
  char *superadmin_password;
  gboolean seed_demo;
  guint migrate_retry_id;
  guint redis_retry_id;
  guint migrate_backoff_ms;
  gint64 started_at;
  GCancellable *flush_cancellable; /* shutdown's wait for the call writes */
  guint flush_timeout_id;
};

G_DEFINE_FINAL_TYPE (CdDaemon, cd_daemon, G_TYPE_OBJECT)

/* One daemon per state folder: an flock() held for the process's life. */
static gboolean
lock_state_dir (CdDaemon *self, GError **error)
{
  const char *dir = self->config->state_dir;
  g_autofree char *pid_text = NULL;
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0) {
    int e = errno;
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot create state folder %s: %s",
                 dir, g_strerror (e));
    return FALSE;
  }
  self->lock_path = g_build_filename (dir, "calldockerd.lock", NULL);
  fd = g_open (self->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot open %s: %s",
                 self->lock_path, g_strerror (e));
    return FALSE;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = { 0 };
    ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
    g_strstrip (buf);
    close (fd);
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_LOCKED,
                 "another calldockerd%s%s%s is using the state folder %s; stop it or choose "
                 "another --state-dir",
                 n > 0 ? " (pid " : "", n > 0 ? buf : "", n > 0 ? ")" : "", dir);
    return FALSE;
  }
  pid_text = g_strdup_printf ("%d\n", (int) getpid ());
  if (ftruncate (fd, 0) != 0 || pwrite (fd, pid_text, strlen (pid_text), 0) < 0)
    g_warning ("cannot write the pid into %s", self->lock_path);
  self->lock_fd = fd;
  return TRUE;
}

static void
unlock_state_dir (CdDaemon *self)
{
  if (self->lock_fd < 0)
    return;
  if (ftruncate (self->lock_fd, 0) != 0)
    g_debug ("cannot empty %s", self->lock_path);
  close (self->lock_fd);
  self->lock_fd = -1;
}

static gboolean
readiness (gpointer user_data, char **reason)
{
  CdDaemon *self = user_data;

  if (self->state == STATE_STOPPING || self->state == STATE_STOPPED) {
    *reason = g_strdup ("shutting down");
    return FALSE;
  }
  if (!self->migrated) {
    *reason = g_strdup ("database migrations pending");
    return FALSE;
  }
  return TRUE;
}

/* The stores count for the process's life: mirror them as counters. */
static void
mirror_total (CdMetrics *metrics, const char *name, guint64 value)
{
  double seen = cd_metrics_get (metrics, name, NULL);

  /* adding 0 still creates the series, so it shows from the start */
  cd_metrics_add (metrics, name, NULL, (double) value > seen ? (double) value - seen : 0);
}

static void
collect_store_metrics (CdMetrics *metrics, gpointer user_data)
{
  CdDaemon *self = user_data;
  CdPgPoolStats pg;
  CdRedisStats rs;

  cd_pg_pool_get_stats (self->pool, &pg);
  cd_redis_get_stats (self->redis, &rs);
  cd_metrics_set (metrics, "calldocker_pg_pool_connections", "state=\"connected\"", pg.connected);
  cd_metrics_set (metrics, "calldocker_pg_pool_connections", "state=\"leased\"", pg.leased);
  cd_metrics_set (metrics, "calldocker_pg_pool_connections", "state=\"busy\"", pg.busy);
  cd_metrics_set (metrics, "calldocker_pg_pool_size", NULL, pg.size);
  cd_metrics_set (metrics, "calldocker_pg_pool_waiting", NULL, pg.waiting);
  mirror_total (metrics, "calldocker_pg_reconnects_total", pg.reconnects);
  mirror_total (metrics, "calldocker_pg_queries_total", pg.queries);
  mirror_total (metrics, "calldocker_pg_query_errors_total", pg.query_errors);
  cd_metrics_set (metrics, "calldocker_redis_connected", NULL, cd_redis_is_connected (self->redis));
  mirror_total (metrics, "calldocker_redis_reconnects_total", rs.reconnects);
  mirror_total (metrics, "calldocker_redis_commands_total", rs.commands);
  mirror_total (metrics, "calldocker_redis_errors_total", rs.errors);
  cd_metrics_set (metrics, "calldocker_uptime_seconds", NULL,
                  (g_get_monotonic_time () - self->started_at) / 1e6);
  if (self->signal)
    cd_metrics_set (
        metrics, "calldocker_calls_active", NULL,
        cd_switchboard_get_call_count (cd_signal_server_get_switchboard (self->signal)));
  cd_metrics_set (metrics, "calldocker_call_pipelines", NULL, cd_call_pipeline_get_live_count ());
}

static void
register_metrics (CdDaemon *self)
{
  CdMetrics *m = self->metrics;
  g_autofree char *gst = gst_version_string ();
  g_autofree char *gst_label = cd_metrics_escape_label (gst);
  g_autofree char *labels = g_strdup_printf ("version=\"%s\",gstreamer=\"%s\",buildtype=\"%s\"",
                                             CD_VERSION, gst_label, CD_BUILD_TYPE);

  cd_metrics_register (m, "calldocker_build_info", CD_METRIC_GAUGE,
                       "Always 1; labels tell the version", NULL, 0);
  cd_metrics_set (m, "calldocker_build_info", labels, 1);
  cd_metrics_register (m, "calldocker_uptime_seconds", CD_METRIC_GAUGE,
                       "Seconds since the daemon started", NULL, 0);
  cd_metrics_register (m, "calldocker_pg_pool_connections", CD_METRIC_GAUGE,
                       "PostgreSQL pool connections by state", NULL, 0);
  cd_metrics_register (m, "calldocker_pg_pool_size", CD_METRIC_GAUGE,
                       "Configured PostgreSQL pool size", NULL, 0);
  cd_metrics_register (m, "calldocker_pg_pool_waiting", CD_METRIC_GAUGE,
                       "Requests waiting for a PostgreSQL connection", NULL, 0);
  cd_metrics_register (m, "calldocker_pg_reconnects_total", CD_METRIC_COUNTER,
                       "PostgreSQL reconnection attempts", NULL, 0);
  cd_metrics_register (m, "calldocker_pg_queries_total", CD_METRIC_COUNTER,
                       "PostgreSQL statements sent", NULL, 0);
  cd_metrics_register (m, "calldocker_pg_query_errors_total", CD_METRIC_COUNTER,
                       "PostgreSQL statements that failed", NULL, 0);
  cd_metrics_register (m, "calldocker_redis_connected", CD_METRIC_GAUGE,
                       "1 while both Redis connections are up", NULL, 0);
  cd_metrics_register (m, "calldocker_redis_reconnects_total", CD_METRIC_COUNTER,
                       "Redis reconnection attempts", NULL, 0);
  cd_metrics_register (m, "calldocker_redis_commands_total", CD_METRIC_COUNTER,
                       "Redis commands sent", NULL, 0);
  cd_metrics_register (m, "calldocker_redis_errors_total", CD_METRIC_COUNTER,
                       "Redis commands that failed", NULL, 0);
  cd_metrics_register (m, "calldocker_calls_active", CD_METRIC_GAUGE,
                       "Calls this daemon carries (queued, ringing or connected)", NULL, 0);
  cd_metrics_register (m, "calldocker_call_pipelines", CD_METRIC_GAUGE,
                       "Call pipelines not yet torn down", NULL, 0);
  cd_metrics_register (m, "calldocker_calls_ended_total", CD_METRIC_COUNTER,
                       "Calls ended, by reason", NULL, 0);
  cd_metrics_register (m, "calldocker_transfers_total", CD_METRIC_COUNTER,
                       "Transfers, by mode and event (requested, completed, cancelled, failed)",
                       NULL, 0);
  cd_metrics_register (m, "calldocker_supervisor_modes_total", CD_METRIC_COUNTER,
                       "Times a supervisor began to listen, whisper or barge", NULL, 0);
  {
    static const double setup_buckets[] = { 0.1, 0.25, 0.5, 1, 2, 5, 10 };
    cd_metrics_register (m, "calldocker_call_setup_seconds", CD_METRIC_HISTOGRAM,
                         "From an agent's accept to audio flowing both ways", setup_buckets,
                         G_N_ELEMENTS (setup_buckets));
  }
  cd_metrics_add_collector (m, collect_store_metrics, self);
}

static void start_migrations (CdDaemon *self);

static void
finish_oneshot (CdDaemon *self, const GError *error)
{
  if (error) {
    g_printerr ("calldockerd: cannot create the super admin: %s\n", error->message);
    self->exit_code = 1;
  } else {
    g_print ("calldockerd: created super admin %s\n", self->superadmin_email);
  }
  cd_daemon_shutdown (self);
}

static void
on_superadmin_inserted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res != NULL && PQntuples (res) == 0)
    error = g_error_new (CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN,
                         "an account with the email %s exists already", self->superadmin_email);
  finish_oneshot (self, error);
}

static void
on_superadmin_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = cd_password_hash_finish (result, &error);
  const char *params[2];
  CdPgScope scope = { NULL, TRUE };

  if (hash == NULL) {
    finish_oneshot (self, error);
    return;
  }
  params[0] = self->superadmin_email;
  params[1] = hash;
  cd_pg_pool_query_scoped_async (
      self->pool, &scope,
      "WITH u AS (INSERT INTO users (email, password_hash, role, display_name)"
      "  VALUES ($1, $2, 'superadmin', 'Super admin')"
      "  ON CONFLICT ((lower(email))) DO NOTHING RETURNING id)"
      " INSERT INTO audit_log (actor_user_id, action, target, client_address)"
      " SELECT id, 'admin.superadmin-created', $1, 'command line' FROM u RETURNING actor_user_id",
      params, 2, NULL, on_superadmin_inserted, g_object_ref (self));
}

static void
create_superadmin (CdDaemon *self)
{
  g_autoptr (GError) error = NULL;

  if (!cd_password_policy_check (self->api.passwords, self->superadmin_password,
                                 self->superadmin_email, &error)) {
    finish_oneshot (self, error);
    return;
  }
  cd_password_hash_async (self->api.passwords, self->superadmin_password, NULL,
                          on_superadmin_hashed, g_object_ref (self));
}

static gboolean
on_migrate_retry (gpointer user_data)
{
  CdDaemon *self = user_data;

  self->migrate_retry_id = 0;
  start_migrations (self);
  return G_SOURCE_REMOVE;
}

static void
announce_ready (CdDaemon *self)
{
  g_print ("calldockerd: ready\n");
  g_signal_emit (self, signals[SIGNAL_READY], 0);
}

static void
on_demo_seeded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *logins = cd_demo_seed_finish (result, &error);

  if (logins == NULL) {
    if (self->state >= STATE_STOPPING)
      return;
    g_printerr ("calldockerd: cannot seed the demo: %s\n", error->message);
    self->exit_code = 1;
    cd_daemon_shutdown (self);
    return;
  }
  g_print ("%s", logins);
  announce_ready (self);
}

static void on_app_role_checked (GObject *source, GAsyncResult *result, gpointer user_data);
static void check_redis (CdDaemon *self);
static void load_blocks (CdDaemon *self);
static gboolean on_blocks_retry (gpointer user_data);
static gboolean on_redis_retry (gpointer user_data);

static void
on_migrated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;
  guint applied = 0;

  if (!cd_pg_migrate_finish (CD_PG_POOL (source), result, &applied, &error)) {
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || self->state >= STATE_STOPPING)
      return;
    if (error->domain == CD_STORE_ERROR && error->code == CD_STORE_ERROR_MIGRATION) {
      /* the files or the database are wrong: retrying will not help */
      g_critical ("cannot migrate the database: %s", error->message);
      g_printerr ("calldockerd: cannot migrate the database: %s\n", error->message);
      cd_daemon_shutdown (self);
      return;
    }
    self->migrate_backoff_ms = self->migrate_backoff_ms == 0 ? self->config->reconnect_min_ms
                                                             : MIN (self->migrate_backoff_ms * 2,
                                                                    self->config->reconnect_max_ms);
    g_info ("waiting for PostgreSQL to apply migrations (%s); retrying in %u ms", error->message,
            self->migrate_backoff_ms);
    self->migrate_retry_id = g_timeout_add (self->migrate_backoff_ms, on_migrate_retry, self);
    return;
  }
  /* the owner's connection is not needed any more; requests run as the app role */
  cd_pg_pool_close (self->migrate_pool);
  cd_pg_pool_start (self->pool);
  g_info ("database ready (%u migration%s applied)", applied, applied == 1 ? "" : "s");
  /* ready once the app role can query: proves the role and the grants */
  cd_pg_pool_query_async (self->pool, "SELECT current_user", NULL, 0, self->cancellable,
                          on_app_role_checked, g_object_ref (self));
}

static void
on_app_role_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (self->state >= STATE_STOPPING)
    return;
  if (res == NULL) {
    if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT) ||
        g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE)) {
      /* PostgreSQL went away meanwhile: try again */
      cd_pg_pool_query_async (self->pool, "SELECT current_user", NULL, 0, self->cancellable,
                              on_app_role_checked, g_object_ref (self));
      return;
    }
    g_printerr ("calldockerd: cannot query as postgres.app_role = %s: %s\n",
                self->config->pg_app_role, error->message);
    self->exit_code = 1;
    cd_daemon_shutdown (self);
    return;
  }
  cd_mailer_start (self->mailer);
  if (self->signal)
    cd_signal_server_recover_recordings (self->signal);
  if (self->retention == NULL && self->api.blobs)
    self->retention = cd_retention_new (self->pool, self->api.blobs, self->metrics,
                                        self->config->blobs_retention_interval_s);
  load_blocks (self);
}

/* Serving starts only once the recent account changes are known: a token
 * that a change ended must not pass because this daemon just started. */
static void
on_blocks_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;

  if (self->state >= STATE_STOPPING)
    return;
  if (!cd_api_load_recent_blocks_finish (result, &error)) {
    g_message ("cannot load recent account changes (%s); retrying", error->message);
    self->redis_retry_id = g_timeout_add (self->config->reconnect_max_ms, on_blocks_retry, self);
    return;
  }
  check_redis (self);
}

static void
load_blocks (CdDaemon *self)
{
  cd_api_load_recent_blocks_async (&self->api, self->cancellable, on_blocks_loaded,
                                   g_object_ref (self));
}

static gboolean
on_blocks_retry (gpointer user_data)
{
  CdDaemon *self = user_data;

  self->redis_retry_id = 0;
  load_blocks (self);
  return G_SOURCE_REMOVE;
}

/* Logins need Redis (rate limits): ready only once it answers too. */
static void
on_redis_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (CdRedisReply) reply = cd_redis_command_finish (CD_REDIS (source), result, NULL);

  if (self->state >= STATE_STOPPING)
    return;
  if (reply == NULL) {
    self->redis_retry_id = g_timeout_add (self->config->reconnect_min_ms, on_redis_retry, self);
    return;
  }
  self->migrated = TRUE;
  self->state = STATE_RUNNING;
  if (self->superadmin_email) {
    create_superadmin (self);
    return;
  }
  if (self->seed_demo) {
    cd_demo_seed_async (self->pool, self->api.passwords, self->config->state_dir, on_demo_seeded,
                        g_object_ref (self));
    return;
  }
  announce_ready (self);
}

static void
check_redis (CdDaemon *self)
{
  cd_redis_commandv_async (self->redis, self->cancellable, on_redis_checked, g_object_ref (self),
                           "PING", NULL);
}

static gboolean
on_redis_retry (gpointer user_data)
{
  CdDaemon *self = user_data;

  self->redis_retry_id = 0;
  check_redis (self);
  return G_SOURCE_REMOVE;
}

static void
start_migrations (CdDaemon *self)
{
  g_autofree char *dir = cd_config_data_path ("sql");

  cd_pg_migrate_async (self->migrate_pool, dir, self->cancellable, on_migrated,
                       g_object_ref (self));
}

static void
on_embedded_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_embedded_stores_start_finish (CD_EMBEDDED_STORES (source), result, &error)) {
    if (self->state >= STATE_STOPPING)
      return;
    g_critical ("cannot start the embedded stores: %s", error->message);
    g_printerr ("calldockerd: cannot start the embedded stores: %s\n", error->message);
    cd_daemon_shutdown (self);
    return;
  }
  if (self->state >= STATE_STOPPING)
    return;
  cd_pg_pool_start (self->migrate_pool);
  cd_redis_start (self->redis);
  start_migrations (self);
}

static gboolean
emit_stopped (gpointer user_data)
{
  g_signal_emit (user_data, signals[SIGNAL_STOPPED], 0);
  return G_SOURCE_REMOVE;
}

static void
on_embedded_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_embedded_stores_stop_finish (CD_EMBEDDED_STORES (source), result, &error))
    g_warning ("stopping the embedded stores: %s", error->message);
  unlock_state_dir (self);
  self->state = STATE_STOPPED;
  g_info ("stopped");
  g_signal_emit (self, signals[SIGNAL_STOPPED], 0);
}

/* Shutdown, steps 4 to 6: close the stores, stop the embedded servers, unlock. */
static void
close_stores (CdDaemon *self)
{
  /* 4. close the stores */
  if (self->migrate_pool)
    cd_pg_pool_close (self->migrate_pool);
  if (self->pool)
    cd_pg_pool_close (self->pool);
  if (self->redis)
    cd_redis_close (self->redis);
  /* 5. stop the embedded servers */
  if (self->embedded) {
    cd_embedded_stores_stop_async (self->embedded, self->config->shutdown_timeout_s,
                                   on_embedded_stopped, g_object_ref (self));
    return;
  }
  unlock_state_dir (self);
  self->state = STATE_STOPPED;
  g_info ("stopped");
  /* from the main loop: the caller may not be running it yet */
  g_idle_add_full (G_PRIORITY_DEFAULT, emit_stopped, g_object_ref (self), g_object_unref);
}

static gboolean
on_flush_timeout (gpointer user_data)
{
  CdDaemon *self = user_data;

  self->flush_timeout_id = 0;
  g_cancellable_cancel (self->flush_cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_calls_flushed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdDaemon) self = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_call_store_flush_finish (CD_CALL_STORE (source), result, &error))
    g_message ("stopping with %u call writes not stored (waited %u s)",
               cd_call_store_get_pending (CD_CALL_STORE (source)),
               self->config->shutdown_timeout_s);
  g_clear_handle_id (&self->flush_timeout_id, g_source_remove);
  g_clear_object (&self->flush_cancellable);
  close_stores (self);
}

static void
cd_daemon_dispose (GObject *object)
{
  CdDaemon *self = CD_DAEMON (object);

  g_clear_handle_id (&self->migrate_retry_id, g_source_remove);
  g_clear_handle_id (&self->redis_retry_id, g_source_remove);
  g_clear_handle_id (&self->flush_timeout_id, g_source_remove);
  g_clear_object (&self->flush_cancellable);
  g_clear_object (&self->signal);
  g_clear_pointer (&self->geoip, cd_geoip_free);
  g_clear_pointer (&self->health, cd_http_health_free);
  g_clear_pointer (&self->api.keys, cd_jwt_keys_free);
  g_clear_pointer (&self->api.passwords, cd_password_policy_free);
  g_clear_pointer (&self->api.public_url, g_free);
  g_clear_pointer (&self->api.blocked, g_hash_table_unref);
  g_clear_pointer (&self->api.stun_urls, g_strfreev);
  g_clear_pointer (&self->api.turn_urls, g_strfreev);
  g_clear_pointer (&self->api.turn_secret, g_free);
  g_clear_object (&self->api.calls);
  g_clear_object (&self->retention);
  g_clear_object (&self->api.blobs);
  g_clear_object (&self->api.keyring);
  if (self->mailer)
    cd_mailer_stop (self->mailer);
  g_clear_object (&self->mailer);
  g_clear_object (&self->http);
  if (self->pool)
    cd_pg_pool_close (self->pool);
  g_clear_object (&self->pool);
  if (self->migrate_pool)
    cd_pg_pool_close (self->migrate_pool);
  g_clear_object (&self->migrate_pool);
  if (self->redis)
    cd_redis_close (self->redis);
  g_clear_object (&self->redis);
  g_clear_object (&self->embedded);
  g_clear_object (&self->metrics);
  g_clear_object (&self->cancellable);
  unlock_state_dir (self);
  G_OBJECT_CLASS (cd_daemon_parent_class)->dispose (object);
}

static void
cd_daemon_finalize (GObject *object)
{
  CdDaemon *self = CD_DAEMON (object);

  cd_config_free (self->config);
  g_free (self->lock_path);
  g_free (self->superadmin_email);
  if (self->superadmin_password)
    memset (self->superadmin_password, 0, strlen (self->superadmin_password));
  g_free (self->superadmin_password);
  G_OBJECT_CLASS (cd_daemon_parent_class)->finalize (object);
}

static void
cd_daemon_class_init (CdDaemonClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = cd_daemon_dispose;
  object_class->finalize = cd_daemon_finalize;

  /**
   * CdDaemon::ready:
   *
   * The stores answer and the database is migrated.
   */
  signals[SIGNAL_READY] = g_signal_new ("ready", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                        NULL, NULL, NULL, G_TYPE_NONE, 0);
  /**
   * CdDaemon::stopped:
   *
   * Shutdown is complete: the process may exit.
   */
  signals[SIGNAL_STOPPED] = g_signal_new ("stopped", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                          0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
cd_daemon_init (CdDaemon *self)
{
  self->lock_fd = -1;
  self->cancellable = g_cancellable_new ();
}

static GStrv
split_urls (const char *list)
{
  g_auto (GStrv) parts = g_strsplit (list, ",", -1);
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();

  for (gsize i = 0; parts[i]; i++) {
    char *url = g_strstrip (parts[i]);
    if (url[0])
      g_strv_builder_add (builder, url);
  }
  return g_strv_builder_end (builder);
}

/* Keys and the password policy: small local files, read once at start-up. */
static gboolean
start_api (CdDaemon *self, GError **error)
{
  CdConfig *config = self->config;
  g_autofree char *key_file = config->auth_key_file[0]
                                  ? g_strdup (config->auth_key_file)
                                  : g_build_filename (config->state_dir, "auth", "jwt-keys", NULL);
  g_autofree char *common = cd_config_data_path ("common-passwords.txt");

  self->api.keys = cd_jwt_keys_new ();
  if (!cd_jwt_keys_load_file (self->api.keys, key_file, config->auth_key_file[0] == '\0', error)) {
    g_prefix_error (error, "auth.key_file: ");
    return FALSE;
  }
  self->api.passwords = cd_password_policy_new ((guint64) config->password_memlimit_kib * 1024,
                                                config->password_opslimit,
                                                config->password_min_length, common, error);
  if (self->api.passwords == NULL)
    return FALSE;
  self->api.pool = self->pool;
  self->api.calls = cd_call_store_new (self->pool);
  self->api.redis = self->redis;
  cd_api_listen_for_blocks (&self->api);
  self->api.settings.access_ttl_s = config->access_ttl_s;
  self->api.settings.widget_token_ttl_s = config->widget_token_ttl_s;
  self->api.settings.widget_limit_per_address = config->widget_limit_per_address;
  self->api.settings.widget_limit_window_s = config->widget_limit_window_s;
  self->api.stun_urls = split_urls (config->stun_urls);
  self->api.turn_urls = split_urls (config->turn_urls);
  self->api.turn_secret = g_strdup (config->turn_secret);
  self->api.turn_ttl_s = config->turn_ttl_s;
  self->api.settings.refresh_ttl_s = config->refresh_ttl_s;
  self->api.settings.login_limit_per_account = config->login_limit_per_account;
  self->api.settings.login_limit_per_address = config->login_limit_per_address;
  self->api.settings.login_limit_window_s = config->login_limit_window_s;
  self->api.settings.max_prompt_bytes = config->ivr_max_prompt_bytes;
  self->api.settings.max_prompt_ms = config->ivr_max_prompt_s * 1000;
  {
    g_autofree char *blobs = config->blobs_dir[0]
                                 ? g_strdup (config->blobs_dir)
                                 : g_build_filename (config->state_dir, "blobs", NULL);
    if (g_str_equal (config->blobs_backend, "s3")) {
      CdS3Config s3_config = {
        .endpoint = config->blobs_s3_endpoint,
        .bucket = config->blobs_s3_bucket,
        .region = config->blobs_s3_region,
        .access_key = config->blobs_s3_access_key,
        .secret_key = config->blobs_s3_secret_key,
        .part_bytes = config->blobs_s3_part_bytes,
        .timeout_s = 60,
      };
      g_autoptr (CdS3) s3 = cd_s3_new (&s3_config, error);

      if (s3 == NULL) {
        g_prefix_error (error, "blobs: ");
        return FALSE;
      }
      self->api.blobs = cd_blob_store_new_s3 (blobs, s3, config->blobs_s3_retry_max_s);
    } else {
      self->api.blobs = cd_blob_store_new_local (blobs);
    }
    cd_blob_store_set_metrics (self->api.blobs, self->metrics);
    g_info ("stored files: %s", cd_blob_store_describe (self->api.blobs));
  }
  {
    g_autofree char *master_file =
        config->blobs_master_key_file[0]
            ? g_strdup (config->blobs_master_key_file)
            : g_build_filename (config->state_dir, "keys", "master.key", NULL);
    guint8 *master = sodium_malloc (CD_SEAL_KEY_BYTES);
    gboolean ok;

    g_assert (master != NULL);
    ok = cd_keyring_load_master (master_file, config->blobs_master_key_file[0] == '\0', master,
                                 error);
    if (ok)
      self->api.keyring = cd_keyring_new (self->pool, master);
    sodium_free (master);
    if (!ok) {
      g_prefix_error (error, "blobs.master_key_file: ");
      return FALSE;
    }
  }
  return TRUE;
}

/**
 * cd_daemon_new:
 * @config: (transfer full): a validated configuration
 */
CdDaemon *
cd_daemon_new (CdConfig *config)
{
  CdDaemon *self = g_object_new (CD_TYPE_DAEMON, NULL);

  self->config = config;
  return self;
}

/**
 * cd_daemon_start:
 *
 * Does the quick, fallible part of start-up (lock, checks, listening) and
 * starts the rest; #CdDaemon::ready follows.
 */
gboolean
cd_daemon_start (CdDaemon *self, GError **error)
{
  CdConfig *config = self->config;
  gboolean embedded_pg = cd_config_uses_embedded_postgres (config);
  gboolean embedded_redis = cd_config_uses_embedded_redis (config);
  g_autofree char *conninfo = NULL;
  g_autoptr (CdRedisAddress) redis_address = NULL;

  g_return_val_if_fail (self->state == STATE_NEW, FALSE);
  self->state = STATE_STARTING;
  self->started_at = g_get_monotonic_time ();

  /* (a one-shot --create-superadmin serves no visitor) */
  if (config->signal_geoip_database[0] != '\0' && self->superadmin_email == NULL) {
    /* mapped once here, before anything starts or is served */
    self->geoip = cd_geoip_open (config->signal_geoip_database, error);
    if (self->geoip == NULL) {
      g_prefix_error (error, "signal.geoip_database: ");
      return FALSE;
    }
    g_info ("visitors' countries from %s (%s)", config->signal_geoip_database,
            cd_geoip_describe (self->geoip));
  }

  if (embedded_pg || embedded_redis) {
    self->embedded = cd_embedded_stores_new (config->state_dir, embedded_pg, embedded_redis);
    if (g_getenv ("CALLDOCKER_TEST_FAST_UNSAFE"))
      cd_embedded_stores_set_fast_unsafe (self->embedded, TRUE);
    if (!cd_embedded_stores_check (self->embedded, error) || !lock_state_dir (self, error))
      return FALSE;
  }
  conninfo = embedded_pg ? cd_embedded_stores_get_pg_conninfo (self->embedded)
                         : g_strdup (config->pg_conninfo);
  redis_address = embedded_redis ? cd_embedded_stores_get_redis_address (self->embedded)
                                 : cd_redis_address_copy (config->redis_address);

  self->metrics = cd_metrics_new ();
  self->pool = cd_pg_pool_new (conninfo, config->pg_pool_size, config->pg_query_timeout_ms,
                               config->reconnect_min_ms, config->reconnect_max_ms);
  cd_pg_pool_set_role (self->pool, config->pg_app_role);
  self->migrate_pool = cd_pg_pool_new (conninfo, 1, config->pg_query_timeout_ms,
                                       config->reconnect_min_ms, config->reconnect_max_ms);
  self->redis = cd_redis_new (redis_address, config->redis_command_timeout_ms,
                              config->reconnect_min_ms, config->reconnect_max_ms);
  self->http = cd_http_server_new (self->metrics, config->max_body_bytes);
  self->health = cd_http_health_new (self->metrics, self->pool, self->redis, readiness, self);
  register_metrics (self);
  if (!start_api (self, error) || !cd_http_health_register (self->health, self->http, error) ||
      !cd_api_register (&self->api, self->http, error))
    return FALSE;
  {
    CdSignalSettings signal_settings = { config->signal_auth_timeout_s,
                                         config->signal_max_message_bytes,
                                         config->signal_max_messages_per_second,
                                         config->signal_keepalive_s };
    g_auto (GStrv) addresses = NULL;

    signal_settings.country_header = config->signal_country_header;
    signal_settings.geoip = self->geoip;
    if (config->media_local_addresses[0] != '\0') {
      addresses = g_strsplit (config->media_local_addresses, ",", -1);
      for (char **a = addresses; *a; a++)
        g_strstrip (*a);
    }
    signal_settings.calls = (CdSwitchboardSettings) {
      .ring_timeout_s = config->calls_ring_timeout_s,
      .max_wait_s = config->calls_max_wait_s,
      .max_missed_offers = config->calls_max_missed_offers,
      .reservation_lease_ms = config->calls_reservation_lease_s * 1000,
      .reoffer_after_s = config->calls_reoffer_after_s,
      .resume_grace_s = config->signal_resume_grace_s,
      .max_calls = config->calls_max_per_daemon,
      .media = {
        .local_addresses = addresses,
        .jitter_latency_ms = config->media_jitter_latency_ms,
        .min_rtp_port = config->media_min_rtp_port,
        .max_rtp_port = config->media_max_rtp_port,
        .ice_timeout_s = config->calls_ice_timeout_s,
        .media_timeout_s = config->calls_media_timeout_s,
        .max_sdp_bytes = 32768,
        .ringback = config->media_ringback != 0,
        .opus_bitrate = config->opus_bitrate,
        .opus_complexity = config->opus_complexity,
        .opus_fec = config->opus_fec != 0,
        .opus_dtx = config->opus_dtx != 0,
      },
    };
    signal_settings.calls.metrics = self->metrics;
    self->signal = cd_signal_server_new (&self->api, &signal_settings);
    cd_signal_server_attach (self->signal, self->http);
  }
  if (!cd_http_server_listen (self->http, config->listen_host, config->listen_port, error)) {
    g_prefix_error (error, "cannot listen on %s:%u: ", config->listen_host, config->listen_port);
    return FALSE;
  }
  if (config->public_url[0]) {
    self->api.public_url = g_strdup (config->public_url);
  } else {
    GSList *uris = cd_http_server_get_uris (self->http);
    self->api.public_url = uris ? g_uri_to_string (uris->data) : g_strdup ("http://localhost/");
    g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  }
  {
    g_autofree char *maildir = g_build_filename (config->state_dir, "mail", NULL);
    self->mailer = cd_mailer_new (self->pool, maildir, config->mail_from);
    if (config->smtp_url[0])
      cd_mailer_set_smtp (self->mailer, config->smtp_url, config->smtp_username,
                          config->smtp_password, g_str_equal (config->smtp_tls, "required"));
    self->api.mailer = self->mailer;
  }

  if (self->embedded) {
    cd_embedded_stores_start_async (self->embedded, self->cancellable, on_embedded_started,
                                    g_object_ref (self));
  } else {
    cd_pg_pool_start (self->migrate_pool);
    cd_redis_start (self->redis);
    start_migrations (self);
  }
  return TRUE;
}

/**
 * cd_daemon_shutdown:
 *
 * Stops in order: stop accepting, end calls, flush, close the stores, stop
 * the embedded servers. #CdDaemon::stopped follows. Idempotent.
 */
void
cd_daemon_shutdown (CdDaemon *self)
{
  if (self->state >= STATE_STOPPING)
    return;
  self->state = STATE_STOPPING;
  g_info ("shutting down");

  /* 1. stop accepting */
  if (self->http)
    cd_http_server_stop (self->http);
  /* 2. end calls: signaling sessions are told and closed */
  if (self->signal)
    cd_signal_server_close_all (self->signal);
  /* 3. flush: abandon start-up work still pending; mails wait in the outbox */
  g_cancellable_cancel (self->cancellable);
  if (self->mailer)
    cd_mailer_stop (self->mailer);
  g_clear_handle_id (&self->migrate_retry_id, g_source_remove);
  g_clear_handle_id (&self->redis_retry_id, g_source_remove);
  /* the writes of the calls that just ended go in while the pool is open,
   * waiting at most shutdown.timeout_s (PostgreSQL may be down) */
  if (self->api.calls && cd_call_store_get_pending (self->api.calls) > 0) {
    self->flush_cancellable = g_cancellable_new ();
    self->flush_timeout_id =
        g_timeout_add_seconds (self->config->shutdown_timeout_s, on_flush_timeout, self);
    cd_call_store_flush_async (self->api.calls, self->flush_cancellable, on_calls_flushed,
                               g_object_ref (self));
    return;
  }
  close_stores (self);
}

/**
 * cd_daemon_set_create_superadmin:
 *
 * Instead of serving: start, migrate, create the super admin, stop.
 */
void
cd_daemon_set_create_superadmin (CdDaemon *self, const char *email, const char *password)
{
  g_free (self->superadmin_email);
  g_free (self->superadmin_password);
  self->superadmin_email = g_strdup (email);
  self->superadmin_password = g_strdup (password);
}

/**
 * cd_daemon_set_seed_demo:
 *
 * Once migrated, create the demo accounts (first start) and print the logins.
 */
void
cd_daemon_set_seed_demo (CdDaemon *self, gboolean seed)
{
  self->seed_demo = seed;
}

int
cd_daemon_get_exit_code (CdDaemon *self)
{
  return self->exit_code;
}

gboolean
cd_daemon_is_ready (CdDaemon *self)
{
  return self->state == STATE_RUNNING;
}

gboolean
cd_daemon_is_stopping (CdDaemon *self)
{
  return self->state >= STATE_STOPPING;
}

/**
 * cd_daemon_get_uris:
 *
 * Returns: (transfer full) (element-type GUri): where the HTTP server listens
 */
GSList *
cd_daemon_get_uris (CdDaemon *self)
{
  return self->http ? cd_http_server_get_uris (self->http) : NULL;
}

/**
 * cd_daemon_list_routes:
 *
 * Registers every route on a server that never listens, and lists them:
 * what docs/api/openapi.yaml must describe.
 *
 * Returns: (transfer full): "METHOD PATTERN" lines, sorted
 */
GStrv
cd_daemon_list_routes (void)
{
  g_autoptr (CdMetrics) metrics = cd_metrics_new ();
  g_autoptr (CdHttpServer) http = cd_http_server_new (metrics, 1024);
  CdHttpHealth *health = cd_http_health_new (metrics, NULL, NULL, NULL, NULL);
  CdApi api = { 0 };
  GStrv routes;

  CdSignalSettings signal_settings = { 10, 65536, 20, 20, { 20, 300, 20, 1, { NULL, 50 } } };
  g_autoptr (CdSignalServer) signal = cd_signal_server_new (&api, &signal_settings);

  if (!cd_http_health_register (health, http, NULL) || !cd_api_register (&api, http, NULL))
    g_error ("the routes do not register");
  cd_signal_server_attach (signal, http);
  routes = cd_http_server_list_routes (http);
  cd_http_health_free (health);
  return routes;
}
