/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The test harness: real PostgreSQL and Redis in a temporary folder, the
 * daemon as a child process, and helpers to wait on the main loop. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "cd-config.h"
#include "store/cd-embedded-stores.h"
#include "store/cd-pg-pool.h"

G_BEGIN_DECLS

/* Iterates the default main context until @cond holds or @timeout_ms passes;
 * fails the test on timeout. */
#define WAIT_UNTIL(cond, timeout_ms)                                                 \
  G_STMT_START                                                                       \
  {                                                                                  \
    gint64 _deadline = g_get_monotonic_time () + (gint64) (timeout_ms) *1000;        \
    while (!(cond)) {                                                                \
      if (g_get_monotonic_time () > _deadline)                                       \
        g_error ("%s:%d: timed out after %d ms waiting for: %s", __FILE__, __LINE__, \
                 (int) (timeout_ms), #cond);                                         \
      cd_test_iterate (50);                                                          \
    }                                                                                \
  }                                                                                  \
  G_STMT_END

void cd_test_iterate (guint max_wait_ms);
void cd_test_sleep (guint ms);

/* Captures an async result: pass &slot as user data with cd_test_capture. */
void cd_test_capture (GObject *source, GAsyncResult *result, gpointer user_data);
GAsyncResult *cd_test_wait_result (GAsyncResult **slot, guint timeout_ms);

char *cd_test_make_tmp_dir (const char *template_name);
void cd_test_remove_tree (const char *path);

/* Writes a MaxMind DB of @database_type at @path (tests/harness/
 * make-geoip.pl), @networks "NETWORK=CC" (e.g. "127.0.0.0/8=FR"). */
void cd_test_make_geoip (const char *path, const char *database_type, const char *const *networks);

typedef struct {
  char *dir;
  CdEmbeddedStores *stores;
  char *pg_conninfo;
  CdRedisAddress *redis_address;
} CdTestStores;

CdTestStores *cd_test_stores_start (void);
void cd_test_stores_stop (CdTestStores *stores);
/* A statement on @pool as @company (or the platform), waited for. */
PGresult *cd_test_pg_scoped (CdPgPool *pool, const char *company, gboolean platform,
                             const char *sql, const char *const *params, int n, GError **error);
void cd_test_stores_kill_server (CdTestStores *stores, CdEmbeddedServer server, int sig);
void cd_test_stores_wait_postgres (CdTestStores *stores, guint timeout_ms);

/* calldockerd in a child process */
typedef struct {
  GSubprocess *process;
  char *state_dir;
  char *base_url; /* http://127.0.0.1:PORT/ once known */
  gboolean ready;
  gboolean exited;
  int exit_status;
  GString *out; /* everything printed on stdout */
  GString *err; /* and on stderr */
  GDataInputStream *out_stream;
  GDataInputStream *err_stream;
  GCancellable *cancellable;
} CdTestDaemon;

const char *cd_test_daemon_binary (void);
CdTestDaemon *cd_test_daemon_spawn (const char *state_dir, const char *const *extra_args,
                                    const char *const *extra_env);
void cd_test_daemon_wait_ready (CdTestDaemon *daemon, guint timeout_ms);
void cd_test_daemon_wait_exit (CdTestDaemon *daemon, guint timeout_ms);
void cd_test_daemon_free (CdTestDaemon *daemon);
GArray *cd_test_children_of (GPid pid);
gboolean cd_test_pid_alive (GPid pid);

/* HTTP on the default main context */
guint cd_test_http_get (const char *url, char **body, char **content_type);
guint cd_test_http_request (const char *method, const char *url, const char *content_type,
                            const char *body, gsize body_length, const char *const *extra_headers,
                            char **response_body, GHashTable **response_headers);

typedef struct {
  GSocketService *service;
  guint16 port;
  GPtrArray *messages; /* "MAIL FROM:..\nRCPT TO:..\n\n" then the message */
} CdTestSmtp;

CdTestSmtp *cd_test_smtp_start (void);
void cd_test_smtp_stop (CdTestSmtp *smtp);

void cd_test_assert_prometheus_text (const char *text);
char *cd_test_http_raw (const char *address, const char *request, gsize length, guint timeout_ms);

/* calldocker-visitor / calldocker-agent (beside the daemon's binary) in a
 * child process, on the daemon at @server with ICE on 127.0.0.1 */
typedef struct {
  GSubprocess *process;
  char *out; /* its stdout (the JSON report) and stderr, once done */
  char *err;
  gboolean done;
} CdTestPeer;

CdTestPeer *cd_test_peer_start_va (const char *name, const char *server, const char *g_debug,
                                   va_list args);
CdTestPeer *cd_test_peer_start_argv (const char *name, const char *server, const char *g_debug,
                                     const char *const *args);
gboolean cd_test_peer_wait (CdTestPeer *peer, guint timeout_ms);
/* Waits for the peer, shows its log on stderr, frees it; its report, and
 * in @good whether it exited 0. */
JsonObject *cd_test_peer_finish (CdTestPeer *peer, guint timeout_ms, gboolean *good);
void cd_test_peer_free (CdTestPeer *peer);
/* A peer report's call: the 50 ms windows of @hz it heard, second by
 * second from the call's start (--listen-for, --press-on) */
JsonArray *cd_test_report_per_second (JsonObject *call, double hz);
/* the first second @hz was heard in, -1 if never */
int cd_test_report_first_second (JsonObject *call, double hz);
/* GET /api/v1/companies/@company/calls/@call_id as @token: the call, with
 * its events */
JsonObject *cd_test_get_call (const char *base_url, const char *company, const char *token,
                              const char *call_id);

G_END_DECLS
