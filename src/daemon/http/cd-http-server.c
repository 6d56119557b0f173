/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdHttpServer: wraps SoupServer. The early handler assigns the request id
 * and refuses oversized bodies before they are read; the handler routes. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-http-server.h"

#include "cd-http-problem.h"

#include <string.h>

#define DATA_REQUEST_ID "cd-request-id"
#define DATA_STARTED    "cd-started"
#define DATA_ROUTE      "cd-route"

/* Upper bounds of the latency histogram, in seconds. */
static const double latency_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10 };

struct _CdHttpServer {
  GObject parent_instance;

  SoupServer *soup;
  CdHttpRouter *router;
  CdMetrics *metrics;
  guint64 max_body_bytes;
  GHashTable *body_limits; /* "METHOD pattern" -> guint64*: a route's own limit */
  guint in_flight;
  gboolean stopped;
};

G_DEFINE_FINAL_TYPE (CdHttpServer, cd_http_server, G_TYPE_OBJECT)

static gboolean
request_id_is_acceptable (const char *id)
{
  gsize n = strlen (id);

  if (n == 0 || n > 64)
    return FALSE;
  for (const char *p = id; *p; p++) {
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  }
  return TRUE;
}

static char *
new_request_id (void)
{
  return g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());
}

/* Methods as metric labels: known ones, the rest "other", so clients cannot
 * add series or break the exposition format. */
static const char *
method_label (const char *method)
{
  static const char *known[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL };

  for (gsize i = 0; method && known[i]; i++) {
    if (g_str_equal (method, known[i]))
      return known[i];
  }
  return "other";
}

static const char *
message_request_id (SoupServerMessage *msg)
{
  return g_object_get_data (G_OBJECT (msg), DATA_REQUEST_ID);
}

/* Counted once the request line and headers are in: libsoup also starts a
 * message for a connection that never sends anything. */
static void
mark_started (CdHttpServer *self, SoupServerMessage *msg)
{
  gint64 *started = g_new (gint64, 1);

  *started = g_get_monotonic_time ();
  g_object_set_data_full (G_OBJECT (msg), DATA_STARTED, started, g_free);
  self->in_flight++;
}

static void
finish_request (CdHttpServer *self, SoupServerMessage *msg, gboolean aborted)
{
  gint64 *started = g_object_get_data (G_OBJECT (msg), DATA_STARTED);
  const char *route = g_object_get_data (G_OBJECT (msg), DATA_ROUTE);
  const char *request_id = message_request_id (msg);
  const char *method = soup_server_message_get_method (msg);
  guint status = soup_server_message_get_status (msg);
  double seconds = started ? (g_get_monotonic_time () - *started) / 1e6 : 0;
  g_autofree char *route_label = cd_metrics_escape_label (route ? route : "unmatched");
  g_autofree char *labels = NULL;
  g_autofree char *status_text = g_strdup_printf ("%u", status);
  g_autofree char *duration = g_strdup_printf ("%.2f", seconds * 1000);
  GUri *uri = soup_server_message_get_uri (msg);

  if (started == NULL)
    return; /* counted once */
  g_object_set_data (G_OBJECT (msg), DATA_STARTED, NULL);
  self->in_flight--;

  labels = g_strdup_printf ("route=\"%s\",method=\"%s\",status=\"%u\"", route_label,
                            method_label (method), status);
  cd_metrics_add (self->metrics, "calldocker_http_requests_total", labels, 1);
  g_free (labels);
  labels = g_strdup_printf ("route=\"%s\"", route_label);
  cd_metrics_observe (self->metrics, "calldocker_http_request_duration_seconds", labels, seconds);

  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "REQUEST_ID", request_id ? request_id : "-",
                    "HTTP_METHOD", method ? method : "?", "HTTP_PATH",
                    uri ? g_uri_get_path (uri) : "?", "HTTP_STATUS", status_text, "DURATION_MS",
                    duration, "MESSAGE", "%s %s %u%s", method ? method : "?",
                    uri ? g_uri_get_path (uri) : "?", status, aborted ? " (aborted)" : "");
}

