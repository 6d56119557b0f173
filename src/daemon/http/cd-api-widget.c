/* SPDX-License-Identifier: GPL-3.0-or-later */
/* POST /api/v1/widget/session: the website widget's way in. Public, called
 * from the company's own site (CORS), checked against the company's status
 * and allowed origins; answers a short visitor token and ICE servers. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../../common/cd-json.h"
#include "../auth/cd-auth-error.h"
#include "../auth/cd-turn.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <sodium.h>
#include <string.h>

static const CdField session_fields[] = {
  { "company_id", CD_FIELD_UUID, TRUE, 0, 0 },
};

/* The browser's Origin, echoed only to the origin that asked: responses for
 * one site must not be readable by another. */
static void
allow_origin (SoupServerMessage *msg, const char *origin)
{
  SoupMessageHeaders *out = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (out, "Access-Control-Allow-Origin", origin);
  soup_message_headers_replace (out, "Vary", "Origin");
}

static char *
visitor_json (CdApiCall *call, const char *company, const char *visitor_id, const char *token)
{
  CdApi *api = call->api;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "visitor_token");
  json_builder_add_string_value (b, token);
  json_builder_set_member_name (b, "expires_in");
  json_builder_add_int_value (b, api->settings.widget_token_ttl_s);
  json_builder_set_member_name (b, "visitor_id");
  json_builder_add_string_value (b, visitor_id);
  json_builder_set_member_name (b, "company_id");
  json_builder_add_string_value (b, company);
  json_builder_set_member_name (b, "ice_servers");
  json_builder_begin_array (b);
  if (api->stun_urls && api->stun_urls[0]) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "urls");
    json_builder_begin_array (b);
    for (gsize i = 0; api->stun_urls[i]; i++)
      json_builder_add_string_value (b, api->stun_urls[i]);
    json_builder_end_array (b);
    json_builder_end_object (b);
  }
  if (api->turn_urls && api->turn_urls[0]) {
    g_autofree char *username = NULL;
    g_autofree char *credential = NULL;
    gint64 expiry = g_get_real_time () / G_USEC_PER_SEC + api->turn_ttl_s;
    cd_turn_credentials (api->turn_secret, visitor_id, expiry, &username, &credential);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "urls");
    json_builder_begin_array (b);
    for (gsize i = 0; api->turn_urls[i]; i++)
      json_builder_add_string_value (b, api->turn_urls[i]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "username");
    json_builder_add_string_value (b, username);
    json_builder_set_member_name (b, "credential");
    json_builder_add_string_value (b, credential);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return cd_json_to_string (root);
}

typedef struct {
  char *company;
  char *origin;
} Session;

static void
session_free (gpointer data)
{
  Session *s = data;

  g_free (s->company);
  g_free (s->origin);
  g_free (s);
}

static void
on_company (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Session *s = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autofree char *visitor_id = NULL;
  g_autofree char *token = NULL;
  g_autofree char *text = NULL;
  g_autoptr (JsonNode) body = NULL;
  guint8 random[16];

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    g_set_error_literal (&error, CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such company");
    cd_api_call_respond_error (call, error);
    return;
  }
  if (!g_str_equal (PQgetvalue (res, 0, 0), "approved")) {
    g_set_error (&error, CD_AUTH_ERROR, CD_AUTH_ERROR_ACCOUNT_DISABLED,
                 "this company does not take calls (it is %s)", PQgetvalue (res, 0, 0));
    cd_api_call_respond_error (call, error);
    return;
  }
  if (!g_str_equal (PQgetvalue (res, 0, 1), "t")) {
    g_set_error (&error, CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN,
                 "the origin %.100s is not among the company's allowed origins", s->origin);
    cd_api_call_respond_error (call, error);
    return;
  }
  /* a visitor id is a random UUID (version 4) */
  randombytes_buf (random, sizeof random);
  random[6] = (random[6] & 0x0f) | 0x40;
  random[8] = (random[8] & 0x3f) | 0x80;
  visitor_id = g_strdup_printf ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                                "%02x%02x%02x%02x%02x%02x",
                                random[0], random[1], random[2], random[3], random[4], random[5],
                                random[6], random[7], random[8], random[9], random[10], random[11],
                                random[12], random[13], random[14], random[15]);
  token =
      cd_jwt_sign_at_ms (call->api->keys, visitor_id, "visitor", s->company,
                         g_get_real_time () / 1000, call->api->settings.widget_token_ttl_s, &error);
  if (token == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  text = visitor_json (call, s->company, visitor_id, token);
  body = json_from_string (text, &error);
  allow_origin (call->msg, s->origin);
  cd_api_call_respond_json (call, 201, body);
}

static void
session_lookup (CdApiCall *call)
{
  Session *s = call->data;
  const char *params[] = { s->company, s->origin };
  CdPgScope scope = { s->company, FALSE };

  cd_pg_pool_query_scoped_async (call->api->pool, &scope,
                                 "SELECT status, $2 = ANY (allowed_origins) FROM companies"
                                 " WHERE id = $1",
                                 params, 2, NULL, on_company, call);
}

static void
handle_session (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  const char *origin = soup_message_headers_get_one (
      soup_server_message_get_request_headers (request->msg), "Origin");
  g_autoptr (JsonObject) body = NULL;
  CdApiCall *call;
  Session *s;

  if (origin == NULL || strlen (origin) > 200) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                           "header 'Origin': the widget session is asked for from a web page");
    return;
  }
  body = cd_http_request_read_json (request, session_fields, G_N_ELEMENTS (session_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_new (api, request);
  s = g_new0 (Session, 1);
  s->company = g_ascii_strdown (json_object_get_string_member (body, "company_id"), -1);
  s->origin = g_strdup (origin);
  call->data = s;
  call->data_free = session_free;
  cd_api_call_rate_limit_address (call, "widget", api->settings.widget_limit_per_address,
                                  api->settings.widget_limit_window_s, session_lookup);
}

/* The CORS preflight: what the real POST may carry. Whether the origin may
 * open a session is decided by the POST, which knows the company. */
static void
handle_preflight (CdHttpRequest *request, gpointer user_data)
{
  const char *origin = soup_message_headers_get_one (
      soup_server_message_get_request_headers (request->msg), "Origin");
  SoupMessageHeaders *out = soup_server_message_get_response_headers (request->msg);

  if (origin == NULL || strlen (origin) > 200) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                           "header 'Origin': a preflight comes from a web page");
    return;
  }
  allow_origin (request->msg, origin);
  soup_message_headers_replace (out, "Access-Control-Allow-Methods", "POST");
  soup_message_headers_replace (out, "Access-Control-Allow-Headers", "Content-Type");
  soup_message_headers_replace (out, "Access-Control-Max-Age", "600");
  soup_server_message_set_status (request->msg, 204, NULL);
}

gboolean
cd_api_widget_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "POST", "/api/v1/widget/session", handle_session, api,
                                   error) &&
         cd_http_server_add_route (server, "OPTIONS", "/api/v1/widget/session", handle_preflight,
                                   api, error);
}
