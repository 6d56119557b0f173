/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The shared test harness: servers in temporary folders, the daemon as a
 * child, HTTP on loopback, waiting on the main loop. */

#include "cd-test-harness.h"

#include "cd-json.h"

#include "store/cd-pg-pool.h"
#include "store/cd-redis.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static gboolean
on_wake (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* One main context iteration, waiting at most @max_wait_ms for an event. */
void
cd_test_iterate (guint max_wait_ms)
{
  gboolean woke = FALSE;
  guint id = g_timeout_add (max_wait_ms, on_wake, &woke);

  g_main_context_iteration (NULL, TRUE);
  if (!woke)
    g_source_remove (id);
}

void
cd_test_sleep (guint ms)
{
  gint64 until = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < until)
    cd_test_iterate (MAX (1, (until - g_get_monotonic_time ()) / 1000));
}

void
cd_test_capture (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **slot = user_data;

  g_assert_null (*slot);
  *slot = g_object_ref (result);
}

GAsyncResult *
cd_test_wait_result (GAsyncResult **slot, guint timeout_ms)
{
  WAIT_UNTIL (*slot != NULL, timeout_ms);
  return *slot;
}

char *
cd_test_make_tmp_dir (const char *template_name)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp (template_name, &error);

  g_assert_no_error (error);
  return dir;
}

void
cd_test_make_geoip (const char *path, const char *database_type, const char *const *networks)
{
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "harness", "make-geoip.pl", NULL);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr (GError) error = NULL;
  int status = 0;

  g_ptr_array_add (argv, (gpointer) "perl");
  g_ptr_array_add (argv, script);
  g_ptr_array_add (argv, (gpointer) path);
  g_ptr_array_add (argv, (gpointer) database_type);
  for (guint i = 0; networks[i]; i++)
    g_ptr_array_add (argv, (gpointer) networks[i]);
  g_ptr_array_add (argv, NULL);
  if (!g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                     &status, &error))
    g_error ("cannot run perl for the test GeoIP database: %s", error->message);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("%s failed (is libmaxmind-db-writer-perl installed? tools/run-tests installs it): "
             "%s\n%s",
             script, error->message, err);
}

void
cd_test_remove_tree (const char *path)
{
  g_autoptr (GError) error = NULL;
  const char *argv[] = { "rm", "-rf", "--", path, NULL };
  g_autoptr (GSubprocess) rm = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_NONE, &error);

  g_assert_no_error (error);
  g_subprocess_wait_check (rm, NULL, &error);
  g_assert_no_error (error);
}

/* ---- stores ---- */

static void
on_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  cd_test_capture (source, result, user_data);
}

void
cd_test_stores_wait_postgres (CdTestStores *stores, guint timeout_ms)
{
  g_autoptr (CdPgPool) pool = cd_pg_pool_new (stores->pg_conninfo, 1, 1000, 20, 200);

  cd_pg_pool_start (pool);
  WAIT_UNTIL (cd_pg_pool_is_connected (pool), timeout_ms);
  cd_pg_pool_close (pool);
}

/**
 * cd_test_stores_start:
 *
 * Starts a real PostgreSQL and Redis under a new temporary folder and waits
 * until both answer.
 */
CdTestStores *
cd_test_stores_start (void)
{
  CdTestStores *stores = g_new0 (CdTestStores, 1);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedis) redis = NULL;

  /* as calldockerd does: a write to a server the test killed fails with
   * EPIPE instead of killing the test */
  signal (SIGPIPE, SIG_IGN);
  stores->dir = cd_test_make_tmp_dir ("cd-test-XXXXXX");
  stores->stores = cd_embedded_stores_new (stores->dir, TRUE, TRUE);
  cd_embedded_stores_set_fast_unsafe (stores->stores, TRUE);
  cd_embedded_stores_start_async (stores->stores, NULL, on_started, &result);
  cd_test_wait_result (&result, 60000);
  cd_embedded_stores_start_finish (stores->stores, result, &error);
  g_assert_no_error (error);
  stores->pg_conninfo = cd_embedded_stores_get_pg_conninfo (stores->stores);
  stores->redis_address = cd_embedded_stores_get_redis_address (stores->stores);

  cd_test_stores_wait_postgres (stores, 30000);
  redis = cd_redis_new (stores->redis_address, 1000, 20, 200);
  cd_redis_start (redis);
  WAIT_UNTIL (cd_redis_is_connected (redis), 30000);
  cd_redis_close (redis);
  return stores;
}