static void
on_request_finished (SoupServer *soup, SoupServerMessage *msg, gpointer user_data)
{
  finish_request (user_data, msg, FALSE);
}

static void
on_request_aborted (SoupServer *soup, SoupServerMessage *msg, gpointer user_data)
{
  finish_request (user_data, msg, TRUE);
}

/* After a refusal, what the client still sends is read and dropped, up to a
 * bound, so that it can finish writing and read the answer (a lingering
 * close); then the connection closes. */
#define DRAIN_MAX_BYTES   (16 * 1024 * 1024)
#define DRAIN_MAX_SECONDS 5

typedef struct {
  GIOStream *stream;
  char *text;
  char buffer[16384];
  gsize drained;
  GCancellable *cancellable;
  guint timeout_id;
} Refusal;

static void
refusal_close (Refusal *refusal)
{
  g_clear_handle_id (&refusal->timeout_id, g_source_remove);
  g_io_stream_close_async (refusal->stream, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_object_unref (refusal->stream);
  g_object_unref (refusal->cancellable);
  g_free (refusal->text);
  g_free (refusal);
}

static gboolean
on_drain_timeout (gpointer user_data)
{
  Refusal *refusal = user_data;

  refusal->timeout_id = 0;
  g_cancellable_cancel (refusal->cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_drained (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Refusal *refusal = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n <= 0 || (refusal->drained += (gsize) n) > DRAIN_MAX_BYTES) {
    refusal_close (refusal);
    return;
  }
  g_input_stream_read_async (G_INPUT_STREAM (source), refusal->buffer, sizeof refusal->buffer,
                             G_PRIORITY_LOW, refusal->cancellable, on_drained, refusal);
}

static void
on_refusal_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Refusal *refusal = user_data;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL)) {
    refusal_close (refusal);
    return;
  }
  refusal->timeout_id = g_timeout_add_seconds (DRAIN_MAX_SECONDS, on_drain_timeout, refusal);
  g_input_stream_read_async (g_io_stream_get_input_stream (refusal->stream), refusal->buffer,
                             sizeof refusal->buffer, G_PRIORITY_LOW, refusal->cancellable,
                             on_drained, refusal);
}

/* Answers before the body is read and closes the connection: libsoup would
 * otherwise read (and wait for) the whole announced body first. A client that
 * sent "Expect: 100-continue" gets the ordinary early answer. */
static void
refuse_unread (CdHttpServer *self, SoupServerMessage *msg, const char *request_id, CdHttpError code,
               const char *detail)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  g_autoptr (GError) error = g_error_new_literal (CD_HTTP_ERROR, code, detail);
  g_autoptr (GBytes) body = NULL;
  g_autofree char *labels = NULL;
  Refusal *refusal;
  GString *response;
  guint status;
  gsize length;

  cd_http_respond_problem (msg, request_id, error);
  if (soup_message_headers_get_expectations (headers) & SOUP_EXPECTATION_CONTINUE)
    return;

  status = soup_server_message_get_status (msg);
  body = soup_message_body_flatten (soup_server_message_get_response_body (msg));
  response = g_string_new (NULL);
  g_string_append_printf (response,
                          "HTTP/1.1 %u %s\r\nServer: calldockerd\r\n"
                          "Content-Type: application/problem+json\r\n"
                          "Content-Length: %" G_GSIZE_FORMAT "\r\nX-Request-Id: %s\r\n"
                          "Connection: close\r\n\r\n",
                          status, soup_status_get_phrase (status), g_bytes_get_size (body),
                          request_id);
  g_string_append_len (response, g_bytes_get_data (body, NULL), (gssize) g_bytes_get_size (body));

  labels = g_strdup_printf ("route=\"unmatched\",method=\"%s\",status=\"%u\"",
                            method_label (soup_server_message_get_method (msg)), status);
  cd_metrics_add (self->metrics, "calldocker_http_requests_total", labels, 1);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "REQUEST_ID", request_id, "HTTP_STATUS",
                    "refused", "MESSAGE", "%s %s %u (refused before the body: %s)",
                    soup_server_message_get_method (msg),
                    g_uri_get_path (soup_server_message_get_uri (msg)), status, detail);
  g_object_set_data (G_OBJECT (msg), DATA_STARTED, NULL);
  self->in_flight--;

  refusal = g_new0 (Refusal, 1);
  refusal->cancellable = g_cancellable_new ();
  refusal->stream = soup_server_message_steal_connection (msg);
  length = response->len;
  refusal->text = g_string_free (response, FALSE);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (refusal->stream), refusal->text,
                                   length, G_PRIORITY_DEFAULT, NULL, on_refusal_written, refusal);
}

