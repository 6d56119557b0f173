/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdSignalServer: one session per WebSocket. A session must authenticate
 * first ({"type":"auth"}); every message is bounded, validated and
 * answered; a flood closes the connection. Calls come next. */

#define G_LOG_DOMAIN "calldocker-signal"

#include "cd-signal-server.h"
#include "cd-signal-session.h"
#include "cd-switchboard.h"

#include "../../common/cd-json.h"
#include "../auth/cd-auth-error.h"
#include "../http/cd-http-fields.h"
#include "../routing/cd-country-queues.h"

#include <string.h>

/* WebSocket close codes of our own (4000-4999 are the application's) */
#define CLOSE_UNAUTHORIZED 4401
#define CLOSE_AUTH_TIMEOUT 4408
#define CLOSE_FLOOD        4429

/* All of it belongs to the main thread. */
struct _CdSignalServer {
  GObject parent_instance;

  CdApi *api; /* borrowed: the daemon owns it and outlives us */
  CdSignalSettings settings;
  GHashTable *sessions; /* Session* set */
  guint64 next_id;
  CdSwitchboard *switchboard;
};

G_DEFINE_FINAL_TYPE (CdSignalServer, cd_signal_server, G_TYPE_OBJECT)

static void
session_free (gpointer data)
{
  Session *s = data;

  g_clear_handle_id (&s->auth_timeout_id, g_source_remove);
  g_signal_handlers_disconnect_by_data (s->connection, s);
  g_clear_object (&s->connection);
  g_clear_pointer (&s->claims, cd_jwt_claims_free);
  g_free (s->id);
  g_free (s->client_address);
  g_free (s);
}

void
cd_signal_session_send (Session *s, JsonNode *message)
{
  g_autofree char *text = cd_json_to_string (message);

  if (soup_websocket_connection_get_state (s->connection) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text (s->connection, text);
}

void
cd_signal_session_send_error (Session *s, const char *code, const char *in_reply_to,
                              const char *detail)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "error");
  json_builder_set_member_name (b, "code");
  json_builder_add_string_value (b, code);
  json_builder_set_member_name (b, "detail");
  json_builder_add_string_value (b, detail);
  if (in_reply_to) {
    json_builder_set_member_name (b, "in_reply_to");
    json_builder_add_string_value (b, in_reply_to);
  }
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  cd_signal_session_send (s, node);
}

static void
session_close (Session *s, gushort code, const char *reason)
{
  if (s->closing)
    return;
  s->closing = TRUE;
  g_info ("signaling session %s closed: %s", s->id, reason);
  soup_websocket_connection_close (s->connection, code, reason);
}

static gboolean
on_auth_timeout (gpointer user_data)
{
  Session *s = user_data;

  s->auth_timeout_id = 0;
  cd_signal_session_send_error (s, "auth-timeout", NULL, "no auth message in time");
  session_close (s, CLOSE_AUTH_TIMEOUT, "authentication timeout");
  return G_SOURCE_REMOVE;
}

