/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cd-test-ws.h"

#include "cd-json.h"
#include "cd-test-harness.h"

static void
on_message (SoupWebsocketConnection *ws, gint type, GBytes *data, gpointer user_data)
{
  CdTestWs *c = user_data;
  JsonObject *o =
      cd_json_parse_object (g_bytes_get_data (data, NULL), g_bytes_get_size (data), NULL, NULL);

  g_assert_nonnull (o);
  g_ptr_array_add (c->received, o);
}

static void
on_closed (SoupWebsocketConnection *ws, gpointer user_data)
{
  CdTestWs *c = user_data;

  c->closed = TRUE;
  c->close_code = soup_websocket_connection_get_close_code (ws);
}

CdTestWs *
cd_test_ws_connect (const char *base_url, const char *token)
{
  return cd_test_ws_connect_with_headers (base_url, token, NULL);
}

CdTestWs *
cd_test_ws_connect_with_headers (const char *base_url, const char *token,
                                 const char *const *headers)
{
  CdTestWs *c = g_new0 (CdTestWs, 1);
  g_autofree char *http = g_strconcat (base_url, "api/v1/ws", NULL);
  g_autofree char *url = g_strconcat ("ws", http + 4, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  for (gsize i = 0; headers && headers[i] && headers[i + 1]; i += 2)
    soup_message_headers_replace (soup_message_get_request_headers (msg), headers[i],
                                  headers[i + 1]);

  c->session = soup_session_new ();
  c->received = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  soup_session_websocket_connect_async (c->session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  c->ws = soup_session_websocket_connect_finish (c->session, result, &error);
  g_assert_no_error (error);
  g_signal_connect (c->ws, "message", G_CALLBACK (on_message), c);
  g_signal_connect (c->ws, "closed", G_CALLBACK (on_closed), c);
  if (token) {
    cd_test_ws_send (c, "{\"type\":\"auth\",\"token\":\"%s\"}", token);
    cd_test_ws_wait (c, 0, "auth.ok", NULL);
  }
  return c;
}

void
cd_test_ws_send (CdTestWs *c, const char *format, ...)
{
  va_list args;
  g_autofree char *text = NULL;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  soup_websocket_connection_send_text (c->ws, text);
}

JsonObject *
cd_test_ws_find (CdTestWs *c, guint from, const char *type, guint *at)
{
  for (guint i = from; i < c->received->len; i++) {
    JsonObject *o = g_ptr_array_index (c->received, i);
    if (g_str_equal (json_object_get_string_member_with_default (o, "type", ""), type)) {
      if (at)
        *at = i;
      return o;
    }
  }
  return NULL;
}

JsonObject *
cd_test_ws_wait (CdTestWs *c, guint from, const char *type, guint *at)
{
  WAIT_UNTIL (cd_test_ws_find (c, from, type, at) != NULL || c->closed, 10000);
  if (cd_test_ws_find (c, from, type, at) == NULL)
    g_error ("the connection closed (code %u) before a '%s' message came", c->close_code, type);
  return cd_test_ws_find (c, from, type, at);
}

void
cd_test_ws_free (CdTestWs *c)
{
  if (!c->closed)
    soup_websocket_connection_close (c->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  WAIT_UNTIL (c->closed, 5000);
  g_signal_handlers_disconnect_by_data (c->ws, c);
  g_object_unref (c->ws);
  g_object_unref (c->session);
  g_ptr_array_unref (c->received);
  g_free (c);
}

CdTestWs *
cd_test_ws_agent_online (const char *base_url, const char *token, const char *status)
{
  CdTestWs *agent = cd_test_ws_connect (base_url, token);
  guint before = agent->received->len;

  cd_test_ws_send (agent, "{\"type\":\"presence.set\",\"status\":\"%s\"}", status);
  cd_test_ws_wait (agent, before, "presence", NULL);
  return agent;
}

JsonObject *
cd_test_ws_find_where (CdTestWs *c, guint from, const char *type, const char *member,
                       const char *value)
{
  for (guint at = from; cd_test_ws_find (c, at, type, &at); at++) {
    JsonObject *o = g_ptr_array_index (c->received, at);
    if (g_strcmp0 (json_object_get_string_member_with_default (o, member, NULL), value) == 0)
      return o;
  }
  return NULL;
}