/* The body limit of the route @msg goes to: its own, or the server's. */
static guint64
body_limit (CdHttpServer *self, SoupServerMessage *msg)
{
  const char *method = soup_server_message_get_method (msg);
  const char *pattern = NULL;
  CdHttpHandler handler;
  gpointer data;
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  g_autofree char *key = NULL;
  const guint64 *limit;

  if (g_hash_table_size (self->body_limits) == 0 ||
      cd_http_router_match (self->router, method,
                            g_uri_get_path (soup_server_message_get_uri (msg)), &pattern, &handler,
                            &data, &params, &allowed) != CD_ROUTE_FOUND)
    return self->max_body_bytes;
  key = g_strdup_printf ("%s %s", method, pattern);
  limit = g_hash_table_lookup (self->body_limits, key);
  return limit ? *limit : self->max_body_bytes;
}

/* Runs once the headers are in: the body has not been read yet. */
static void
on_early (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
          gpointer user_data)
{
  CdHttpServer *self = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char *incoming = soup_message_headers_get_one (headers, "X-Request-Id");
  char *request_id =
      incoming && request_id_is_acceptable (incoming) ? g_strdup (incoming) : new_request_id ();
  SoupEncoding encoding = soup_message_headers_get_encoding (headers);

  mark_started (self, msg);
  g_object_set_data_full (G_OBJECT (msg), DATA_REQUEST_ID, request_id, g_free);
  {
    SoupMessageHeaders *out = soup_server_message_get_response_headers (msg);
    soup_message_headers_replace (out, "X-Request-Id", request_id);
    /* answers are data, never pages to frame, sniff or cache */
    soup_message_headers_replace (out, "X-Content-Type-Options", "nosniff");
    soup_message_headers_replace (out, "X-Frame-Options", "DENY");
    soup_message_headers_replace (out, "Referrer-Policy", "no-referrer");
    soup_message_headers_replace (out, "Content-Security-Policy",
                                  "default-src 'none'; frame-ancestors 'none'");
    /* libsoup 3.2 (Debian 12) never notices a client closing a kept-alive
     * connection: each one stays open (CLOSE_WAIT) for good, one file
     * descriptor per connection. Until a libsoup with the fix (3.3+), every
     * answer closes its connection; WebSocket upgrades keep theirs. */
    if (!soup_message_headers_header_contains (headers, "Upgrade", "websocket"))
      soup_message_headers_replace (out, "Connection", "close");
  }

  if (encoding == SOUP_ENCODING_CHUNKED || encoding == SOUP_ENCODING_EOF) {
    refuse_unread (self, msg, request_id, CD_HTTP_ERROR_LENGTH_REQUIRED,
                   "send the request body with a Content-Length header");
    return;
  }
  if (encoding == SOUP_ENCODING_CONTENT_LENGTH &&
      (guint64) soup_message_headers_get_content_length (headers) > body_limit (self, msg)) {
    guint64 limit = body_limit (self, msg);
    g_autofree char *detail =
        g_strdup_printf ("the body has %" G_GINT64_FORMAT " bytes; the limit is %" G_GUINT64_FORMAT,
                         soup_message_headers_get_content_length (headers), limit);
    refuse_unread (self, msg, request_id, CD_HTTP_ERROR_PAYLOAD_TOO_LARGE, detail);
  }
}

