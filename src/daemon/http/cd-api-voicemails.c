/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's voicemails, left through its IVR (docs/ivr.md): list (newest
 * first), read, listen, delete. Admins (and the super admin) manage them. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../../common/cd-json.h"
#include "cd-http-problem.h"

#define VOICEMAIL_JSON                                                                 \
  "jsonb_build_object('id', v.id, 'company_id', v.company_id, 'call_id', v.call_id,"   \
  " 'visitor_id', v.visitor_id, 'page', v.page, 'country', v.country, 'language',"     \
  " v.language, 'duration_ms', v.duration_ms, 'size_bytes', v.size_bytes, 'ended_by'," \
  " v.ended_by, 'created_at', v.created_at, 'stored_at', v.stored_at)"

static CdJwtClaims *
guard (CdApi *api, CdHttpRequest *request, gboolean with_voicemail)
{
  return cd_api_guard_company_admin (api, request, with_voicemail ? "voicemail_id" : NULL,
                                     "no such voicemail");
}

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, FALSE);

  if (claims)
    cd_api_list (
        user_data, request, claims,
        "WITH page AS (SELECT v.created_at, v.id, " VOICEMAIL_JSON " AS j FROM voicemails v"
        "  WHERE v.company_id = $1 AND ($2::timestamptz IS NULL"
        "  OR (v.created_at, v.id) < ($2::timestamptz, $3::uuid))"
        "  ORDER BY v.created_at DESC, v.id DESC LIMIT $4::int + 1)," CD_API_PAGE_NEWEST_FIRST (
            "$4") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)");
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, TRUE);

  if (claims)
    cd_api_get_one (user_data, request, claims, "voicemail_id",
                    "SELECT " VOICEMAIL_JSON " FROM voicemails v"
                    " WHERE v.company_id = $1 AND v.id = $2");
}

static void
on_audio_key (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such voicemail");
    return;
  }
  /* one stored before voicemails were sealed is served as it is */
  if (PQgetisnull (res, 0, 2)) {
    cd_api_call_respond_stored (call, PQgetvalue (res, 0, 0), "audio/ogg");
    return;
  }
  if (call->api->keyring == NULL) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_UNAVAILABLE,
                                 "this server has no keys to open voicemails");
    return;
  }
  cd_api_call_respond_sealed (call, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1),
                              (guint32) g_ascii_strtoull (PQgetvalue (res, 0, 2), NULL, 10),
                              "audio/ogg");
}

static void
handle_audio (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "voicemail_id") };
    cd_pg_pool_query_scoped_async (api->pool, &scope,
                                   "SELECT storage_key, company_id, key_version FROM voicemails"
                                   " WHERE company_id = $1 AND id = $2",
                                   params, 2, NULL, on_audio_key, call);
  }
}

static void
on_blob_dropped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *key = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_blob_store_delete_finish (CD_BLOB_STORE (source), result, &error))
    g_warning ("the deleted voicemail's file %s stays: %s", key, error->message);
}

/* (the deleted voicemail's key) */
static void
on_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQgetisnull (res, 0, 0)) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such voicemail");
    return;
  }
  cd_blob_store_delete_async (call->api->blobs, PQgetvalue (res, 0, 0), NULL, on_blob_dropped,
                              g_strdup (PQgetvalue (res, 0, 0)));
  cd_api_call_respond_empty (call, 204);
}

static void
handle_delete (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "voicemail_id"),
                             call->caller->sub, call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH d AS (DELETE FROM voicemails WHERE company_id = $1 AND id = $2"
        "  RETURNING company_id, id, storage_key),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $3::uuid, 'voicemail.deleted', id::text, $4, $5 FROM d"
        "  RETURNING 1)"
        " SELECT (SELECT storage_key FROM d), (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_deleted, call);
  }
}

gboolean
cd_api_voicemails_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/voicemails", handle_list,
                                   api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{id}/voicemails/{voicemail_id}", handle_get,
                                   api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{id}/voicemails/{voicemail_id}/audio",
                                   handle_audio, api, error) &&
         cd_http_server_add_route (server, "DELETE",
                                   "/api/v1/companies/{id}/voicemails/{voicemail_id}",
                                   handle_delete, api, error);
}