void
cd_test_stores_kill_server (CdTestStores *stores, CdEmbeddedServer server, int sig)
{
  GPid pid = cd_embedded_stores_get_pid (stores->stores, server);

  g_assert_cmpint (pid, >, 0);
  g_assert_cmpint (kill (pid, sig), ==, 0);
}

PGresult *
cd_test_pg_scoped (CdPgPool *pool, const char *company, gboolean platform, const char *sql,
                   const char *const *params, int n, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  CdPgScope scope = { company, platform };

  cd_pg_pool_query_scoped_async (pool, &scope, sql, params, n, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_pg_pool_query_finish (pool, result, error);
}

void
cd_test_stores_stop (CdTestStores *stores)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  if (stores == NULL)
    return;
  cd_embedded_stores_stop_async (stores->stores, 10, on_started, &result);
  cd_test_wait_result (&result, 20000);
  cd_embedded_stores_stop_finish (stores->stores, result, &error);
  g_assert_no_error (error);
  g_clear_object (&stores->stores);
  cd_test_remove_tree (stores->dir);
  g_free (stores->dir);
  g_free (stores->pg_conninfo);
  cd_redis_address_free (stores->redis_address);
  g_free (stores);
}

/* ---- the daemon as a child ---- */

const char *
cd_test_daemon_binary (void)
{
  const char *path = g_getenv ("CALLDOCKER_DAEMON");

  if (path == NULL)
    g_error ("CALLDOCKER_DAEMON is not set (run the tests through meson test)");
  return path;
}

static void read_next_line (CdTestDaemon *daemon, gboolean from_stdout);

typedef struct {
  CdTestDaemon *daemon;
  gboolean from_stdout;
} LineReader;

static void
on_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  LineReader *reader = user_data;
  g_autoptr (GError) error = NULL;
  gsize length;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source),
                                                                     result, &length, &error);
  CdTestDaemon *daemon = reader->daemon;
  gboolean from_stdout = reader->from_stdout;

  g_free (reader);
  if (line == NULL)
    return; /* end of stream, or cancelled */
  if (g_test_verbose ())
    g_printerr ("  [daemon %s] %s\n", from_stdout ? "out" : "err", line);
  g_string_append_printf (from_stdout ? daemon->out : daemon->err, "%s\n", line);
  if (from_stdout) {
    const char *serving = strstr (line, "calldockerd: serving ");
    if (serving && daemon->base_url == NULL) {
      const char *start = serving + strlen ("calldockerd: serving ");
      const char *end = strchr (start, ' ');
      daemon->base_url = end ? g_strndup (start, (gsize) (end - start)) : g_strdup (start);
    }
    if (g_str_equal (line, "calldockerd: ready"))
      daemon->ready = TRUE;
  }
  read_next_line (daemon, from_stdout);
}

static void
read_next_line (CdTestDaemon *daemon, gboolean from_stdout)
{
  LineReader *reader = g_new0 (LineReader, 1);

  reader->daemon = daemon;
  reader->from_stdout = from_stdout;
  g_data_input_stream_read_line_async (from_stdout ? daemon->out_stream : daemon->err_stream,
                                       G_PRIORITY_DEFAULT, daemon->cancellable, on_line, reader);
}

static void
on_daemon_exit (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdTestDaemon *daemon = user_data;

  if (!g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL))
    return;
  daemon->exited = TRUE;
  daemon->exit_status = g_subprocess_get_if_exited (daemon->process)
                            ? g_subprocess_get_exit_status (daemon->process)
                            : 128 + g_subprocess_get_term_sig (daemon->process);
}