static void
handle_auth (Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "token", CD_FIELD_SECRET, TRUE, 1, 4096 },
  };
  CdApi *api = s->server->api;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = NULL;
  g_autoptr (JsonNode) reply = NULL;
  CdJwtClaims *claims;
  const char *token;

  if (s->claims != NULL) {
    cd_signal_session_send_error (s, "out-of-order", "auth",
                                  "this session is authenticated already");
    return;
  }
  if (!cd_fields_validate (message, fields, G_N_ELEMENTS (fields), &error)) {
    cd_signal_session_send_error (s, "invalid-field", "auth", error->message);
    return;
  }
  token = json_object_get_string_member (message, "token");
  claims = cd_jwt_verify (api->keys, token, g_get_real_time () / G_USEC_PER_SEC, &error);
  if (claims != NULL &&
      (cd_api_is_blocked (api, claims->sub, claims->iat_ms) ||
       (claims->company && cd_api_is_blocked (api, claims->company, claims->iat_ms)))) {
    g_clear_pointer (&claims, cd_jwt_claims_free);
    g_set_error_literal (&error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                         "this session ended when the account or its company changed");
  }
  if (claims != NULL && claims->company == NULL) {
    /* the super admin takes no calls */
    g_clear_pointer (&claims, cd_jwt_claims_free);
    g_set_error_literal (&error, CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN,
                         "the super admin has no signaling");
  }
  if (claims == NULL) {
    cd_signal_session_send_error (s, "unauthorized", "auth", error->message);
    session_close (s, CLOSE_UNAUTHORIZED, "unauthorized");
    return;
  }
  s->claims = claims;
  g_clear_handle_id (&s->auth_timeout_id, g_source_remove);
  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "auth.ok");
  json_builder_set_member_name (b, "session_id");
  json_builder_add_string_value (b, s->id);
  json_builder_set_member_name (b, "role");
  json_builder_add_string_value (b, claims->role);
  json_builder_set_member_name (b, "company_id");
  json_builder_add_string_value (b, claims->company);
  json_builder_end_object (b);
  reply = json_builder_get_root (b);
  cd_signal_session_send (s, reply);
  cd_switchboard_session_authenticated (s->server->switchboard, s);
}

static void
handle_ping (Session *s, JsonObject *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) reply = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "pong");
  json_builder_end_object (b);
  reply = json_builder_get_root (b);
  cd_signal_session_send (s, reply);
}

static void
on_presence_stored (GObject *source, GAsyncResult *result, gpointer user_data)
{
  G_GNUC_UNUSED g_autoptr (CdSignalServer) server = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) reply = cd_redis_command_finish (CD_REDIS (source), result, &error);

  if (reply == NULL)
    g_message ("cannot store presence: %s", error->message);
}

static void
handle_presence (Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "status", CD_FIELD_STRING, TRUE, 1, 20 },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = NULL;
  g_autoptr (JsonNode) reply = NULL;
  g_autofree char *key = NULL;
  const char *status;

  if (!g_str_equal (s->claims->role, "agent") && !g_str_equal (s->claims->role, "company_admin")) {
    cd_signal_session_send_error (s, "forbidden", "presence.set", "only agents have a presence");
    return;
  }
  if (!cd_fields_validate (message, fields, G_N_ELEMENTS (fields), &error)) {
    cd_signal_session_send_error (s, "invalid-field", "presence.set", error->message);
    return;
  }
  status = json_object_get_string_member (message, "status");
  if (!g_str_equal (status, "available") && !g_str_equal (status, "away")) {
    cd_signal_session_send_error (s, "invalid-field", "presence.set",
                                  "field 'status': available or away");
    return;
  }
  /* shared by every daemon: routing reads it */
  key = g_strdup_printf ("cd:presence:%s", s->claims->company);
  cd_redis_commandv_async (s->server->api->redis, NULL, on_presence_stored,
                           g_object_ref (s->server), "HSET", key, s->claims->sub, status, NULL);
  cd_switchboard_set_presence (s->server->switchboard, s, status);
  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "presence");
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, status);
  json_builder_end_object (b);
  reply = json_builder_get_root (b);
  cd_signal_session_send (s, reply);
}

/* Too many messages in one second: the connection is cut, not throttled. */
static gboolean
session_count_message (Session *s)
{
  gint64 now = g_get_monotonic_time ();

  if (now - s->window_start > G_USEC_PER_SEC) {
    s->window_start = now;
    s->window_messages = 0;
  }
  return ++s->window_messages <= s->server->settings.max_messages_per_second;
}

