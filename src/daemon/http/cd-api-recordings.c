/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Call recordings (docs/storage.md): started, paused, resumed and stopped
 * on a live call by its agent or an admin; listed with filters, read, and
 * listened to (opened with the company's key as it is served). */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../auth/cd-auth-error.h"
#include "../../common/cd-json.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <string.h>

#define RECORDING_JSON                                                                        \
  "jsonb_build_object('id', r.id, 'company_id', r.company_id, 'call_id', r.call_id,"          \
  " 'parties', r.parties, 'started_at', r.started_at, 'ended_at', r.ended_at, 'duration_ms'," \
  " r.duration_ms, 'size_bytes', r.size_bytes, 'state', r.state, 'reason', r.reason,"         \
  " 'checksum', r.checksum, 'stored_at', r.stored_at)"

/* ---- on a live call ---- */

static const CdField control_fields[] = {
  { "action", CD_FIELD_STRING, TRUE, 1, 10 },
};

static void
handle_control (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_api_guard (api, request, CD_ROLE_ANY, "company_id", &error);
  g_autoptr (JsonObject) body = NULL;
  const char *call_id = g_hash_table_lookup (request->params, "call_id");
  const char *action;
  gboolean agent;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  body = cd_http_request_read_json (request, control_fields, G_N_ELEMENTS (control_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  action = json_object_get_string_member (body, "action");
  agent = g_strcmp0 (claims->role, "agent") == 0;
  if (!cd_is_uuid (call_id) || api->control_recording == NULL) {
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND,
                                 "no such call in progress on this server");
  } else if (api->control_recording (api->control_recording_data,
                                     g_hash_table_lookup (request->params, "company_id"), call_id,
                                     action, agent ? claims->sub : NULL, &error)) {
    g_autoptr (JsonBuilder) b = json_builder_new ();
    g_autoptr (JsonNode) root = NULL;

    json_builder_begin_object (b);
    json_builder_set_member_name (b, "call_id");
    json_builder_add_string_value (b, call_id);
    json_builder_set_member_name (b, "action");
    json_builder_add_string_value (b, action);
    json_builder_end_object (b);
    root = json_builder_get_root (b);
    /* accepted: what follows (the file, its row) is told on the timeline */
    cd_http_respond_json (request->msg, 202, root);
    return;
  }
  cd_http_respond_problem (request->msg, request->request_id, error);
}

/* ---- stored ---- */

static CdJwtClaims *
guard (CdApi *api, CdHttpRequest *request, gboolean with_recording)
{
  return cd_api_guard_company_admin (api, request, with_recording ? "recording_id" : NULL,
                                     "no such recording");
}

static const char *const states[] = { "recording", "complete", "partial", "failed", NULL };

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  g_autoptr (GError) error = NULL;
  const char *filters[2] = { NULL, NULL }; /* call_id, state */

  if (claims == NULL)
    return;
  if (request->query) {
    filters[0] = g_hash_table_lookup (request->query, "call_id");
    filters[1] = g_hash_table_lookup (request->query, "state");
  }
  if (filters[0] && !cd_is_uuid (filters[0])) {
    error = g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, "call_id: not a UUID");
  } else if (filters[1] && !g_strv_contains (states, filters[1])) {
    error = g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                         "state: none of recording, complete, partial, failed");
  }
  if (error) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  cd_api_list_where (
      api, request, g_steal_pointer (&claims),
      "WITH page AS (SELECT r.started_at AS created_at, r.id, " RECORDING_JSON " AS j"
      "  FROM recordings r WHERE r.company_id = $1 AND ($2::timestamptz IS NULL"
      "  OR (r.started_at, r.id) < ($2::timestamptz, $3::uuid))"
      "  AND ($5::uuid IS NULL OR r.call_id = $5::uuid) AND ($6::text IS NULL OR r.state = $6)"
      "  ORDER BY r.started_at DESC, r.id DESC LIMIT $4::int + 1)," CD_API_PAGE_NEWEST_FIRST (
          "$4") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)",
      filters, G_N_ELEMENTS (filters));
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, TRUE);

  if (claims)
    cd_api_get_one (user_data, request, claims, "recording_id",
                    "SELECT " RECORDING_JSON " FROM recordings r"
                    " WHERE r.company_id = $1 AND r.id = $2");
}

static void
on_audio_row (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such recording");
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 3), "failed") ||
      g_str_equal (PQgetvalue (res, 0, 3), "recording")) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                 g_str_equal (PQgetvalue (res, 0, 3), "failed")
                                     ? "the recording failed: nothing to listen to"
                                     : "the recording is still being made");
    return;
  }
  cd_api_call_respond_sealed (call, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1),
                              (guint32) g_ascii_strtoull (PQgetvalue (res, 0, 2), NULL, 10),
                              "audio/ogg");
}

/* ---- links: the audio's URL signed for a few minutes, for a player that
 * cannot send a bearer token (an <audio> element) ---- */

#define LINK_TTL_S 300

static char *
link_message (const char *company, const char *recording, gint64 expires)
{
  return g_strdup_printf ("recording-audio/%s/%s/%" G_GINT64_FORMAT, company, recording, expires);
}