/* A test that aborts must not leave a daemon (and its servers) behind. */
static void
die_with_test (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/**
 * cd_test_daemon_spawn:
 * @state_dir: the state folder (the embedded servers live there)
 * @extra_args: (nullable): more options; --listen 127.0.0.1:0 is always given first
 */
CdTestDaemon *
cd_test_daemon_spawn (const char *state_dir, const char *const *extra_args,
                      const char *const *extra_env)
{
  CdTestDaemon *daemon = g_new0 (CdTestDaemon, 1);
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;

  g_ptr_array_add (argv, (gpointer) cd_test_daemon_binary ());
  g_ptr_array_add (argv, "--listen");
  g_ptr_array_add (argv, "127.0.0.1:0");
  if (state_dir) {
    g_ptr_array_add (argv, "--state-dir");
    g_ptr_array_add (argv, (gpointer) state_dir);
  }
  for (gsize i = 0; extra_args && extra_args[i]; i++)
    g_ptr_array_add (argv, (gpointer) extra_args[i]);
  g_ptr_array_add (argv, NULL);

  g_subprocess_launcher_setenv (launcher, "CALLDOCKER_TEST_FAST_UNSAFE", "1", TRUE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_test, NULL, NULL);
  for (gsize i = 0; extra_env && extra_env[i]; i++) {
    g_auto (GStrv) kv = g_strsplit (extra_env[i], "=", 2);
    g_subprocess_launcher_setenv (launcher, kv[0], kv[1] ? kv[1] : "", TRUE);
  }
  daemon->state_dir = g_strdup (state_dir);
  daemon->out = g_string_new (NULL);
  daemon->err = g_string_new (NULL);
  daemon->cancellable = g_cancellable_new ();
  daemon->process =
      g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  daemon->out_stream = g_data_input_stream_new (g_subprocess_get_stdout_pipe (daemon->process));
  daemon->err_stream = g_data_input_stream_new (g_subprocess_get_stderr_pipe (daemon->process));
  read_next_line (daemon, TRUE);
  read_next_line (daemon, FALSE);
  g_subprocess_wait_async (daemon->process, daemon->cancellable, on_daemon_exit, daemon);
  return daemon;
}

void
cd_test_daemon_wait_ready (CdTestDaemon *daemon, guint timeout_ms)
{
  WAIT_UNTIL (daemon->ready || daemon->exited, timeout_ms);
  if (!daemon->ready)
    g_error ("calldockerd exited (%d) before it was ready:\n%s%s", daemon->exit_status,
             daemon->out->str, daemon->err->str);
  g_assert_nonnull (daemon->base_url);
}

void
cd_test_daemon_wait_exit (CdTestDaemon *daemon, guint timeout_ms)
{
  WAIT_UNTIL (daemon->exited, timeout_ms);
  /* let the pipes drain so the output is complete */
  cd_test_sleep (50);
}

void
cd_test_daemon_free (CdTestDaemon *daemon)
{
  if (daemon == NULL)
    return;
  if (!daemon->exited) {
    g_subprocess_force_exit (daemon->process);
    WAIT_UNTIL (daemon->exited, 10000);
  }
  g_cancellable_cancel (daemon->cancellable);
  cd_test_sleep (10);
  g_clear_object (&daemon->out_stream);
  g_clear_object (&daemon->err_stream);
  g_clear_object (&daemon->process);
  g_clear_object (&daemon->cancellable);
  g_string_free (daemon->out, TRUE);
  g_string_free (daemon->err, TRUE);
  g_free (daemon->base_url);
  g_free (daemon->state_dir);
  g_free (daemon);
}

/**
 * cd_test_children_of:
 *
 * Returns: (transfer full) (element-type GPid): processes whose parent is @pid
 */
GArray *
cd_test_children_of (GPid pid)
{
  GArray *children = g_array_new (FALSE, FALSE, sizeof (GPid));
  g_autoptr (GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;

  while (proc && (name = g_dir_read_name (proc)) != NULL) {
    g_autofree char *path = NULL;
    g_autofree char *stat = NULL;
    const char *close_paren;
    int ppid = 0;
    char state;

    if (!g_ascii_isdigit (name[0]))
      continue;
    path = g_build_filename ("/proc", name, "stat", NULL);
    if (!g_file_get_contents (path, &stat, NULL, NULL))
      continue;
    close_paren = strrchr (stat, ')');
    if (close_paren && sscanf (close_paren + 2, "%c %d", &state, &ppid) == 2 && ppid == pid) {
      GPid child = (GPid) g_ascii_strtoll (name, NULL, 10);
      g_array_append_val (children, child);
    }
  }
  return children;
}

/* Alive and not a zombie. */
gboolean
cd_test_pid_alive (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *close_paren;

  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  close_paren = strrchr (stat, ')');
  return close_paren && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/* ---- HTTP ---- */

static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  cd_test_capture (source, result, user_data);
}

/**
 * cd_test_http_request:
 * @extra_headers: (nullable): "Name", "value", ..., %NULL
 *
 * Returns: the status (0 when the connection failed)
 */
guint
cd_test_http_request (const char *method, const char *url, const char *content_type,
                      const char *body, gsize body_length, const char *const *extra_headers,
                      char **response_body, GHashTable **response_headers)
{
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout", 30, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (GError) error = NULL;
  SoupMessageHeadersIter iter;
  const char *name, *value;

  g_assert_nonnull (msg);
  if (body) {
    g_autoptr (GBytes) request_body = g_bytes_new (body, body_length);
    soup_message_set_request_body_from_bytes (msg, content_type, request_body);
  }
  for (gsize i = 0; extra_headers && extra_headers[i]; i += 2)
    soup_message_headers_replace (soup_message_get_request_headers (msg), extra_headers[i],
                                  extra_headers[i + 1]);
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, on_sent, &result);
  cd_test_wait_result (&result, 30000);
  bytes = soup_session_send_and_read_finish (session, result, &error);
  if (bytes == NULL) {
    if (g_test_verbose ())
      g_printerr ("  HTTP %s %s failed: %s\n", method, url, error->message);
    return 0;
  }
  if (response_body)
    *response_body = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  if (response_headers) {
    *response_headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    soup_message_headers_iter_init (&iter, soup_message_get_response_headers (msg));
    while (soup_message_headers_iter_next (&iter, &name, &value))
      g_hash_table_insert (*response_headers, g_ascii_strdown (name, -1), g_strdup (value));
  }
  return soup_message_get_status (msg);
}

guint
cd_test_http_get (const char *url, char **body, char **content_type)
{
  g_autoptr (GHashTable) headers = NULL;
  guint status = cd_test_http_request ("GET", url, NULL, NULL, 0, NULL, body, &headers);

  if (content_type)
    *content_type =
        status && headers ? g_strdup (g_hash_table_lookup (headers, "content-type")) : NULL;
  return status;
}

/**
 * cd_test_http_raw:
 * @address: host:port
 * @request: the exact bytes to send
 *
 * Returns: (transfer full): everything the server sent until it closed, or
 *   until @timeout_ms passed
 */
char *
cd_test_http_raw (const char *address, const char *request, gsize length, guint timeout_ms)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GSocketConnection) connection = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) response = g_string_new (NULL);
  GOutputStream *out;
  GInputStream *in;
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  g_socket_client_connect_to_host_async (client, address, 80, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, timeout_ms);
  connection = g_socket_client_connect_to_host_finish (client, result, &error);
  g_assert_no_error (error);
  g_clear_object (&result);

  out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  g_output_stream_write_all_async (out, request, length, G_PRIORITY_DEFAULT, NULL, cd_test_capture,
                                   &result);
  cd_test_wait_result (&result, timeout_ms);
  g_output_stream_write_all_finish (out, result, NULL, &error);
  g_clear_error (&error); /* the server may close early: read what it said */
  g_clear_object (&result);

  while (g_get_monotonic_time () < deadline) {
    char buf[4096];
    gssize n;
    g_input_stream_read_async (in, buf, sizeof buf, G_PRIORITY_DEFAULT, NULL, cd_test_capture,
                               &result);
    WAIT_UNTIL (result != NULL || g_get_monotonic_time () > deadline, timeout_ms + 1000);
    if (result == NULL)
      break;
    n = g_input_stream_read_finish (in, result, &error);
    g_clear_object (&result);
    if (n <= 0)
      break;
    g_string_append_len (response, buf, n);
    /* a complete response to a single request: stop at its end */
    if (strstr (response->str, "\r\n\r\n") && strstr (response->str, "Content-Length: ")) {
      const char *cl = strstr (response->str, "Content-Length: ") + 16;
      const char *body = strstr (response->str, "\r\n\r\n") + 4;
      if ((gsize) (response->str + response->len - body) >= strtoul (cl, NULL, 10))
        break;
    }
  }
  return g_string_free (g_steal_pointer (&response), FALSE);
}