static void
on_request (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
            gpointer user_data)
{
  CdHttpServer *self = user_data;
  const char *request_id = message_request_id (msg);
  const char *method = soup_server_message_get_method (msg);
  const char *pattern = NULL;
  CdHttpHandler handler = NULL;
  gpointer handler_data = NULL;
  g_autoptr (GHashTable) params = NULL;
  g_autofree char *allowed = NULL;
  CdHttpRequest request;

  /* the early handler may have answered already */
  if (soup_server_message_get_status (msg) != 0)
    return;

  if (self->stopped) {
    cd_http_respond_error (msg, request_id, CD_HTTP_ERROR_UNAVAILABLE, "the server is stopping");
    return;
  }

  switch (cd_http_router_match (self->router, method, path, &pattern, &handler, &handler_data,
                                &params, &allowed)) {
  case CD_ROUTE_FOUND:
    break;
  case CD_ROUTE_NO_METHOD:
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", allowed);
    cd_http_respond_error (msg, request_id, CD_HTTP_ERROR_METHOD_NOT_ALLOWED,
                           "%s is not allowed here; allowed: %s", method, allowed);
    return;
  case CD_ROUTE_NO_PATH:
  default:
    cd_http_respond_error (msg, request_id, CD_HTTP_ERROR_NOT_FOUND, "nothing is served at %s",
                           path);
    return;
  }

  g_object_set_data_full (G_OBJECT (msg), DATA_ROUTE, g_strdup (pattern), g_free);
  request.msg = msg;
  request.request_id = request_id;
  request.route = pattern;
  request.params = params;
  request.query = query;
  handler (&request, handler_data);
}

static void
cd_http_server_dispose (GObject *object)
{
  CdHttpServer *self = CD_HTTP_SERVER (object);

  if (self->soup) {
    g_signal_handlers_disconnect_by_data (self->soup, self);
    soup_server_disconnect (self->soup);
    g_clear_object (&self->soup);
  }
  g_clear_object (&self->metrics);
  G_OBJECT_CLASS (cd_http_server_parent_class)->dispose (object);
}

static void
cd_http_server_finalize (GObject *object)
{
  CdHttpServer *self = CD_HTTP_SERVER (object);

  cd_http_router_free (self->router);
  g_hash_table_unref (self->body_limits);
  G_OBJECT_CLASS (cd_http_server_parent_class)->finalize (object);
}

static void
cd_http_server_class_init (CdHttpServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = cd_http_server_dispose;
  object_class->finalize = cd_http_server_finalize;
}