static void
on_message (SoupWebsocketConnection *connection, gint type, GBytes *data, gpointer user_data)
{
  Session *s = user_data;
  CdJsonLimits limits = { s->server->settings.max_message_bytes, 8, FALSE };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) message = NULL;
  JsonNode *type_node;
  const char *kind;

  if (s->closing)
    return;
  if (!session_count_message (s)) {
    cd_signal_session_send_error (s, "rate-limited", NULL, "too many messages");
    session_close (s, CLOSE_FLOOD, "message flood");
    return;
  }
  if (type != SOUP_WEBSOCKET_DATA_TEXT) {
    cd_signal_session_send_error (s, "invalid-json", NULL, "messages are JSON text frames");
    return;
  }
  message = cd_json_parse_object (g_bytes_get_data (data, NULL), g_bytes_get_size (data), &limits,
                                  &error);
  if (message == NULL) {
    cd_signal_session_send_error (
        s, error->code == CD_JSON_ERROR_TOO_LARGE ? "too-large" : "invalid-json", NULL,
        error->message);
    return;
  }
  type_node = json_object_get_member (message, "type");
  if (type_node == NULL || !JSON_NODE_HOLDS_VALUE (type_node) ||
      json_node_get_value_type (type_node) != G_TYPE_STRING) {
    cd_signal_session_send_error (s, "invalid-field", NULL, "field 'type': a string is required");
    return;
  }
  kind = json_node_get_string (type_node);
  if (g_str_equal (kind, "ping")) {
    handle_ping (s, message);
  } else if (g_str_equal (kind, "auth")) {
    handle_auth (s, message);
  } else if (s->claims == NULL) {
    cd_signal_session_send_error (s, "not-authenticated", kind, "send {\"type\":\"auth\"} first");
  } else if (g_str_equal (kind, "presence.set")) {
    handle_presence (s, message);
  } else if (!cd_switchboard_handle (s->server->switchboard, s, kind, message)) {
    g_autofree char *detail = g_strdup_printf ("unknown message type '%.40s'", kind);
    cd_signal_session_send_error (s, "unknown-type", NULL, detail);
  }
}

static void
on_error (SoupWebsocketConnection *connection, GError *error, gpointer user_data)
{
  Session *s = user_data;

  g_info ("signaling session %s: %s", s->id, error->message);
}

static void
on_closed (SoupWebsocketConnection *connection, gpointer user_data)
{
  Session *s = user_data;
  CdSignalServer *server = s->server;

  if (s->closing)
    g_debug ("signaling session %s ended", s->id);
  else
    g_info ("signaling session %s ended by the client (code %u)", s->id,
            soup_websocket_connection_get_close_code (connection));
  cd_switchboard_session_closed (server->switchboard, s);
  g_hash_table_remove (server->sessions, s);
}

static void
on_websocket (SoupServer *soup, SoupServerMessage *msg, const char *path,
              SoupWebsocketConnection *connection, gpointer user_data)
{
  CdSignalServer *self = user_data;
  Session *s = g_new0 (Session, 1);
  const char *host = soup_server_message_get_remote_host (msg);
  const char *country = NULL;

  s->server = self;
  s->connection = g_object_ref (connection);
  s->id = g_strdup_printf ("s%" G_GUINT64_FORMAT, ++self->next_id);
  s->client_address = g_strdup (host ? host : "unknown");
  if (self->settings.country_header && self->settings.country_header[0]) {
    country = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                            self->settings.country_header);
    /* two letters or nothing (proxies say "XX" or "T1" for unknown and Tor) */
    if (cd_country_code_normalize (country, s->country))
      s->country_source = "header";
  }
  /* GeoIP only where no proxy spoke: behind one, the address is the
   * proxy's, and its "unknown" stays unknown */
  if (country == NULL && self->settings.geoip && host &&
      cd_geoip_country (self->settings.geoip, host, s->country))
    s->country_source = "geoip";
  s->window_start = g_get_monotonic_time ();
  soup_websocket_connection_set_max_incoming_payload_size (connection,
                                                           self->settings.max_message_bytes);
  soup_websocket_connection_set_keepalive_interval (connection, self->settings.keepalive_s);
  g_signal_connect (connection, "message", G_CALLBACK (on_message), s);
  g_signal_connect (connection, "error", G_CALLBACK (on_error), s);
  g_signal_connect (connection, "closed", G_CALLBACK (on_closed), s);
  s->auth_timeout_id = g_timeout_add_seconds (self->settings.auth_timeout_s, on_auth_timeout, s);
  g_hash_table_add (self->sessions, s);
  g_info ("signaling session %s opened from %s", s->id, s->client_address);
}