/* Each line is a comment (# HELP / # TYPE) or `name{labels} value`. */
void
cd_test_assert_prometheus_text (const char *text)
{
  g_autoptr (GRegex) sample = g_regex_new (
      "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\\n]|\\\\.)*\",?)*\\})? "
      "(-?[0-9.e+-]+|\\+Inf|-Inf|NaN)$",
      0, 0, NULL);
  g_autoptr (GRegex) comment =
      g_regex_new ("^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
                   "(counter|gauge|histogram))$",
                   0, 0, NULL);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  g_assert_true (g_str_has_suffix (text, "\n"));
  for (gsize i = 0; lines[i] && lines[i][0]; i++) {
    if (!g_regex_match (sample, lines[i], 0, NULL) && !g_regex_match (comment, lines[i], 0, NULL))
      g_error ("line %zu is not in the exposition format: %s", i, lines[i]);
  }
}

/* ---- an SMTP sink: enough of RFC 5321 for one client at a time ---- */

typedef struct {
  CdTestSmtp *smtp;
  GSocketConnection *connection;
  GDataInputStream *in;
  GString *envelope;
  GString *data;
  gboolean in_data;
} SmtpSession;

static void smtp_read_line (SmtpSession *session);

static void
smtp_reply (SmtpSession *session, const char *text)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (session->connection));

  g_output_stream_write_all (out, text, strlen (text), NULL, NULL, NULL);
}