static void
on_link_row (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  const char *company = g_hash_table_lookup (call->params, "id");
  const char *recording = g_hash_table_lookup (call->params, "recording_id");
  gint64 expires = g_get_real_time () / G_USEC_PER_SEC + LINK_TTL_S;
  g_autofree char *message = NULL;
  g_autofree char *signature = NULL;
  g_autofree char *url = NULL;
  g_autoptr (GDateTime) at = g_date_time_new_from_unix_utc (expires);
  g_autofree char *at_text = g_date_time_format_iso8601 (at);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such recording");
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "failed") ||
      g_str_equal (PQgetvalue (res, 0, 0), "recording")) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                 "the recording is not there to listen to (failed, or still "
                                 "being made)");
    return;
  }
  message = link_message (company, recording, expires);
  signature = cd_keyring_sign_link (call->api->keyring, message);
  url = g_strdup_printf (
      "%sapi/v1/companies/%s/recordings/%s/audio?expires=%" G_GINT64_FORMAT "&signature=%s",
      call->api->public_url ? call->api->public_url : "/", company, recording, expires, signature);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, url);
  json_builder_set_member_name (b, "expires_at");
  json_builder_add_string_value (b, at_text);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  cd_api_call_respond_json (call, 201, node);
}

static void
handle_link (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  if (api->keyring == NULL) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_UNAVAILABLE,
                                 "this server has no storage for recordings");
    return;
  }
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "recording_id") };
    cd_pg_pool_query_scoped_async (api->pool, &scope,
                                   "SELECT state FROM recordings WHERE company_id = $1 AND id = $2",
                                   params, 2, NULL, on_link_row, call);
  }
}

/* A signed link's check; FALSE when answered already (403 saying why). */
static gboolean
link_is_good (CdApi *api, CdHttpRequest *request, const char *expires, const char *signature)
{
  const char *company = g_hash_table_lookup (request->params, "id");
  const char *recording = g_hash_table_lookup (request->params, "recording_id");
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr (GError) error = NULL;
  g_autofree char *message = NULL;
  guint64 at = 0;

  if (api->keyring == NULL)
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_UNAVAILABLE,
                                 "this server has no storage for recordings");
  else if (!cd_is_uuid (company) || !cd_is_uuid (recording))
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such recording");
  else if (expires == NULL || signature == NULL ||
           !g_ascii_string_to_unsigned (expires, 10, 0, G_MAXINT64, &at, NULL) ||
           (gint64) at > now + LINK_TTL_S + 60)
    error = g_error_new_literal (CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN,
                                 "the link is not valid (it needs expires and signature, as "
                                 "the link endpoint made them)");
  else if ((gint64) at < now)
    error = g_error_new_literal (CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN,
                                 "the link has expired: ask for a new one");
  else {
    message = link_message (company, recording, (gint64) at);
    if (!cd_keyring_check_link (api->keyring, message, signature))
      error = g_error_new_literal (CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN,
                                   "the link is not valid (its signature does not match)");
  }
  if (error == NULL)
    return TRUE;
  if (error->domain == CD_AUTH_ERROR)
    cd_api_respond_auth_error (request, error);
  else
    cd_http_respond_problem (request->msg, request->request_id, error);
  return FALSE;
}

static void
handle_audio (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  const char *expires = request->query ? g_hash_table_lookup (request->query, "expires") : NULL;
  const char *signature = request->query ? g_hash_table_lookup (request->query, "signature") : NULL;
  g_autoptr (CdJwtClaims) claims = NULL;
  CdApiCall *call;
  CdPgScope scope = { .company_id = g_hash_table_lookup (request->params, "id") };

  if (expires || signature) {
    /* a signed link: it alone says who may listen */
    if (!link_is_good (api, request, expires, signature))
      return;
    call = cd_api_call_new (api, request);
  } else {
    claims = guard (api, request, TRUE);
    if (claims == NULL)
      return;
    call = cd_api_call_start (api, request, g_steal_pointer (&claims));
    scope = cd_api_scope_of (call->caller);
  }
  if (api->keyring == NULL || api->blobs == NULL) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_UNAVAILABLE,
                                 "this server has no storage for recordings");
    return;
  }
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "recording_id") };
    cd_pg_pool_query_scoped_async (api->pool, &scope,
                                   "SELECT storage_key, company_id, key_version, state"
                                   " FROM recordings WHERE company_id = $1 AND id = $2",
                                   params, 2, NULL, on_audio_row, call);
  }
}

gboolean
cd_api_recordings_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "POST",
                                   "/api/v1/companies/{company_id}/calls/{call_id}/recording",
                                   handle_control, api, error) &&
         cd_http_server_add_route (server, "POST",
                                   "/api/v1/companies/{id}/recordings/{recording_id}/link",
                                   handle_link, api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/recordings", handle_list,
                                   api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{id}/recordings/{recording_id}", handle_get,
                                   api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{id}/recordings/{recording_id}/audio",
                                   handle_audio, api, error);
}