static void
cd_http_server_init (CdHttpServer *self)
{
  self->router = cd_http_router_new ();
  self->body_limits = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

/**
 * cd_http_server_new:
 * @metrics: where request counts and latencies go
 * @max_body_bytes: larger request bodies get 413 before they are read
 *
 * Returns: (transfer full): a server, not yet listening
 */
CdHttpServer *
cd_http_server_new (CdMetrics *metrics, guint64 max_body_bytes)
{
  CdHttpServer *self = g_object_new (CD_TYPE_HTTP_SERVER, NULL);

  self->metrics = g_object_ref (metrics);
  self->max_body_bytes = max_body_bytes;
  self->soup = soup_server_new ("server-header", "calldockerd", NULL);
  soup_server_add_early_handler (self->soup, NULL, on_early, self, NULL);
  soup_server_add_handler (self->soup, NULL, on_request, self, NULL);
  g_signal_connect (self->soup, "request-finished", G_CALLBACK (on_request_finished), self);
  g_signal_connect (self->soup, "request-aborted", G_CALLBACK (on_request_aborted), self);

  cd_metrics_register (metrics, "calldocker_http_requests_total", CD_METRIC_COUNTER,
                       "HTTP requests answered, by route, method and status", NULL, 0);
  cd_metrics_register (metrics, "calldocker_http_request_duration_seconds", CD_METRIC_HISTOGRAM,
                       "Time from request start to response end, by route", latency_buckets,
                       G_N_ELEMENTS (latency_buckets));
  return self;
}

gboolean
cd_http_server_add_route (CdHttpServer *self, const char *method, const char *pattern,
                          CdHttpHandler handler, gpointer user_data, GError **error)
{
  return cd_http_router_add (self->router, method, pattern, handler, user_data, error);
}

/* Bodies of up to @max_bytes for @method on @pattern (an upload), beyond
 * the server's limit for all the others. */
void
cd_http_server_set_body_limit (CdHttpServer *self, const char *method, const char *pattern,
                               guint64 max_bytes)
{
  guint64 *limit = g_new (guint64, 1);

  *limit = max_bytes;
  g_hash_table_replace (self->body_limits, g_strdup_printf ("%s %s", method, pattern), limit);
}

/**
 * cd_http_server_listen:
 * @host: an IP address, or "localhost" for the loopback addresses
 * @port: 0 picks a free port (see cd_http_server_get_uris())
 */
gboolean
cd_http_server_listen (CdHttpServer *self, const char *host, guint port, GError **error)
{
  g_autoptr (GSocketAddress) address = NULL;

  if (g_str_equal (host, "localhost"))
    return soup_server_listen_local (self->soup, port, 0, error);
  address = g_inet_socket_address_new_from_string (host, port);
  if (address == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s is not an IP address", host);
    return FALSE;
  }
  return soup_server_listen (self->soup, address, 0, error);
}

/**
 * cd_http_server_get_uris:
 *
 * Returns: (transfer full) (element-type GUri): where the server listens
 */
GSList *
cd_http_server_get_uris (CdHttpServer *self)
{
  return soup_server_get_uris (self->soup);
}

guint
cd_http_server_get_in_flight (CdHttpServer *self)
{
  return self->in_flight;
}

/**
 * cd_http_server_stop:
 *
 * Closes the listening sockets and every client connection. Requests that
 * arrive on a kept-alive connection before that are answered 503.
 */
void
cd_http_server_stop (CdHttpServer *self)
{
  if (self->stopped)
    return;
  self->stopped = TRUE;
  soup_server_disconnect (self->soup);
}

/**
 * cd_http_server_list_routes:
 *
 * Returns: (transfer full): "METHOD PATTERN" of every route, sorted
 */
GStrv
cd_http_server_list_routes (CdHttpServer *self)
{
  return cd_http_router_list (self->router);
}

gboolean
cd_http_server_is_stopped (CdHttpServer *self)
{
  return self->stopped;
}

static void
on_paused_message_gone (SoupServerMessage *msg, gpointer user_data)
{
  ((CdPausedMessage *) user_data)->gone = TRUE;
}

/**
 * cd_paused_message_init:
 *
 * Pauses @msg and watches for its connection going away.
 */
void
cd_paused_message_init (CdPausedMessage *paused, SoupServerMessage *msg)
{
  paused->msg = g_object_ref (msg);
  paused->gone = FALSE;
  paused->finished_id =
      g_signal_connect (msg, "finished", G_CALLBACK (on_paused_message_gone), paused);
  paused->disconnected_id =
      g_signal_connect (msg, "disconnected", G_CALLBACK (on_paused_message_gone), paused);
  soup_server_message_pause (msg);
}

gboolean
cd_paused_message_is_gone (CdPausedMessage *paused)
{
  return paused->gone;
}

/**
 * cd_paused_message_release:
 *
 * Sends what was set on the message, unless its connection is gone.
 */
void
cd_paused_message_release (CdPausedMessage *paused)
{
  if (paused->msg == NULL)
    return;
  g_clear_signal_handler (&paused->finished_id, paused->msg);
  g_clear_signal_handler (&paused->disconnected_id, paused->msg);
  if (!paused->gone)
    soup_server_message_unpause (paused->msg);
  g_clear_object (&paused->msg);
}

static void
on_plain_get_of_websocket (CdHttpRequest *request, gpointer user_data)
{
  soup_message_headers_replace (soup_server_message_get_response_headers (request->msg), "Upgrade",
                                "websocket");
  cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_BAD_REQUEST,
                         "this is a WebSocket endpoint: open it with a WebSocket upgrade");
}

/**
 * cd_http_server_add_websocket:
 *
 * Serves WebSocket connections at @path (libsoup answers the handshake).
 * The route is also listed, as GET, with the others.
 */
void
cd_http_server_add_websocket (CdHttpServer *self, const char *path,
                              SoupServerWebsocketCallback callback, gpointer user_data)
{
  soup_server_add_websocket_handler (self->soup, path, NULL, NULL, callback, user_data, NULL);
  cd_http_router_add (self->router, "GET", path, on_plain_get_of_websocket, NULL, NULL);
}