static void
smtp_session_free (SmtpSession *session)
{
  g_io_stream_close (G_IO_STREAM (session->connection), NULL, NULL);
  g_object_unref (session->connection);
  g_object_unref (session->in);
  g_string_free (session->envelope, TRUE);
  g_string_free (session->data, TRUE);
  g_free (session);
}

static void
on_smtp_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmtpSession *session = user_data;
  gsize length;
  g_autofree char *line =
      g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, &length, NULL);

  if (line == NULL) {
    smtp_session_free (session);
    return;
  }
  if (session->in_data) {
    if (g_str_equal (line, ".")) {
      session->in_data = FALSE;
      g_ptr_array_add (session->smtp->messages,
                       g_strdup_printf ("%s\n%s", session->envelope->str, session->data->str));
      g_string_truncate (session->envelope, 0);
      g_string_truncate (session->data, 0);
      smtp_reply (session, "250 2.0.0 queued\r\n");
    } else {
      g_string_append_printf (session->data, "%s\n", line[0] == '.' ? line + 1 : line);
    }
  } else if (g_ascii_strncasecmp (line, "EHLO", 4) == 0 ||
             g_ascii_strncasecmp (line, "HELO", 4) == 0) {
    smtp_reply (session, "250-sink\r\n250 8BITMIME\r\n");
  } else if (g_ascii_strncasecmp (line, "MAIL FROM:", 10) == 0 ||
             g_ascii_strncasecmp (line, "RCPT TO:", 8) == 0) {
    g_string_append_printf (session->envelope, "%s\n", line);
    smtp_reply (session, "250 2.1.0 ok\r\n");
  } else if (g_ascii_strcasecmp (line, "DATA") == 0) {
    session->in_data = TRUE;
    smtp_reply (session, "354 end with <CRLF>.<CRLF>\r\n");
  } else if (g_ascii_strcasecmp (line, "QUIT") == 0) {
    smtp_reply (session, "221 2.0.0 bye\r\n");
    smtp_session_free (session);
    return;
  } else if (g_ascii_strcasecmp (line, "RSET") == 0 || g_ascii_strcasecmp (line, "NOOP") == 0) {
    smtp_reply (session, "250 ok\r\n");
  } else {
    smtp_reply (session, "502 5.5.2 not here\r\n");
  }
  smtp_read_line (session);
}

static void
smtp_read_line (SmtpSession *session)
{
  g_data_input_stream_read_line_async (session->in, G_PRIORITY_DEFAULT, NULL, on_smtp_line,
                                       session);
}

static gboolean
on_smtp_incoming (GSocketService *service, GSocketConnection *connection, GObject *source,
                  gpointer user_data)
{
  SmtpSession *session = g_new0 (SmtpSession, 1);

  session->smtp = user_data;
  session->connection = g_object_ref (connection);
  session->in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  g_data_input_stream_set_newline_type (session->in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
  session->envelope = g_string_new (NULL);
  session->data = g_string_new (NULL);
  smtp_reply (session, "220 sink ESMTP\r\n");
  smtp_read_line (session);
  return TRUE;
}

CdTestSmtp *
cd_test_smtp_start (void)
{
  CdTestSmtp *smtp = g_new0 (CdTestSmtp, 1);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GError) error = NULL;

  smtp->messages = g_ptr_array_new_with_free_func (g_free);
  smtp->service = g_socket_service_new ();
  g_socket_listener_add_address (G_SOCKET_LISTENER (smtp->service), address, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
  g_assert_no_error (error);
  smtp->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_signal_connect (smtp->service, "incoming", G_CALLBACK (on_smtp_incoming), smtp);
  g_socket_service_start (smtp->service);
  return smtp;
}

void
cd_test_smtp_stop (CdTestSmtp *smtp)
{
  g_socket_service_stop (smtp->service);
  g_socket_listener_close (G_SOCKET_LISTENER (smtp->service));
  g_object_unref (smtp->service);
  g_ptr_array_unref (smtp->messages);
  g_free (smtp);
}

static void
on_peer_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdTestPeer *p = user_data;
  g_autoptr (GError) error = NULL;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &p->out, &p->err, &error);
  g_assert_no_error (error);
  p->done = TRUE;
}