static void
cd_signal_server_dispose (GObject *object)
{
  CdSignalServer *self = CD_SIGNAL_SERVER (object);

  cd_signal_server_close_all (self);
  g_clear_pointer (&self->sessions, g_hash_table_unref);
  g_clear_object (&self->switchboard);
  G_OBJECT_CLASS (cd_signal_server_parent_class)->dispose (object);
}

static void
cd_signal_server_finalize (GObject *object)
{
  CdSignalServer *self = CD_SIGNAL_SERVER (object);

  g_free ((char *) self->settings.country_header);
  G_OBJECT_CLASS (cd_signal_server_parent_class)->finalize (object);
}

static void
cd_signal_server_class_init (CdSignalServerClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = cd_signal_server_dispose;
  G_OBJECT_CLASS (klass)->finalize = cd_signal_server_finalize;
}

static void
cd_signal_server_init (CdSignalServer *self)
{
  self->sessions = g_hash_table_new_full (g_direct_hash, g_direct_equal, session_free, NULL);
}

CdSignalServer *
cd_signal_server_new (CdApi *api, const CdSignalSettings *settings)
{
  CdSignalServer *self = g_object_new (CD_TYPE_SIGNAL_SERVER, NULL);

  self->api = api;
  self->settings = *settings;
  self->settings.country_header = g_strdup (settings->country_header);
  self->switchboard = cd_switchboard_new (api, &settings->calls);
  api->lookup_pipeline = (gpointer) cd_switchboard_lookup_pipeline;
  api->lookup_pipeline_data = self->switchboard;
  api->control_recording = (gpointer) cd_switchboard_control_recording;
  api->control_recording_data = self->switchboard;
  api->lookup_member = (gpointer) cd_switchboard_member_now;
  api->lookup_member_data = self->switchboard;
  self->settings.calls.media.local_addresses = NULL; /* the switchboard keeps its copy */
  return self;
}

/**
 * cd_signal_server_attach:
 *
 * Serves /api/v1/ws on @http.
 */
void
cd_signal_server_attach (CdSignalServer *self, CdHttpServer *http)
{
  cd_http_server_add_websocket (http, "/api/v1/ws", on_websocket, self);
}

/* Once the database is ready: what a daemon that died left recording. */
void
cd_signal_server_recover_recordings (CdSignalServer *self)
{
  cd_switchboard_recover_recordings (self->switchboard);
}

guint
cd_signal_server_get_session_count (CdSignalServer *self)
{
  return self->sessions ? g_hash_table_size (self->sessions) : 0;
}

/**
 * cd_signal_server_close_all:
 *
 * Shutdown: every session is told and closed (1001, going away).
 */
void
cd_signal_server_close_all (CdSignalServer *self)
{
  g_autoptr (GList) sessions = NULL;

  if (self->sessions == NULL)
    return;
  if (self->switchboard)
    cd_switchboard_end_all (self->switchboard, "shutdown");
  /* a copy: closing may end a session, and remove it, at once */
  sessions = g_hash_table_get_keys (self->sessions);
  for (GList *l = sessions; l != NULL; l = l->next) {
    Session *s = l->data;
    if (!s->closing &&
        soup_websocket_connection_get_state (s->connection) == SOUP_WEBSOCKET_STATE_OPEN) {
      s->closing = TRUE;
      soup_websocket_connection_close (s->connection, SOUP_WEBSOCKET_CLOSE_GOING_AWAY,
                                       "server shutting down");
    }
  }
}

CdSwitchboard *
cd_signal_server_get_switchboard (CdSignalServer *self)
{
  return self->switchboard;
}