/**
 * cd_test_peer_start_va:
 * @g_debug: (nullable): G_DEBUG for the peer, NULL to keep the test's
 * @args: more arguments, NULL-terminated
 */
CdTestPeer *
cd_test_peer_start_va (const char *name, const char *server, const char *g_debug, va_list args)
{
  g_autoptr (GPtrArray) more = g_ptr_array_new ();
  const char *arg;

  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (more, (char *) arg);
  g_ptr_array_add (more, NULL);
  return cd_test_peer_start_argv (name, server, g_debug, (const char *const *) more->pdata);
}

/**
 * cd_test_peer_start_argv:
 * @args: more arguments, NULL-terminated
 *
 * cd_test_peer_start_va() for arguments gathered in an array.
 */
CdTestPeer *
cd_test_peer_start_argv (const char *name, const char *server, const char *g_debug,
                         const char *const *args)
{
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *dir = g_path_get_dirname (cd_test_daemon_binary ());
  g_autoptr (GError) error = NULL;
  CdTestPeer *p = g_new0 (CdTestPeer, 1);

  g_ptr_array_add (argv, g_build_filename (dir, name, NULL));
  g_ptr_array_add (argv, g_strdup ("--server"));
  g_ptr_array_add (argv, g_strdup (server));
  g_ptr_array_add (argv, g_strdup ("--local-address"));
  g_ptr_array_add (argv, g_strdup ("127.0.0.1"));
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  g_ptr_array_add (argv, NULL);
  if (g_debug)
    g_subprocess_launcher_setenv (launcher, "G_DEBUG", g_debug, TRUE);
  p->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (p->process, NULL, NULL, on_peer_done, p);
  return p;
}

/* Waits for the peer to end; whether it exited 0. */
gboolean
cd_test_peer_wait (CdTestPeer *p, guint timeout_ms)
{
  WAIT_UNTIL (p->done, timeout_ms);
  return g_subprocess_get_if_exited (p->process) && g_subprocess_get_exit_status (p->process) == 0;
}

/**
 * cd_test_peer_finish:
 * @good: (out) (optional): whether the peer exited 0
 *
 * Waits for the peer, frees it and returns its JSON report. Its log and
 * report go to stderr, which the test runner shows when a test fails.
 */
JsonObject *
cd_test_peer_finish (CdTestPeer *p, guint timeout_ms, gboolean *good)
{
  gboolean exited_0 = cd_test_peer_wait (p, timeout_ms);
  JsonObject *report;

  g_printerr ("peer report: %s\n%s", p->out, p->err);
  report = cd_json_parse_object (p->out, strlen (p->out), NULL, NULL);
  g_assert_nonnull (report);
  if (good)
    *good = exited_0;
  cd_test_peer_free (p);
  return report;
}

void
cd_test_peer_free (CdTestPeer *p)
{
  g_object_unref (p->process);
  g_free (p->out);
  g_free (p->err);
  g_free (p);
}

JsonArray *
cd_test_report_per_second (JsonObject *call, double hz)
{
  JsonArray *tones = json_object_get_array_member (call, "tones");

  for (guint i = 0; tones && i < json_array_get_length (tones); i++) {
    JsonObject *t = json_array_get_object_element (tones, i);
    if (json_object_get_double_member (t, "hz") == hz)
      return json_object_get_array_member (t, "per_second");
  }
  g_error ("the report has no count of %g Hz", hz);
}

int
cd_test_report_first_second (JsonObject *call, double hz)
{
  JsonArray *counts = cd_test_report_per_second (call, hz);

  for (guint i = 0; i < json_array_get_length (counts); i++)
    if (json_array_get_int_element (counts, i) > 0)
      return (int) i;
  return -1;
}

JsonObject *
cd_test_get_call (const char *base_url, const char *company, const char *token, const char *call_id)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", base_url, company, call_id);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;

  g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL), ==,
                    200);
  return cd_json_parse_object (body, strlen (body), NULL, NULL);
}
